"""Build InitConfig/JoinConfig from a config file or from flags, and check the whole."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kbootd.config import strict, v1alpha1, v1beta3, v1beta4
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
from kbootd.phases import WORKFLOWS
from kbootd.token import BootstrapToken
from kbootd.workflow import check_skips

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


@dataclass
class Parsed:
    """What one file holds: an init configuration, a join configuration, or both (migrate)."""

    init: InitConfig | None = None
    join: JoinConfig | None = None
    # Strict-decoding findings (duplicate keys, unknown component-config fields): warnings on
    # init/join, errors in `config validate`, as in kubeadm.
    strict: list[str] = field(default_factory=list)


def parse_file(path: str, warn: Warn, text: str | None = None) -> Parsed:
    """Every document of a kubeadm configuration file, checked, without a role."""

    text = read_config_file(path) if text is None else text
    docs = load_documents(text, path)
    if not docs:
        raise ValidationError(f"{path}: no configuration document found")
    out = Parsed(strict=strict.problems(text, path))
    init_kw = cluster = join = None
    cp_timeout: tuple[str, str] | None = None
    extras: dict[str, dict] = {}
    seen: set[str] = set()
    skip_where: dict[str, str] = {}
    for doc in docs:
        if not isinstance(doc.data, dict):
            raise ValidationError(f"{path}:{doc.line(())}: expected a mapping with apiVersion and kind")
        api, kind = doc.data.get("apiVersion"), doc.data.get("kind")
        if not api or not kind:
            raise ValidationError(f"{path}:{doc.line(())}: document has no apiVersion or kind")
        for key, val in (("apiVersion", api), ("kind", kind)):
            if not isinstance(val, str):  # `kind: {a: 1}` is not a name to look up
                raise ValidationError(f"{path}:{doc.line((key,))}: {key}: expected a string, "
                                      f"got {type(val).__name__}")
        if kind in seen:
            raise ValidationError(f"{path}:{doc.line(())}: {kind} given twice")
        seen.add(str(kind))
        if api == v1beta3.API and kind in v1beta3.KINDS:
            warn(v1beta3.deprecation_warning(path, str(kind)))
            raw_timeout = v1beta3.convert(doc)
            if raw_timeout is not None:
                cp_timeout = (raw_timeout, f"{path}:{doc.line(('apiServer',))}: "
                                           "ClusterConfiguration.apiServer.timeoutForControlPlane")
            api = v1beta4.API
        f = Fields.root(doc, str(kind))
        if (api, kind) in KNOWN_EXTRA_KINDS:
            extras[KNOWN_EXTRA_KINDS[(api, kind)]] = dict(doc.data)
        elif api == v1beta4.API and kind == "InitConfiguration":
            init_kw = v1beta4.init(f)
            skip_where["init"] = f.where("skipPhases")
        elif api == v1beta4.API and kind == "ClusterConfiguration":
            cluster = v1beta4.cluster(f, warn)
        elif api == v1beta4.API and kind == "JoinConfiguration":
            join = v1beta4.join(f)
            skip_where["join"] = f.where("skipPhases")
        elif api == v1alpha1.API and kind == "MasterConfiguration":
            out.init = v1beta4.with_endpoint_port(v1alpha1.master(f, warn, path))
            warn(f"{path}: kubeadm.k8s.io/v1alpha1 is the spec's format; kubeadm today reads "
                 "v1beta4 (see `kbootd config migrate`)")
            check_init(out.init, path)
            return out
        elif api == v1alpha1.API and kind == "NodeConfiguration":
            warn(f"{path}: kubeadm.k8s.io/v1alpha1 is the spec's format; kubeadm today reads v1beta4 "
                 "(see `kbootd config migrate`)")
            out.join = replace(v1alpha1.node(f), source=path)
            check_join(out.join, path)
            return out
        elif str(api).startswith("kubeadm.k8s.io/"):
            raise ValidationError(
                f"{path}:{doc.line(('apiVersion',))}: {api}/{kind} is not supported; use "
                f"{v1beta4.API} or {v1beta3.API} (InitConfiguration, ClusterConfiguration, JoinConfiguration) "
                f"or {v1alpha1.API} (MasterConfiguration, NodeConfiguration)")
        else:
            raise ValidationError(f"{path}:{doc.line(('kind',))}: unknown document kind {api}/{kind}")
    if join is not None:
        out.join = replace(join, source=path)
        _check_skip_phases(out.join.skip_phases, "join", skip_where["join"])
        check_join(out.join, path)
    if init_kw is not None or cluster is not None:
        cfg = v1beta4.merge_init(init_kw, cluster, path, extras.get("kubelet"), extras.get("proxy"))
        if cp_timeout is not None:
            t = parse_duration(cp_timeout[0], what=cp_timeout[1])
            cfg = replace(cfg, timeouts=replace(cfg.timeouts, control_plane_component_health_check=t))
        v1beta4.validity_warnings(cfg.cluster, path, warn)
        _check_skip_phases(cfg.skip_phases, "init", skip_where.get("init", ""))
        check_init(cfg, path)
        out.init = cfg
    if out.init is None and out.join is None:
        raise ValidationError(f"{path}: no InitConfiguration, ClusterConfiguration or JoinConfiguration found")
    return out


def _check_skip_phases(names: tuple[str, ...], workflow: str, where: str) -> None:
    """skipPhases checked now, at load time, and named as the file's field (not --skip-phases,
    and not only once the workflow starts)."""
    for i, name in enumerate(names):
        check_skips(WORKFLOWS[workflow], [name], f"{where}[{i}]")


def load_file(path: str, role: str, warn: Warn, text: str | None = None) -> InitConfig | JoinConfig:
    """role is "init" or "join"; the file must hold the matching kinds."""
    parsed = parse_file(path, warn, text)
    for problem in parsed.strict:
        warn(problem)
    if parsed.join is not None and parsed.init is not None:
        raise ValidationError(f"{path}: JoinConfiguration cannot be mixed with Init/ClusterConfiguration")
    if parsed.join is not None:
        return _finish_join(parsed.join, role, path)
    assert parsed.init is not None
    return _finish_init(parsed.init, role, path)


def _finish_init(cfg: InitConfig, role: str, path: str) -> InitConfig:
    if role != "init":
        raise ValidationError(f"{path}: holds an init configuration; `join` needs a JoinConfiguration")
    return cfg


def _finish_join(cfg: JoinConfig, role: str, path: str) -> JoinConfig:
    if role != "join":
        raise ValidationError(f"{path}: holds a JoinConfiguration; `init` needs InitConfiguration/ClusterConfiguration")
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
    service = v.cidrs(a.service_cidr, "--service-cidr", warn) if a.service_cidr else d.networking.service_subnet
    pod = v.cidrs(a.pod_network_cidr, "--pod-network-cidr", warn) if a.pod_network_cidr else None
    v.check_overlap(service, pod, "--pod-network-cidr")
    net = Networking(service, pod, v.dns_domain(a.service_dns_domain, "--service-dns-domain")
                     if a.service_dns_domain else d.networking.dns_domain)
    gates = ()
    if a.feature_gates:
        gates = v.parse_feature_gates(",".join(a.feature_gates), "--feature-gates")
    cluster = ClusterConfig(
        kubernetes_version=v.kubernetes_version(a.kubernetes_version, "--kubernetes-version", warn)
        if a.kubernetes_version else d.kubernetes_version,
        control_plane_endpoint=v.endpoint(a.control_plane_endpoint, "--control-plane-endpoint", None)
        if a.control_plane_endpoint else None,
        certificates_dir=v.absolute_path(a.cert_dir, "--cert-dir") if a.cert_dir else d.certificates_dir,
        image_repository=v.image_repository(a.image_repository, "--image-repository")
        if a.image_repository else d.image_repository,
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
    cfg = v1beta4.with_endpoint_port(cfg)
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

# The flag behind a whole-config field, so that an error found in flags names the flag.
FLAG_OF_FIELD = {
    "networking": "--service-cidr/--pod-network-cidr",
    "networking.serviceSubnet": "--service-cidr",
    "networking.podSubnet": "--pod-network-cidr",
    "certificatesDir": "--cert-dir",
    "nodeRegistration.ignorePreflightErrors": "--ignore-preflight-errors",
}


def _at(where: str, field_name: str) -> str:
    if where == "flags" and field_name in FLAG_OF_FIELD:
        return FLAG_OF_FIELD[field_name]
    return f"{where}: {field_name}"


def check_init(cfg: InitConfig, where: str) -> None:
    """kubeadm's whole-configuration rules (ValidateNetworking, ValidateEtcd, ...), for every source."""
    net = cfg.cluster.networking
    v.check_overlap(net.service_subnet, net.pod_subnet, _at(where, "networking"))
    v.subnet_min_size(net.service_subnet, v.MIN_SERVICE_SUBNET_ADDRESSES, _at(where, "networking.serviceSubnet"))
    v.service_subnet_size(net.service_subnet, _at(where, "networking.serviceSubnet"))
    if net.pod_subnet:
        v.subnet_min_size(net.pod_subnet, v.MIN_POD_SUBNET_ADDRESSES, _at(where, "networking.podSubnet"))
        v.pod_subnet_node_mask(net.pod_subnet, cfg.cluster.controller_manager.extra_args,
                               _at(where, "networking.podSubnet"), f"{where}: controllerManager.extraArgs")
    v.service_ip(net.service_subnet, 10, _at(where, "networking.serviceSubnet"))
    v.absolute_path(cfg.cluster.certificates_dir, _at(where, "certificatesDir"))
    v.ignore_preflight_errors(cfg.node.ignore_preflight_errors, _at(where, "nodeRegistration.ignorePreflightErrors"))
    ext = cfg.cluster.etcd_external
    if ext is not None:
        files = {"caFile": ext.ca_file, "certFile": ext.cert_file, "keyFile": ext.key_file}
        for name, path in files.items():
            if path:
                v.absolute_path(path, f"{where}: etcd.external.{name}")
        if bool(ext.cert_file) != bool(ext.key_file):
            raise ValidationError(f"{where}: etcd.external: give both certFile and keyFile, or neither")
        if ext.cert_file and not ext.ca_file:
            raise ValidationError(f"{where}: etcd.external: certFile and keyFile need caFile too")
        v.etcd_endpoints(ext.endpoints, any(files.values()), f"{where}: etcd.external.endpoints")
    if cfg.cluster.etcd_local is not None:
        v.absolute_path(cfg.cluster.etcd_local.data_dir, f"{where}: etcd.local.dataDir")


def check_join(cfg: JoinConfig, where: str) -> None:
    v.ca_cert_path(cfg.ca_cert_path, _at(where, "caCertPath"))
    v.ignore_preflight_errors(cfg.node.ignore_preflight_errors, _at(where, "nodeRegistration.ignorePreflightErrors"))
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
