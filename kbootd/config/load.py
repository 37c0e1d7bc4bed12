"""Build InitConfig/JoinConfig from a config file or from flags, and check the whole."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kbootd.config import v1alpha1, v1beta4
from kbootd.config import validate as v
from kbootd.config.model import (
    BootstrapTokenSpec,
    ClusterConfig,
    Component,
    InitConfig,
    JoinConfig,
    Networking,
    NodeRegistration,
)
from kbootd.config.yamlsrc import Fields, load_documents
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError
from kbootd.token import BootstrapToken

Warn = Callable[[str], None]

# Flags that describe kubeadm's behaviour rather than the cluster: the only ones allowed
# beside --config (the spec's rule since 1.8).
BEHAVIOUR_FLAGS = {"config", "dry_run", "skip_preflight_checks", "ignore_preflight_errors",
                   "verbosity", "skip_token_print", "root", "skip_phases", "discovery_timeout",
                   "command", "workflow", "phase_name"}
KNOWN_EXTRA_KINDS = {
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"): "kubelet",
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"): "proxy",
}


def read_config_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"--config: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(f"--config: {path}: cannot read: {e}") from None


def load_file(path: str, role: str, warn: Warn, text: str | None = None) -> InitConfig | JoinConfig:
    """role is "init" or "join"; the file must hold the matching kinds."""
    docs = load_documents(read_config_file(path) if text is None else text, path)
    if not docs:
        raise ValidationError(f"{path}: no configuration document found")
    init_kw = cluster = join = None
    extras: dict[str, dict] = {}
    seen: set[str] = set()
    for doc in docs:
        if not isinstance(doc.data, dict):
            raise ValidationError(f"{path}:{doc.line(())}: expected a mapping with apiVersion and kind")
        api, kind = doc.data.get("apiVersion"), doc.data.get("kind")
        f = Fields.root(doc, str(kind))
        if not api or not kind:
            raise ValidationError(f"{path}:{doc.line(())}: document has no apiVersion or kind")
        if kind in seen:
            raise ValidationError(f"{path}:{doc.line(())}: {kind} given twice")
        seen.add(str(kind))
        if (api, kind) in KNOWN_EXTRA_KINDS:
            extras[KNOWN_EXTRA_KINDS[(api, kind)]] = dict(doc.data)
        elif api == v1beta4.API and kind == "InitConfiguration":
            init_kw = v1beta4.init(f)
        elif api == v1beta4.API and kind == "ClusterConfiguration":
            cluster = v1beta4.cluster(f, warn)
        elif api == v1beta4.API and kind == "JoinConfiguration":
            join = v1beta4.join(f)
        elif api == v1alpha1.API and kind == "MasterConfiguration":
            cluster_only = v1alpha1.master(f, warn, path)
            warn(f"{path}: kubeadm.k8s.io/v1alpha1 is the spec's format; kubeadm today reads "
                 "v1beta4 (see `kbootd config print init-defaults`)")
            return _finish_init(cluster_only, role, path)
        elif api == v1alpha1.API and kind == "NodeConfiguration":
            warn(f"{path}: kubeadm.k8s.io/v1alpha1 is the spec's format; kubeadm today reads v1beta4")
            return _finish_join(v1alpha1.node(f), role, path)
        elif str(api).startswith("kubeadm.k8s.io/"):
            raise ValidationError(
                f"{path}:{doc.line(('apiVersion',))}: {api}/{kind} is not supported; use "
                f"{v1beta4.API} (InitConfiguration, ClusterConfiguration, JoinConfiguration) "
                f"or {v1alpha1.API} (MasterConfiguration, NodeConfiguration)")
        else:
            raise ValidationError(f"{path}:{doc.line(('kind',))}: unknown document kind {api}/{kind}")
    if join is not None:
        if init_kw is not None or cluster is not None:
            raise ValidationError(f"{path}: JoinConfiguration cannot be mixed with Init/ClusterConfiguration")
        return _finish_join(join, role, path)
    cfg = v1beta4.merge_init(init_kw, cluster, path, extras.get("kubelet"), extras.get("proxy"))
    return _finish_init(cfg, role, path)


def _finish_init(cfg: InitConfig, role: str, path: str) -> InitConfig:
    if role != "init":
        raise ValidationError(f"{path}: holds an init configuration; `join` needs a JoinConfiguration")
    check_init(cfg, path)
    return cfg


def _finish_join(cfg: JoinConfig, role: str, path: str) -> JoinConfig:
    if role != "join":
        raise ValidationError(f"{path}: holds a JoinConfiguration; `init` needs InitConfiguration/ClusterConfiguration")
    cfg = replace(cfg, source=path)
    check_join(cfg, path)
    return cfg


# --- flags ----------------------------------------------------------------------

def config_conflicts(args: argparse.Namespace) -> None:
    """With --config, any configuration flag is an error (spec: only behaviour flags)."""
    if not getattr(args, "config", None):
        return
    given = [k for k, val in vars(args).items()
             if k not in BEHAVIOUR_FLAGS and not k.startswith("_") and val not in (None, False, [])]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ValidationError(
            f"{flag}: cannot be mixed with --config; put it in the configuration file "
            "(only --dry-run, --ignore-preflight-errors, --skip-preflight-checks, --skip-token-print, "
            "--skip-phases and -v may accompany --config)")


def init_from_flags(a: argparse.Namespace, warn: Warn) -> InitConfig:
    d = ClusterConfig()
    service = v.cidrs(a.service_cidr, "--service-cidr") if a.service_cidr else d.networking.service_subnet
    pod = v.cidrs(a.pod_network_cidr, "--pod-network-cidr") if a.pod_network_cidr else None
    v.check_overlap(service, pod, "--pod-network-cidr")
    net = Networking(service, pod, v.dns_domain(a.service_dns_domain, "--service-dns-domain")
                     if a.service_dns_domain else d.networking.dns_domain)
    gates = ()
    if a.feature_gates:
        gates = v.parse_feature_gates(",".join(a.feature_gates), "--feature-gates")
    cluster = ClusterConfig(
        kubernetes_version=v.kubernetes_version(a.kubernetes_version, "--kubernetes-version", warn)
        if a.kubernetes_version else d.kubernetes_version,
        control_plane_endpoint=v.endpoint(a.control_plane_endpoint, "--control-plane-endpoint")
        if a.control_plane_endpoint else None,
        certificates_dir=a.cert_dir or d.certificates_dir,
        image_repository=a.image_repository or d.image_repository,
        networking=net,
        api_server=Component(),
        api_server_cert_sans=tuple(v.san(s, "--apiserver-cert-extra-sans")
                                   for s in (a.apiserver_cert_extra_sans or [])),
        feature_gates=gates,
    )
    tok = BootstrapToken.parse(a.token, source="--token") if a.token else None
    ttl = parse_duration(a.token_ttl, what="--token-ttl") if a.token_ttl is not None else 24 * 3600.0
    node = NodeRegistration(
        name=v.node_name(a.node_name, "--node-name") if a.node_name else None,
        cri_socket=v.cri_socket(a.cri_socket, "--cri-socket") if a.cri_socket else None,
    )
    cfg = InitConfig(
        cluster=cluster,
        advertise_address=v.ip_address(a.apiserver_advertise_address, "--apiserver-advertise-address")
        if a.apiserver_advertise_address else None,
        bind_port=v.port(a.apiserver_bind_port, "--apiserver-bind-port") if a.apiserver_bind_port else 6443,
        node=node,
        bootstrap_tokens=(BootstrapTokenSpec(token=tok, ttl=ttl),),
        source="flags",
    )
    check_init(cfg, "flags")
    return cfg


def join_from_flags(a: argparse.Namespace, warn: Warn) -> JoinConfig:
    tok = BootstrapToken.parse(a.token, source="--token") if a.token else None
    dtok = BootstrapToken.parse(a.discovery_token, source="--discovery-token") if a.discovery_token else tok
    tls = (BootstrapToken.parse(a.tls_bootstrap_token, source="--tls-bootstrap-token")
           if a.tls_bootstrap_token else tok)
    dfile = v.https_url(a.discovery_file, "--discovery-file") if a.discovery_file else None
    if dfile and a.discovery_token:
        raise ValidationError("--discovery-file: cannot be used together with --discovery-token")
    cfg = JoinConfig(
        node=NodeRegistration(
            name=v.node_name(a.node_name, "--node-name") if a.node_name else None,
            cri_socket=v.cri_socket(a.cri_socket, "--cri-socket") if a.cri_socket else None,
        ),
        discovery_token=None if dfile else dtok,
        api_server_endpoints=tuple(v.endpoint(e, "API server endpoint argument") for e in a.endpoints),
        ca_cert_hashes=tuple(v.ca_hash(h, "--discovery-token-ca-cert-hash")
                             for h in (a.discovery_token_ca_cert_hash or [])),
        unsafe_skip_ca_verification=bool(a.discovery_token_unsafe_skip_ca_verification),
        discovery_file=dfile,
        tls_bootstrap_token=tls or dtok,
        source="flags",
    )
    check_join(cfg, "flags")
    return cfg


# --- whole-config checks ----------------------------------------------------------

def check_init(cfg: InitConfig, where: str) -> None:
    net = cfg.cluster.networking
    v.check_overlap(net.service_subnet, net.pod_subnet, f"{where}: networking")
    v.service_ip(net.service_subnet, 10)
    ext = cfg.cluster.etcd_external
    if ext is not None:
        files = [ext.ca_file, ext.cert_file, ext.key_file]
        if any(files) and not all(files):
            raise ValidationError(f"{where}: etcd.external: caFile, certFile and keyFile go together")


def check_join(cfg: JoinConfig, where: str) -> None:
    if cfg.discovery_file:
        return
    if cfg.discovery_token is None:
        raise ValidationError(
            f"{where}: join needs discovery: --token (or --discovery-token) with an API server "
            "endpoint, or --discovery-file")
    if not cfg.api_server_endpoints:
        raise ValidationError(f"{where}: token discovery needs at least one API server endpoint (host:port)")
    if not cfg.ca_cert_hashes and not cfg.unsafe_skip_ca_verification:
        raise ValidationError(
            f"{where}: token discovery needs --discovery-token-ca-cert-hash sha256:<hex> to pin the "
            "cluster CA; pass --discovery-token-unsafe-skip-ca-verification to accept any CA that the "
            "token signs (see the security model in the README)")
    if cfg.tls_bootstrap_token is None:
        raise ValidationError(f"{where}: no TLS bootstrap token: give --token or --tls-bootstrap-token")
