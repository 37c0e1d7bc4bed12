"""kubeadm.k8s.io/v1beta4: InitConfiguration + ClusterConfiguration, JoinConfiguration."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kbootd import redact
from kbootd.config import common
from kbootd.config import validate as v
from kbootd.config.model import (
    DEFAULT_BIND_PORT,
    ClusterConfig,
    Component,
    ExternalEtcd,
    HostPathMount,
    InitConfig,
    JoinConfig,
    LocalEtcd,
    Timeouts,
)
from kbootd.config.yamlsrc import Fields
from kbootd.duration import format_duration
from kbootd.errors import ValidationError

API = "kubeadm.k8s.io/v1beta4"


def timeouts(f: Fields | None) -> Timeouts:
    if f is None:
        return Timeouts()
    d = Timeouts()
    t = Timeouts(
        control_plane_component_health_check=common.duration(
            f, "controlPlaneComponentHealthCheck", d.control_plane_component_health_check),
        kubelet_health_check=common.duration(f, "kubeletHealthCheck", d.kubelet_health_check),
        kubernetes_api_call=common.duration(f, "kubernetesAPICall", d.kubernetes_api_call),
        etcd_api_call=common.duration(f, "etcdAPICall", d.etcd_api_call),
        tls_bootstrap=common.duration(f, "tlsBootstrap", d.tls_bootstrap),
        discovery=common.duration(f, "discovery", d.discovery),
        upgrade_manifests=common.duration(f, "upgradeManifests", d.upgrade_manifests),
    )
    f.finish()
    return t


def _unsupported(f: Fields, key: str, why: str) -> None:
    if f.raw(key) not in (None, {}, []):
        raise f.error(key, f"not supported by kbootd yet: {why}")


def _component(f: Fields | None, *, with_sans: bool = False) -> tuple[Component, tuple[str, ...]]:
    if f is None:
        return Component(), ()
    args = common.extra_args_list(f, "extraArgs")
    vols = []
    for vf in f.items("extraVolumes"):
        vols.append(HostPathMount(
            name=vf.str("name") or "", host_path=vf.str("hostPath") or "",
            mount_path=vf.str("mountPath") or "", read_only=vf.bool("readOnly"),
            path_type=vf.str("pathType", "") or ""))
        for req in ("name", "hostPath", "mountPath"):
            if not vf.data.get(req):
                raise vf.error(req, "required")
        vf.finish()
    envs = []
    for ef in f.items("extraEnvs"):
        envs.append((ef.str("name") or "", ef.str("value", "") or ""))
        ef.raw("valueFrom")
        ef.finish()
    sans: tuple[str, ...] = ()
    if with_sans:
        sans = tuple(v.san(s, f.where("certSANs")) for s in f.str_list("certSANs"))
    f.finish()
    return Component(args, tuple(vols), tuple(envs)), sans


def cluster(f: Fields, warn) -> ClusterConfig:
    common.require_kind(f, API, ("ClusterConfiguration",))
    d = ClusterConfig()
    local, external = d.etcd_local, None
    ef = f.sub("etcd")
    if ef is not None:
        lf, xf = ef.sub("local"), ef.sub("external")
        if lf and xf:
            raise ef.error("external", "give either etcd.local or etcd.external, not both")
        if lf is not None:
            local = LocalEtcd(
                data_dir=lf.str("dataDir", "/var/lib/etcd", check=v.absolute_path),
                image_repository=lf.str("imageRepository", check=v.image_repository),
                image_tag=lf.str("imageTag"),
                extra_args=common.extra_args_list(lf, "extraArgs"),
                extra_envs=tuple((e.str("name") or "", e.str("value", "") or "") for e in lf.items("extraEnvs")),
                server_cert_sans=tuple(v.san(s, lf.where("serverCertSANs")) for s in lf.str_list("serverCertSANs")),
                peer_cert_sans=tuple(v.san(s, lf.where("peerCertSANs")) for s in lf.str_list("peerCertSANs")),
            )
            lf.finish()
        if xf is not None:
            eps = xf.str_list("endpoints")
            if not eps:
                raise xf.error("endpoints", "at least one external etcd endpoint is required")
            external = external_etcd(xf, eps)
            xf.str_list("httpEndpoints")
            xf.finish()
            local = None
        ef.finish()
    nf = f.sub("networking")
    net = common.networking(nf, warn)
    api, sans = _component(f.sub("apiServer"), with_sans=True)
    cm, _ = _component(f.sub("controllerManager"))
    common.check_networking(net, nf, cm.extra_args, f.where("controllerManager") + ".extraArgs", f.where())
    sch, _ = _component(f.sub("scheduler"))
    dns_disabled, dns_repo, dns_tag = False, None, None
    if (df := f.sub("dns")) is not None:
        dns_disabled = df.bool("disabled")
        dns_repo, dns_tag = df.str("imageRepository", check=v.image_repository), df.str("imageTag")
        df.finish()
    proxy_disabled = False
    if (pf := f.sub("proxy")) is not None:
        proxy_disabled = pf.bool("disabled")
        pf.finish()
    cfg = ClusterConfig(
        kubernetes_version=f.str("kubernetesVersion", d.kubernetes_version,
                                 check=lambda x, w: v.kubernetes_version(x, w, warn)),
        cluster_name=f.str("clusterName", d.cluster_name),
        control_plane_endpoint=f.str("controlPlaneEndpoint", check=lambda x, w: v.endpoint(x, w, None)),
        certificates_dir=f.str("certificatesDir", d.certificates_dir, check=v.absolute_path),
        image_repository=f.str("imageRepository", d.image_repository, check=v.image_repository),
        etcd_local=local, etcd_external=external, networking=net,
        api_server=api, api_server_cert_sans=sans, controller_manager=cm, scheduler=sch,
        feature_gates=common.feature_gates(f, "featureGates"),
        encryption_algorithm=f.str("encryptionAlgorithm", d.encryption_algorithm, check=v.encryption_algorithm),
        ca_validity=common.duration(f, "caCertificateValidityPeriod", d.ca_validity),
        cert_validity=common.duration(f, "certificateValidityPeriod", d.cert_validity),
        dns_disabled=dns_disabled, dns_image_repository=dns_repo, dns_image_tag=dns_tag,
        proxy_disabled=proxy_disabled,
    )
    f.raw("apiVersion"), f.raw("kind")
    _unsupported(f, "etcdUpgrade", "upgrades are out of scope")
    f.finish()
    return cfg


def skip_phases(f: Fields) -> tuple[str, ...]:
    """skipPhases as written; config/load.py checks the names against the workflow at load time."""
    return f.str_list("skipPhases")


def init(f: Fields) -> dict[str, Any]:
    """The InitConfiguration's fields as InitConfig keyword arguments."""
    common.require_kind(f, API, ("InitConfiguration",))
    kw: dict[str, Any] = {}
    tokens = tuple(common.bootstrap_token_spec(t) for t in f.items("bootstrapTokens"))
    if f.has("bootstrapTokens"):
        kw["bootstrap_tokens"] = tokens
    kw["node"] = common.node_registration(f.sub("nodeRegistration"), extra_args_as_list=True)
    if (ep := f.sub("localAPIEndpoint")) is not None:
        kw["advertise_address"] = ep.str("advertiseAddress", check=v.ip_address)
        kw["bind_port"] = bind_port(ep)
        ep.finish()
    if f.has("certificateKey"):
        redact.register(f.str("certificateKey"))
        _unsupported(f, "certificateKey", "control-plane certificate upload (--upload-certs)")
    kw["skip_phases"] = skip_phases(f)
    kw["timeouts"] = timeouts(f.sub("timeouts"))
    kw["_dry_run"] = f.bool("dryRun")
    _unsupported(f, "patches", "kustomize-style patches")
    f.finish()
    return kw


