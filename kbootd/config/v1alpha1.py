"""kubeadm.k8s.io/v1alpha1, the spec's MasterConfiguration and NodeConfiguration."""

from __future__ import annotations

from kbootd.config import common, v1beta4
from kbootd.config import validate as v
from kbootd.config.model import (
    DEFAULT_BIND_PORT,
    BootstrapTokenSpec,
    ClusterConfig,
    Component,
    ExternalEtcd,
    InitConfig,
    JoinConfig,
    LocalEtcd,
    NodeRegistration,
)
from kbootd.config.yamlsrc import Fields
from kbootd.errors import ValidationError

API = "kubeadm.k8s.io/v1alpha1"


def master(f: Fields, warn, source: str) -> InitConfig:
    common.require_kind(f, API, ("MasterConfiguration",))
    d = ClusterConfig()
    adv, port = None, DEFAULT_BIND_PORT
    if (af := f.sub("api")) is not None:
        adv = af.str("advertiseAddress", check=v.ip_address)
        port = v1beta4.bind_port(af)
        af.raw("controlPlaneEndpoint")  # v1alpha2-era name, tolerated
        af.finish()
    local, external = LocalEtcd(), None
    if (ef := f.sub("etcd")) is not None:
        endpoints = ef.str_list("endpoints")
        data_dir = ef.str("dataDir", "/var/lib/etcd", check=v.absolute_path)
        extra = ef.str_map("extraArgs")
        image = ef.str("image")
        ca, cert, key = ef.str("caFile", "") or "", ef.str("certFile", "") or "", ef.str("keyFile", "") or ""
        ef.finish()
        if endpoints:
            external = ExternalEtcd(endpoints, ca, cert, key)
            local = None
        else:
            local = LocalEtcd(data_dir=data_dir, image=image, extra_args=extra)
    nf = f.sub("networking")
    net = common.networking(nf, warn)
    common.check_networking(net, nf, f.str_map("controllerManagerExtraArgs"),
                            f.where("controllerManagerExtraArgs"), f.where())
    modes = f.str_list("authorizationModes", d.authorization_modes)
    for m in modes:
        v.one_of(v.AUTHORIZATION_MODES)(m, f.where("authorizationModes"))
    if f.bool("selfHosted"):
        raise f.error("selfHosted", "self-hosted control planes were removed from kubeadm in v1.14; "
                                    "kbootd runs the control plane as static Pods")
    tok = common.token(f, "token")
    ttl = common.duration(f, "tokenTTL", 24 * 3600.0)
    cluster = ClusterConfig(
        kubernetes_version=f.str("kubernetesVersion", d.kubernetes_version,
                                 check=lambda x, w: v.kubernetes_version(x, w, warn)),
        certificates_dir=f.str("certificatesDir", d.certificates_dir, check=v.absolute_path),
        image_repository=f.str("imageRepository", d.image_repository, check=v.image_repository),
        unified_control_plane_image=f.str("unifiedControlPlaneImage"),
        etcd_local=local, etcd_external=external, networking=net,
        api_server=Component(f.str_map("apiServerExtraArgs")),
        api_server_cert_sans=tuple(v.san(s, f.where("apiServerCertSANs")) for s in f.str_list("apiServerCertSANs")),
        controller_manager=Component(f.str_map("controllerManagerExtraArgs")),
        scheduler=Component(f.str_map("schedulerExtraArgs")),
        feature_gates=common.feature_gates(f, "featureGates"),
        cloud_provider=f.str("cloudProvider"),
        authorization_modes=modes,
    )
    node = NodeRegistration(name=f.str("nodeName", check=v.node_name))
    f.finish()
    return InitConfig(cluster=cluster, advertise_address=adv, bind_port=port, node=node,
                      bootstrap_tokens=(BootstrapTokenSpec(token=tok, ttl=ttl),), source=source)


def node(f: Fields) -> JoinConfig:
    common.require_kind(f, API, ("NodeConfiguration",))
    tok = common.token(f, "token")
    dtok = common.token(f, "discoveryToken") or tok
    tls = common.token(f, "tlsBootstrapToken") or tok
    endpoints = tuple(v.endpoint(e, f.where("discoveryTokenAPIServers"))
                      for e in f.str_list("discoveryTokenAPIServers"))
    hashes = tuple(v.ca_hash(h, f.where("discoveryTokenCACertHashes"))
                   for h in f.str_list("discoveryTokenCACertHashes"))
    dfile = f.str("discoveryFile", check=v.https_url)
    cfg = JoinConfig(
        node=NodeRegistration(name=f.str("nodeName", check=v.node_name)),
        ca_cert_path=f.str("caCertPath", JoinConfig().ca_cert_path, check=v.ca_cert_path),
        discovery_token=dtok if not dfile else None, api_server_endpoints=endpoints,
        ca_cert_hashes=hashes,
        unsafe_skip_ca_verification=f.bool("discoveryTokenUnsafeSkipCAVerification"),
        discovery_file=dfile, tls_bootstrap_token=tls,
    )
    f.finish()
    if dfile and (f.data.get("discoveryToken")):
        raise ValidationError(f"{f.where('discoveryFile')}: give either discoveryFile or discoveryToken, not both")
    return cfg
