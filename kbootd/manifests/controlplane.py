"""kube-apiserver, kube-controller-manager and kube-scheduler static Pods (kubeadm's controlplane phase)."""

from __future__ import annotations

from collections.abc import Callable

from kbootd.config import validate as v
from kbootd.config.model import ClusterConfig, Component
from kbootd.errors import ValidationError
from kbootd.manifests import pod
from kbootd.manifests.etcd import client_url, localhost
from kbootd.manifests.pod import FILE, FILE_OR_CREATE, Args, Mount, Pod, check_supported

KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
KUBE_SCHEDULER = "kube-scheduler"
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259

# Host paths (beyond ctx.paths) that kubeadm mounts into the control plane.
CA_CERTS_DIR = "/etc/ssl/certs"
# Mounted when present: /etc/ssl/certs may hold symlinks into them (distribution-specific).
CA_CERTS_EXTRA_DIRS = ("/etc/pki/ca-trust", "/etc/pki/tls/certs", "/etc/ca-certificates",
                       "/usr/share/ca-certificates", "/usr/local/share/ca-certificates")
FLEXVOLUME_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
# The spec's fixed files for the ABAC and Webhook authorizers, in the Kubernetes directory.
ABAC_POLICY_NAME = "abac_policy.json"
WEBHOOK_AUTHZ_NAME = "webhook_authz.conf"

DEFAULT_AUTHORIZATION_MODES = ("Node", "RBAC")
# In-tree cloud providers were disabled in v1.29 and removed by v1.31: only this is left.
EXTERNAL_CLOUD_PROVIDER = "external"

Warn = Callable[[str], None]


def _warn(ctx) -> Warn:
    return lambda msg: ctx.reporter.warn("control-plane", msg)


def cloud_provider(c: ClusterConfig) -> str | None:
    """The spec's cloudProvider, mapped onto what Kubernetes v1.30+ still accepts."""
    p = (c.cloud_provider or "").strip()
    if not p:
        return None
    if p == EXTERNAL_CLOUD_PROVIDER:
        return p
    raise ValidationError(
        f"cloudProvider: {p!r} is an in-tree cloud provider; Kubernetes disabled them in v1.29 and "
        "removed them, so kube-controller-manager only accepts \"external\". Set cloudProvider: "
        "external, deploy your provider's cloud-controller-manager, and start kubelets with "
        "--cloud-provider=external")


def using_external_ca(ctx) -> bool:
    """kubeadm's external CA mode: the cluster CA certificate is there but its key is not."""
    d = ctx.cfg.cluster.certificates_dir
    p = ctx.paths
    return ctx.host.exists(p.cert(d, "ca", "crt")) and not ctx.host.exists(p.cert(d, "ca", "key"))


# --- volumes ----------------------------------------------------------------------------

def _etcd_cert_mounts(c: ClusterConfig) -> list[Mount]:
    """Directories of the external etcd's CA/cert/key not already mounted, deepest parents only."""
    ext = c.etcd_external
    assert ext is not None
    dirs: set[str] = set()
    for f in (ext.ca_file, ext.cert_file, ext.key_file):
        if not f:
            continue
        d = f.rsplit("/", 1)[0] or "/"
        # kubeadm compares plain string prefixes, so do we: /etc/ssl/certs* is mounted anyway.
        if d.startswith((CA_CERTS_DIR, c.certificates_dir, *CA_CERTS_EXTRA_DIRS)):
            continue
        if any(d.startswith(e) for e in dirs):
            continue
        dirs = {e for e in dirs if not e.startswith(d)} | {d}
    return [Mount(f"etcd-certs-{i}", d, d, True) for i, d in enumerate(sorted(dirs))]


