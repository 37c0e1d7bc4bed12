"""Seed the store with what `kubeadm init` creates, for tests that start from an initialized cluster.

Objects and names follow kubeadm v1.32 (see shared/fixtures/kubeadm/init-basic/dryrun-stdout.txt);
everything is written with manager "kubeadm", as kubeadm's own writes are.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from tests.apiserver.bootstrap import binding
from tests.apiserver.clock import format_time
from tests.apiserver.store import Store

MANAGER = "kubeadm"
NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
RBAC = "rbac.authorization.k8s.io/v1"


def _role(name: str, namespace: str, resource_name: str, resource: str = "configmaps") -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": [resource],
                       "resourceNames": [resource_name]}]}


def _put(store: Store, obj: dict[str, Any]) -> dict[str, Any]:
    return store.seed(obj, manager=MANAGER)


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig text kubeadm puts in cluster-info (Go YAML: empty names, null lists)."""
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: "
            f"{base64.b64encode(ca_pem).decode()}\n    server: {server}\n  name: \"\"\ncontexts: null\n"
            "current-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n")


def grant_cluster_admins(store: Store) -> None:
    """ClusterRoleBinding kubeadm:cluster-admins: admin.conf's group gets cluster-admin."""
    _put(store, binding("ClusterRoleBinding", "kubeadm:cluster-admins", "ClusterRole", "cluster-admin",
                        [("Group", "kubeadm:cluster-admins")]))


def upload_config(store: Store, cluster_configuration: str, kubelet_configuration: str | None = None,
                  kubelet_config_hash: str | None = None) -> None:
    _put(store, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                 "data": {"ClusterConfiguration": cluster_configuration}})
    _put(store, _role("kubeadm:nodes-kubeadm-config", "kube-system", "kubeadm-config"))
    _put(store, binding("RoleBinding", "kubeadm:nodes-kubeadm-config", "Role", "kubeadm:nodes-kubeadm-config",
                        [("Group", NODE_TOKEN_GROUP), ("Group", "system:nodes")], "kube-system"))
    if kubelet_configuration is not None:
        meta: dict[str, Any] = {"name": "kubelet-config", "namespace": "kube-system"}
        if kubelet_config_hash:
            meta["annotations"] = {"kubeadm.kubernetes.io/component-config.hash": kubelet_config_hash}
        _put(store, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                     "data": {"kubelet": kubelet_configuration}})
        _put(store, _role("kubeadm:kubelet-config", "kube-system", "kubelet-config"))
        _put(store, binding("RoleBinding", "kubeadm:kubelet-config", "Role", "kubeadm:kubelet-config",
                            [("Group", "system:nodes"), ("Group", NODE_TOKEN_GROUP)], "kube-system"))


def token_secret(token: str, *, expires: datetime | None, usages: tuple[str, ...] = ("authentication", "signing"),
                 groups: tuple[str, ...] = (NODE_TOKEN_GROUP,), description: str | None = None) -> dict[str, Any]:
    """The Secret kubeadm stores for a bootstrap token (fixture 22)."""
    token_id, secret = token.split(".", 1)

    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    data = {"token-id": b64(token_id), "token-secret": b64(secret)}
    if description:
        data["description"] = b64(description)
    if expires is not None:
        data["expiration"] = b64(format_time(expires))
    for u in usages:
        data[f"usage-bootstrap-{u}"] = b64("true")
    if groups:
        data["auth-extra-groups"] = b64(",".join(groups))
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"}, "data": data}


def create_token(store: Store, token: str, ttl: timedelta | None = timedelta(hours=24), **kw: Any) -> dict[str, Any]:
    expires = store.clock.now() + ttl if ttl else None
    return _put(store, token_secret(token, expires=expires, **kw))


def bootstrap_token_rbac(store: Store, *, auto_approve: bool = True) -> None:
    _put(store, {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "kubeadm:get-nodes"},
                 "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]})
    _put(store, binding("ClusterRoleBinding", "kubeadm:get-nodes", "ClusterRole", "kubeadm:get-nodes",
                        [("Group", NODE_TOKEN_GROUP)]))
    _put(store, binding("ClusterRoleBinding", "kubeadm:kubelet-bootstrap", "ClusterRole",
                        "system:node-bootstrapper", [("Group", NODE_TOKEN_GROUP)]))
    if auto_approve:
        _put(store, binding("ClusterRoleBinding", "kubeadm:node-autoapprove-bootstrap", "ClusterRole",
                            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                            [("Group", NODE_TOKEN_GROUP)]))
    _put(store, binding("ClusterRoleBinding", "kubeadm:node-autoapprove-certificate-rotation", "ClusterRole",
                        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                        [("Group", "system:nodes")]))


def cluster_info(store: Store, server: str, ca_pem: bytes, *, kubeconfig: str | None = None) -> None:
    """cluster-info in kube-public, readable by system:anonymous only (fixtures 06, 08, 27)."""
    _put(store, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                 "data": {"kubeconfig": kubeconfig or cluster_info_kubeconfig(server, ca_pem)}})
    _put(store, _role("kubeadm:bootstrap-signer-clusterinfo", "kube-public", "cluster-info"))
    _put(store, binding("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo", "Role",
                        "kubeadm:bootstrap-signer-clusterinfo", [("User", "system:anonymous")], "kube-public"))


DEFAULT_CLUSTER_CONFIGURATION = (
    "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\n"
    "certificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\n"
    "controllerManager: {}\ndns: {}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\n"
    "imageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.0\nnetworking:\n"
    "  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\nproxy: {}\nscheduler: {}\n"
)
DEFAULT_KUBELET_CONFIGURATION = (
    "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"
    "cgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\nkind: KubeletConfiguration\n"
    "rotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n"
)


def seed_init(srv: Any, *, token: str | None = "abcdef.0123456789abcdef", server: str | None = None,
              auto_approve: bool = True, cluster_configuration: str = DEFAULT_CLUSTER_CONFIGURATION,
              kubelet_configuration: str = DEFAULT_KUBELET_CONFIGURATION) -> None:
    """Everything `kubeadm init` writes that join depends on, against a TestAPIServer."""
    store: Store = srv.store
    grant_cluster_admins(store)
    upload_config(store, cluster_configuration, kubelet_configuration)
    if token:
        create_token(store, token)
    bootstrap_token_rbac(store, auto_approve=auto_approve)
    cluster_info(store, server or srv.url, srv.ca_pem)
