"""The model as kubeadm.k8s.io/v1beta4 documents (config print, the kubeadm-config ConfigMap)."""

from __future__ import annotations

import socket
from typing import Any

from kbootd.config.model import (
    CONTROL_PLANE_TAINT,
    DEFAULT_CRI_SOCKET,
    BootstrapTokenSpec,
    ClusterConfig,
    Component,
    InitConfig,
    JoinConfig,
    NodeRegistration,
    Timeouts,
)
from kbootd.duration import format_duration

API = "kubeadm.k8s.io/v1beta4"
# `config print` shows kubeadm's placeholders, not secrets: the token is the documented example.
PLACEHOLDER_TOKEN = "abcdef.0123456789abcdef"


def _args(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": k, "value": val} for k, val in pairs]


def _component(c: Component, sans: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.extra_args:
        out["extraArgs"] = _args(c.extra_args)
    if c.extra_envs:
        out["extraEnvs"] = [{"name": k, "value": val} for k, val in c.extra_envs]
    if c.extra_volumes:
        out["extraVolumes"] = [
            {"name": m.name, "hostPath": m.host_path, "mountPath": m.mount_path,
             **({"readOnly": True} if m.read_only else {}), **({"pathType": m.path_type} if m.path_type else {})}
            for m in c.extra_volumes]
    if sans:
        out["certSANs"] = list(sans)
    return out


def cluster_doc(c: ClusterConfig) -> dict[str, Any]:
    etcd: dict[str, Any]
    if c.etcd_external is not None:
        x = c.etcd_external
        etcd = {"external": {"endpoints": list(x.endpoints), "caFile": x.ca_file,
                             "certFile": x.cert_file, "keyFile": x.key_file}}
    else:
        loc = c.etcd_local
        assert loc is not None
        local: dict[str, Any] = {"dataDir": loc.data_dir}
        if loc.extra_args:
            local["extraArgs"] = _args(loc.extra_args)
        if loc.image_repository:
            local["imageRepository"] = loc.image_repository
        if loc.image_tag:
            local["imageTag"] = loc.image_tag
        if loc.server_cert_sans:
            local["serverCertSANs"] = list(loc.server_cert_sans)
        if loc.peer_cert_sans:
            local["peerCertSANs"] = list(loc.peer_cert_sans)
        etcd = {"local": local}
    net: dict[str, Any] = {"dnsDomain": c.networking.dns_domain, "serviceSubnet": c.networking.service_subnet}
    if c.networking.pod_subnet:
        net["podSubnet"] = c.networking.pod_subnet
    dns: dict[str, Any] = {}
    if c.dns_disabled:
        dns["disabled"] = True
    if c.dns_image_repository:
        dns["imageRepository"] = c.dns_image_repository
    if c.dns_image_tag:
        dns["imageTag"] = c.dns_image_tag
    doc: dict[str, Any] = {
        "apiServer": _component(c.api_server, c.api_server_cert_sans),
        "apiVersion": API,
        "caCertificateValidityPeriod": format_duration(c.ca_validity),
        "certificateValidityPeriod": format_duration(c.cert_validity),
        "certificatesDir": c.certificates_dir,
        "clusterName": c.cluster_name,
        "controllerManager": _component(c.controller_manager),
        "dns": dns,
        "encryptionAlgorithm": c.encryption_algorithm,
        "etcd": etcd,
        "imageRepository": c.image_repository,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": c.kubernetes_version,
        "networking": net,
        "proxy": {"disabled": True} if c.proxy_disabled else {},
        "scheduler": _component(c.scheduler),
    }
    if c.control_plane_endpoint:
        doc["controlPlaneEndpoint"] = c.control_plane_endpoint
    if c.feature_gates:
        doc["featureGates"] = dict(c.feature_gates)
    return doc


def _timeouts(t: Timeouts) -> dict[str, str]:
    return {
        "controlPlaneComponentHealthCheck": format_duration(t.control_plane_component_health_check),
        "discovery": format_duration(t.discovery),
        "etcdAPICall": format_duration(t.etcd_api_call),
        "kubeletHealthCheck": format_duration(t.kubelet_health_check),
        "kubernetesAPICall": format_duration(t.kubernetes_api_call),
        "tlsBootstrap": format_duration(t.tls_bootstrap),
        "upgradeManifests": format_duration(t.upgrade_manifests),
    }


def _node(name: str, cri: str, taints: Any) -> dict[str, Any]:
    return {"criSocket": cri, "imagePullPolicy": "IfNotPresent", "imagePullSerial": True,
            "name": name, "taints": taints}


def init_defaults_docs(cfg: InitConfig) -> list[dict[str, Any]]:
    """kubeadm's `config print init-defaults`: defaults with its placeholder values."""
    init = {
        "apiVersion": API,
        "bootstrapTokens": [{
            "groups": ["system:bootstrappers:kubeadm:default-node-token"],
            "token": PLACEHOLDER_TOKEN, "ttl": "24h0m0s", "usages": ["signing", "authentication"]}],
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": "1.2.3.4", "bindPort": cfg.bind_port},
        "nodeRegistration": _node("node", "unix:///var/run/containerd/containerd.sock", None),
        "timeouts": _timeouts(cfg.timeouts),
    }
    cluster = cluster_doc(cfg.cluster)
    cluster["kubernetesVersion"] = cfg.cluster.kubernetes_version.lstrip("v")
    return [init, cluster]


def join_defaults_doc(cfg: JoinConfig) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "caCertPath": cfg.ca_cert_path,
        "discovery": {
            "bootstrapToken": {"apiServerEndpoint": "kube-apiserver:6443", "token": PLACEHOLDER_TOKEN,
                               "unsafeSkipCAVerification": True},
            "tlsBootstrapToken": PLACEHOLDER_TOKEN,
        },
        "kind": "JoinConfiguration",
        "nodeRegistration": _node(_hostname(), "unix:///var/run/containerd/containerd.sock", None),
        "timeouts": _timeouts(cfg.timeouts),
    }


def dump(docs: list[dict[str, Any]]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=True, default_flow_style=False) for d in docs)