def host_path_mounts(ctx) -> dict[str, dict[str, Mount]]:
    """Every component's hostPath mounts keyed by volume name (a later one replaces an earlier)."""
    c = ctx.cfg.cluster
    cert_dir = c.certificates_dir
    out: dict[str, dict[str, Mount]] = {KUBE_APISERVER: {}, KUBE_CONTROLLER_MANAGER: {}, KUBE_SCHEDULER: {}}

    def add(component: str, m: Mount) -> None:
        out[component][m.name] = m

    for comp in (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER):
        add(comp, Mount("k8s-certs", cert_dir, cert_dir, True))
        add(comp, Mount("ca-certs", CA_CERTS_DIR, CA_CERTS_DIR, True))
    if c.etcd_external is not None:
        for m in _etcd_cert_mounts(c):
            add(KUBE_APISERVER, m)

    kcm_conf = ctx.paths.controller_manager_conf
    add(KUBE_CONTROLLER_MANAGER, Mount("kubeconfig", kcm_conf, kcm_conf, True, FILE_OR_CREATE))
    # Read-write: third-party storage plugins talk to their backends through sockets in here.
    flex = pod.arg_value(c.controller_manager.extra_args, "flex-volume-plugin-dir") or FLEXVOLUME_DIR
    add(KUBE_CONTROLLER_MANAGER, Mount("flexvolume-dir", flex, flex, False))
    if cloud_provider(c) and ctx.host.exists(ctx.paths.cloud_config):
        cc = ctx.paths.cloud_config
        add(KUBE_CONTROLLER_MANAGER, Mount("cloud-config", cc, cc, True, FILE_OR_CREATE))

    sched_conf = ctx.paths.scheduler_conf
    add(KUBE_SCHEDULER, Mount("kubeconfig", sched_conf, sched_conf, True, FILE_OR_CREATE))

    for d in CA_CERTS_EXTRA_DIRS:
        if ctx.host.exists(d):
            name = d.strip("/").replace("/", "-")
            for comp in (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER):
                add(comp, Mount(name, d, d, True))

    for comp, knobs in ((KUBE_APISERVER, c.api_server), (KUBE_CONTROLLER_MANAGER, c.controller_manager),
                        (KUBE_SCHEDULER, c.scheduler)):
        for ev in knobs.extra_volumes:
            add(comp, Mount(ev.name, ev.host_path, ev.mount_path, ev.read_only, ev.path_type))
    return out


# --- kube-apiserver ---------------------------------------------------------------------

def _authorization(ctx) -> tuple[Args, list[Mount]]:
    """--authorization-mode and the ABAC/Webhook files it needs (flags, mounts).

    apiServer.extraArgs authorization-mode wins over the spec's authorizationModes, as in
    kubeadm; a structured --authorization-config replaces the mode flag altogether.
    """
    c = ctx.cfg.cluster
    extra = c.api_server.extra_args
    if pod.arg_value(extra, "authorization-config") is not None:
        return [], []
    requested = pod.arg_value(extra, "authorization-mode")
    where = "apiServer.extraArgs authorization-mode" if requested is not None else "authorizationModes"
    if requested is not None:
        modes = []
        for m in requested.split(","):
            if m in v.AUTHORIZATION_MODES:
                modes.append(m)
            else:
                _warn(ctx)(f"ignoring unknown kube-apiserver authorization-mode {m!r}")
    else:
        modes = list(c.authorization_modes)
    modes = modes or list(DEFAULT_AUTHORIZATION_MODES)
    args: Args = [("authorization-mode", ",".join(modes))]
    mounts: list[Mount] = []
    for mode, name, flag, vol, what in (
        ("ABAC", ABAC_POLICY_NAME, "authorization-policy-file", "authorization-policy", "ABAC policy"),
        ("Webhook", WEBHOOK_AUTHZ_NAME, "authorization-webhook-config-file", "authorization-webhook-config",
         "webhook authorizer kubeconfig"),
    ):
        if mode not in modes or pod.arg_value(extra, flag) is not None:
            continue
        path = ctx.paths.k8s(name)
        if not ctx.host.exists(path):
            raise ValidationError(
                f"{where}: {mode} needs the {what} file {path}, which does not exist; write it "
                f"before init or remove {mode} from the authorization modes")
        args.append((flag, path))
        mounts.append(Mount(vol, path, path, True, FILE))
    return args, mounts