def join(f: Fields) -> JoinConfig:
    common.require_kind(f, API, ("JoinConfiguration",))
    node = common.node_registration(f.sub("nodeRegistration"), extra_args_as_list=True)
    df = f.sub("discovery")
    if df is None:
        raise f.error("discovery", "required: discovery.bootstrapToken or discovery.file")
    tok = endpoints = None
    hashes: tuple[str, ...] = ()
    unsafe = False
    dfile = None
    if df.data.get("bootstrapToken") is not None and df.data.get("file") is not None:
        # ValidateDiscovery: "bootstrapToken and file cannot both be set"
        raise df.error("file", "give either discovery.bootstrapToken or discovery.file, not both")
    if (bf := df.sub("bootstrapToken")) is not None:
        tok = common.token(bf, "token")
        ep = bf.str("apiServerEndpoint", check=v.endpoint)
        endpoints = (ep,) if ep else ()
        hashes = tuple(v.ca_hash(h, bf.where("caCertHashes")) for h in bf.str_list("caCertHashes"))
        unsafe = bf.bool("unsafeSkipCAVerification")
        bf.finish()
    if (ff := df.sub("file")) is not None:
        dfile = ff.str("kubeConfigPath", check=v.https_url)
        if not dfile:
            raise ff.error("kubeConfigPath", "required")
        ff.finish()
    tls = common.token(df, "tlsBootstrapToken")
    df.raw("timeout")  # v1beta3's field; v1beta4 moved it to timeouts.discovery
    df.finish()
    _unsupported(f, "controlPlane", "joining additional control-plane nodes")
    cfg = JoinConfig(
        node=node, ca_cert_path=f.str("caCertPath", JoinConfig().ca_cert_path, check=v.ca_cert_path),
        discovery_token=tok, api_server_endpoints=endpoints or (), ca_cert_hashes=hashes,
        unsafe_skip_ca_verification=unsafe, discovery_file=dfile,
        tls_bootstrap_token=tls or tok, skip_phases=skip_phases(f),
        timeouts=timeouts(f.sub("timeouts")),
    )
    f.bool("dryRun")
    _unsupported(f, "patches", "kustomize-style patches")
    f.finish()
    return cfg