def _hostname() -> str:
    return socket.gethostname().split(".")[0].lower() or "node"


# --- a loaded configuration as v1beta4 (`config migrate`) ---------------------------------

def _node_doc(n: NodeRegistration, default_taints: Any) -> dict[str, Any]:
    taints = default_taints if n.taints is None else [
        {"effect": t.effect, "key": t.key, **({"value": t.value} if t.value else {})} for t in n.taints]
    out: dict[str, Any] = {"criSocket": n.cri_socket or DEFAULT_CRI_SOCKET, "imagePullPolicy": n.image_pull_policy,
                           "imagePullSerial": True, "taints": taints}
    if n.name:
        out["name"] = n.name  # unset: the host name when the file is used, not this host's
    if n.kubelet_extra_args:
        out["kubeletExtraArgs"] = _args(n.kubelet_extra_args)
    if n.ignore_preflight_errors:
        out["ignorePreflightErrors"] = list(n.ignore_preflight_errors)
    return out


def _token_doc(t: BootstrapTokenSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"groups": list(t.groups), "usages": list(t.usages)}
    if t.token is not None:
        out["token"] = t.token.full  # the file's own token: the migrated file must mean the same
    if t.expires:
        out["expires"] = t.expires
    elif t.ttl is not None:
        out["ttl"] = format_duration(t.ttl)
    if t.description:
        out["description"] = t.description
    return out


def init_doc(cfg: InitConfig) -> dict[str, Any]:
    ep: dict[str, Any] = {"bindPort": cfg.bind_port}
    if cfg.advertise_address:
        ep["advertiseAddress"] = cfg.advertise_address
    doc: dict[str, Any] = {
        "apiVersion": API,
        "bootstrapTokens": [_token_doc(t) for t in cfg.bootstrap_tokens],
        "kind": "InitConfiguration",
        "localAPIEndpoint": ep,
        # kubeadm's dynamic defaults give an init node the control-plane taint.
        "nodeRegistration": _node_doc(cfg.node, [{"effect": CONTROL_PLANE_TAINT.effect,
                                                  "key": CONTROL_PLANE_TAINT.key}]),
        "timeouts": _timeouts(cfg.timeouts),
    }
    if cfg.skip_phases:
        doc["skipPhases"] = list(cfg.skip_phases)
    return doc


def join_doc(cfg: JoinConfig) -> dict[str, Any]:
    disc: dict[str, Any] = {}
    if cfg.discovery_file:
        disc["file"] = {"kubeConfigPath": cfg.discovery_file}
    else:
        bt: dict[str, Any] = {}
        if cfg.api_server_endpoints:
            bt["apiServerEndpoint"] = cfg.api_server_endpoints[0]
        if cfg.ca_cert_hashes:
            bt["caCertHashes"] = list(cfg.ca_cert_hashes)
        if cfg.discovery_token is not None:
            bt["token"] = cfg.discovery_token.full
        if cfg.unsafe_skip_ca_verification:
            bt["unsafeSkipCAVerification"] = True
        disc["bootstrapToken"] = bt
    if cfg.tls_bootstrap_token is not None:
        disc["tlsBootstrapToken"] = cfg.tls_bootstrap_token.full
    doc: dict[str, Any] = {
        "apiVersion": API,
        "caCertPath": cfg.ca_cert_path,
        "discovery": disc,
        "kind": "JoinConfiguration",
        "nodeRegistration": _node_doc(cfg.node, None),
        "timeouts": _timeouts(cfg.timeouts),
    }
    if cfg.skip_phases:
        doc["skipPhases"] = list(cfg.skip_phases)
    return doc