def _apiserver_args(ctx, authz: Args) -> Args:
    c = ctx.cfg.cluster
    d = c.certificates_dir
    cert = ctx.paths.cert
    addr = ctx.data.advertise_address
    args: Args = [
        ("advertise-address", addr),
        ("enable-admission-plugins", "NodeRestriction"),
        ("service-cluster-ip-range", c.networking.service_subnet),
        ("service-account-key-file", cert(d, "sa", "pub")),
        ("service-account-signing-key-file", cert(d, "sa", "key")),
        ("service-account-issuer", f"https://kubernetes.default.svc.{c.networking.dns_domain}"),
        ("client-ca-file", cert(d, "ca", "crt")),
        ("tls-cert-file", cert(d, "apiserver", "crt")),
        ("tls-private-key-file", cert(d, "apiserver", "key")),
        ("kubelet-client-certificate", cert(d, "apiserver-kubelet-client", "crt")),
        ("kubelet-client-key", cert(d, "apiserver-kubelet-client", "key")),
        ("enable-bootstrap-token-auth", "true"),
        ("secure-port", str(ctx.cfg.bind_port)),
        ("allow-privileged", "true"),
        ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
        # The front proxy (aggregation layer); its client cert is always generated.
        ("requestheader-username-headers", "X-Remote-User"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        ("requestheader-client-ca-file", cert(d, "front-proxy-ca", "crt")),
        ("requestheader-allowed-names", "front-proxy-client"),
        ("proxy-client-cert-file", cert(d, "front-proxy-client", "crt")),
        ("proxy-client-key-file", cert(d, "front-proxy-client", "key")),
    ]
    ext = c.etcd_external
    if ext is not None:
        pod.set_arg(args, "etcd-servers", ",".join(ext.endpoints))
        if ext.ca_file:
            pod.set_arg(args, "etcd-cafile", ext.ca_file)
        if ext.cert_file and ext.key_file:
            pod.set_arg(args, "etcd-certfile", ext.cert_file)
            pod.set_arg(args, "etcd-keyfile", ext.key_file)
    else:
        pod.set_arg(args, "etcd-servers", client_url(localhost(addr)))
        pod.set_arg(args, "etcd-cafile", cert(d, "etcd/ca", "crt"))
        pod.set_arg(args, "etcd-certfile", cert(d, "apiserver-etcd-client", "crt"))
        pod.set_arg(args, "etcd-keyfile", cert(d, "apiserver-etcd-client", "key"))
        # A local etcd told to advertise elsewhere is reached there.
        adv = pod.arg_value(c.etcd_local.extra_args if c.etcd_local else (), "advertise-client-urls")
        if adv is not None:
            pod.set_arg(args, "etcd-servers", adv)
    for name, value in authz:
        pod.set_arg(args, name, value)
    modes = dict(authz).get("authorization-mode")
    if modes and modes != ",".join(DEFAULT_AUTHORIZATION_MODES):
        _warn(ctx)(f'the default kube-apiserver authorization-mode is "Node,RBAC"; using "{modes}"')
    return args


def apiserver_pod(ctx) -> Pod:
    c = ctx.cfg.cluster
    check_supported(c)
    addr = ctx.data.advertise_address
    port = ctx.cfg.bind_port
    host = pod.probe_address(addr)
    authz, authz_mounts = _authorization(ctx)
    all_mounts = host_path_mounts(ctx)[KUBE_APISERVER]
    for m in authz_mounts:
        # Before extra volumes would have been merged: a user's volume of the same name wins.
        all_mounts.setdefault(m.name, m)
    vols, mounts = pod.sorted_mounts(all_mounts)
    ctr = pod.container(
        name=KUBE_APISERVER,
        image=ctx.data.images.kube_apiserver,
        cmd=pod.command(KUBE_APISERVER, _apiserver_args(ctx, authz), c.api_server.extra_args),
        mounts=mounts,
        resources={"cpu": "250m"},
        liveness=pod.liveness_probe(host, "/livez", port, "HTTPS"),
        readiness=pod.readiness_probe(host, "/readyz", port, "HTTPS"),
        startup=pod.startup_probe(host, "/livez", port, "HTTPS", _health_timeout(ctx)),
        env=_env(c.api_server),
    )
    # Where the API server of this node answers; kubeadm reads it back on upgrade and join.
    annotations = {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                   pod.join_host_port(addr, port)}
    return pod.component_pod(ctr, vols, annotations)


# --- kube-controller-manager -------------------------------------------------------------

def _controller_manager_args(ctx) -> Args:
    c = ctx.cfg.cluster
    d = c.certificates_dir
    cert = ctx.paths.cert
    kubeconfig = ctx.paths.controller_manager_conf
    ca = cert(d, "ca", "crt")
    args: Args = [
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", kubeconfig),
        ("authentication-kubeconfig", kubeconfig),
        ("authorization-kubeconfig", kubeconfig),
        ("client-ca-file", ca),
        ("requestheader-client-ca-file", cert(d, "front-proxy-ca", "crt")),
        ("root-ca-file", ca),
        ("service-account-private-key-file", cert(d, "sa", "key")),
        ("cluster-signing-cert-file", ca),
        ("cluster-signing-key-file", cert(d, "ca", "key")),
        ("use-service-account-credentials", "true"),
        # Bootstrap tokens: sign cluster-info for discovery, delete expired tokens.
        ("controllers", "*,bootstrapsigner,tokencleaner"),
    ]
    if using_external_ca(ctx):
        # Empty values, as kubeadm passes: the CSR signer must not start without the CA key.
        pod.set_arg(args, "cluster-signing-key-file", "")
        pod.set_arg(args, "cluster-signing-cert-file", "")
    net = c.networking
    if net.pod_subnet:
        pod.set_arg(args, "allocate-node-cidrs", "true")
        pod.set_arg(args, "cluster-cidr", net.pod_subnet)
        # kubeadm passes the service range only together with node CIDR allocation.
        if net.service_subnet:
            pod.set_arg(args, "service-cluster-ip-range", net.service_subnet)
    if c.cluster_name:
        pod.set_arg(args, "cluster-name", c.cluster_name)
    if cloud_provider(c):
        pod.set_arg(args, "cloud-provider", EXTERNAL_CLOUD_PROVIDER)
        if ctx.host.exists(ctx.paths.cloud_config):
            pod.set_arg(args, "cloud-config", ctx.paths.cloud_config)
    return args


def controller_manager_pod(ctx) -> Pod:
    c = ctx.cfg.cluster
    check_supported(c)
    host = pod.probe_address(pod.arg_value(c.controller_manager.extra_args, "bind-address") or "127.0.0.1")
    vols, mounts = pod.sorted_mounts(host_path_mounts(ctx)[KUBE_CONTROLLER_MANAGER])
    port = CONTROLLER_MANAGER_PORT
    ctr = pod.container(
        name=KUBE_CONTROLLER_MANAGER,
        image=ctx.data.images.kube_controller_manager,
        cmd=pod.command(KUBE_CONTROLLER_MANAGER, _controller_manager_args(ctx), c.controller_manager.extra_args),
        mounts=mounts,
        resources={"cpu": "200m"},
        liveness=pod.liveness_probe(host, "/healthz", port, "HTTPS"),
        startup=pod.startup_probe(host, "/healthz", port, "HTTPS", _health_timeout(ctx)),
        env=_env(c.controller_manager),
    )
    return pod.component_pod(ctr, vols)


# --- kube-scheduler --------------------------------------------------------------------------

def scheduler_pod(ctx) -> Pod:
    c = ctx.cfg.cluster
    check_supported(c)
    kubeconfig = ctx.paths.scheduler_conf
    args: Args = [
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", kubeconfig),
        ("authentication-kubeconfig", kubeconfig),
        ("authorization-kubeconfig", kubeconfig),
    ]
    host = pod.probe_address(pod.arg_value(c.scheduler.extra_args, "bind-address") or "127.0.0.1")
    vols, mounts = pod.sorted_mounts(host_path_mounts(ctx)[KUBE_SCHEDULER])
    port = SCHEDULER_PORT
    ctr = pod.container(
        name=KUBE_SCHEDULER,
        image=ctx.data.images.kube_scheduler,
        cmd=pod.command(KUBE_SCHEDULER, args, c.scheduler.extra_args),
        mounts=mounts,
        resources={"cpu": "100m"},
        liveness=pod.liveness_probe(host, "/livez", port, "HTTPS"),
        readiness=pod.readiness_probe(host, "/readyz", port, "HTTPS"),
        startup=pod.startup_probe(host, "/livez", port, "HTTPS", _health_timeout(ctx)),
        env=_env(c.scheduler),
    )
    return pod.component_pod(ctr, vols)


# --- shared ------------------------------------------------------------------------------------

def _health_timeout(ctx) -> float:
    return ctx.cfg.timeouts.control_plane_component_health_check


def _env(knobs: Component) -> list[dict[str, str]]:
    return pod.merge_envs(pod.proxy_envs(), knobs.extra_envs)


BUILDERS: dict[str, Callable[..., Pod]] = {
    KUBE_APISERVER: apiserver_pod,
    KUBE_CONTROLLER_MANAGER: controller_manager_pod,
    KUBE_SCHEDULER: scheduler_pod,
}