def merge_init(init_kw: dict[str, Any] | None, cluster_cfg: ClusterConfig | None, source: str,
               kubelet: dict[str, Any] | None = None, proxy: dict[str, Any] | None = None) -> InitConfig:
    kw = dict(init_kw or {})
    kw.pop("_dry_run", None)
    cfg = InitConfig(cluster=cluster_cfg or ClusterConfig(), source=source, **kw)
    if kubelet:
        cfg = replace(cfg, kubelet_overrides=kubelet)
    if proxy:
        cfg = replace(cfg, kube_proxy_overrides=proxy)
    if cfg.cluster.etcd_external is None and cfg.cluster.etcd_local is None:
        raise ValidationError(f"{source}: etcd: neither local nor external")
    return with_endpoint_port(cfg)


def with_endpoint_port(cfg: InitConfig) -> InitConfig:
    """A controlPlaneEndpoint without a port takes localAPIEndpoint.bindPort (kubeadm's
    GetControlPlaneEndpoint), not a fixed 6443."""
    cpe = cfg.cluster.control_plane_endpoint
    if cpe and v.endpoint_port(cpe) is None:
        return replace(cfg, cluster=replace(cfg.cluster, control_plane_endpoint=f"{cpe}:{cfg.bind_port}"))
    return cfg


def bind_port(ep: Fields) -> int:
    """bindPort 0 (Go's zero value) means unset in kubeadm: the default 6443."""
    port = ep.get("bindPort", int, None)
    if port in (None, 0):
        return DEFAULT_BIND_PORT
    return v.port(port, ep.where("bindPort"))


def external_etcd(xf: Fields, endpoints: tuple[str, ...]) -> ExternalEtcd:
    """ValidateEtcd's rules for etcd.external."""
    ca = xf.str("caFile", check=v.absolute_path) or ""
    cert = xf.str("certFile", check=v.absolute_path) or ""
    key = xf.str("keyFile", check=v.absolute_path) or ""
    if bool(cert) != bool(key):
        raise xf.error("certFile" if not cert else "keyFile",
                       "give both certFile and keyFile, or neither")
    if cert and not ca:
        raise xf.error("caFile", "certFile and keyFile need caFile too")
    v.etcd_endpoints(endpoints, bool(ca or cert or key), xf.where("endpoints"))
    return ExternalEtcd(endpoints, ca, cert, key)


def validity_warnings(c: ClusterConfig, source: str, warn) -> None:
    """kubeadm's ValidateCertValidity (periods above the recommended defaults), plus a leaf period
    longer than the CA's: the leaf would outlive its issuer."""

    d = ClusterConfig()
    if c.cert_validity > d.cert_validity:
        warn(f"{source}: certificateValidityPeriod: the value {format_duration(c.cert_validity)} is more than "
             f"the recommended default for certificate expiration: {format_duration(d.cert_validity)}")
    if c.ca_validity > d.ca_validity:
        warn(f"{source}: caCertificateValidityPeriod: the value {format_duration(c.ca_validity)} is more than "
             f"the recommended default for CA certificate expiration: {format_duration(d.ca_validity)}")
    if c.cert_validity > c.ca_validity:
        warn(f"{source}: certificateValidityPeriod {format_duration(c.cert_validity)} is longer than "
             f"caCertificateValidityPeriod {format_duration(c.ca_validity)}: certificates cannot outlive their CA")
