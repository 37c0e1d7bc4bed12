"""upload-config: the kubeadm-config and kubelet-config ConfigMaps, and who may read them.

Joining nodes read both with their bootstrap token, later with their node
credentials, hence the Roles bound to the default-node-token group and system:nodes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kbootd import apiclient, kyaml
from kbootd.cluster import admin_client, node_wait_reporter, write_all
from kbootd.config.printer import cluster_doc
from kbootd.errors import KbootdError

NAMESPACE = "kube-system"
KUBEADM_CONFIG = "kubeadm-config"
KUBELET_CONFIG = "kubelet-config"
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
NODES_GROUP = "system:nodes"
HASH_ANNOTATION = "kubeadm.kubernetes.io/component-config.hash"
CRI_SOCKET_ANNOTATION = "kubeadm.alpha.kubernetes.io/cri-socket"


def checksum(data: dict[str, str]) -> str:
    """kubeadm's ChecksumForConfigMap: sha256 over the values in key order (keys not hashed)."""
    h = hashlib.sha256()
    for key in sorted(data):
        h.update(data[key].encode())
    return f"sha256:{h.hexdigest()}"


def config_map(name: str, namespace: str, data: dict[str, str], *, signed: bool = False,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if signed:
        md["annotations"] = {HASH_ANNOTATION: checksum(data)}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data}


def get_one_configmap_role(name: str, namespace: str, configmap: str) -> dict[str, Any]:
    """A Role allowing `get` on exactly one ConfigMap."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [{"apiGroups": [""], "resourceNames": [configmap], "resources": ["configmaps"],
                       "verbs": ["get"]}]}


def role_binding(name: str, namespace: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": subjects}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name}


def kubeadm_config_objects(cfg: Any) -> list[dict[str, Any]]:
    role = "kubeadm:nodes-kubeadm-config"
    return [
        config_map(KUBEADM_CONFIG, NAMESPACE, {"ClusterConfiguration": kyaml.dump(cluster_doc(cfg.cluster))}),
        get_one_configmap_role(role, NAMESPACE, KUBEADM_CONFIG),
        role_binding(role, NAMESPACE, role, [group(BOOTSTRAP_GROUP), group(NODES_GROUP)]),
    ]


def kubelet_config_objects(kubelet_yaml: str) -> list[dict[str, Any]]:
    role = "kubeadm:kubelet-config"
    return [
        config_map(KUBELET_CONFIG, NAMESPACE, {"kubelet": kubelet_yaml}, signed=True),
        get_one_configmap_role(role, NAMESPACE, KUBELET_CONFIG),
        # kubeadm lists the subjects in this order here, the other way round above.
        role_binding(role, NAMESPACE, role, [group(NODES_GROUP), group(BOOTSTRAP_GROUP)]),
    ]


def kubelet_config_text(ctx: Any) -> str:
    """The cluster-wide KubeletConfiguration as YAML: the config.yaml kubelet-start wrote
    (kubeadm's ConfigMap is byte-identical to it), read back also in a dry run, whose
    writes the host layer keeps."""
    text = ctx.host.read_text(ctx.paths.kubelet_config)
    if text and text.strip():
        return text
    raise KbootdError(f"no KubeletConfiguration to upload: {ctx.paths.kubelet_config} does not exist",
                      hint="run the kubelet-start phase first")


def upload_kubeadm(ctx: Any) -> None:
    ctx.reporter.info("upload-config", f'Storing the configuration used in ConfigMap "{KUBEADM_CONFIG}" '
                      f'in the "{NAMESPACE}" Namespace')
    write_all(admin_client(ctx), kubeadm_config_objects(ctx.cfg))


def upload_kubelet(ctx: Any) -> None:
    text = kubelet_config_text(ctx)
    ctx.reporter.info("kubelet", f'Creating a ConfigMap "{KUBELET_CONFIG}" in namespace {NAMESPACE} '
                      "with the configuration for the kubelets in the cluster")
    client = admin_client(ctx)
    write_all(client, kubelet_config_objects(text))
    if not ctx.cfg.cluster.gate("NodeLocalCRISocket"):
        annotate_cri_socket(ctx, client)


def annotate_cri_socket(ctx: Any, client: apiclient.Client) -> None:
    """kubeadm (before NodeLocalCRISocket) records the node's CRI socket on its Node object."""
    socket = ctx.data.cri_socket

    def mutate(node: dict[str, Any]) -> None:
        node.setdefault("metadata", {}).setdefault("annotations", {})[CRI_SOCKET_ANNOTATION] = socket

    # The first write that needs the kubelet to have registered the Node: say so while waiting.
    apiclient.patch_node(client, ctx.data.node_name, mutate, on_retry=node_wait_reporter(ctx, "upload-config"))


def upload_all(ctx: Any) -> None:
    upload_kubeadm(ctx)
    upload_kubelet(ctx)
