"""The local etcd static Pod (kubeadm's etcd phase), a single-member cluster on this node."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from kbootd.config.model import ExtraArgs
from kbootd.errors import KbootdError
from kbootd.manifests import pod
from kbootd.manifests.pod import Args, Mount, Pod, check_supported

ETCD = "etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381
DATA_VOLUME = "etcd-data"
CERTS_VOLUME = "etcd-certs"
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def localhost(advertise_address: str) -> str:
    """Loopback of the advertise address's family: etcd listens on both."""
    return "::1" if pod.is_ipv6(advertise_address) else "127.0.0.1"


def client_url(addr: str) -> str:
    return f"https://{pod.join_host_port(addr, CLIENT_PORT)}"


def peer_url(addr: str) -> str:
    return f"https://{pod.join_host_port(addr, PEER_PORT)}"


def image_tag_at_least_3_6(image: str) -> bool:
    """Whether the etcd image's tag is a semantic version >= 3.6.0 (flags were renamed there)."""
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    m = _SEMVER.match(tag)
    if not m:
        return False  # kubeadm falls back to the 3.5 flags when it cannot tell
    version = tuple(int(x) for x in m.group(1, 2, 3))
    # A pre-release of 3.6.0 sorts before 3.6.0.
    return version > (3, 6, 0) or (version == (3, 6, 0) and not m.group(4))


def probe_endpoint(extra_args: ExtraArgs, ipv6: bool) -> tuple[str, int, str]:
    """Host, port and scheme of etcd's metrics listener, where its /livez and /readyz answer.

    The first of a user's --listen-metrics-urls wins; anything unparsable falls back to
    the loopback metrics port, as kubeadm does.
    """
    lo = "::1" if ipv6 else "127.0.0.1"
    given = pod.arg_value(extra_args, "listen-metrics-urls")
    if given is None:
        return lo, METRICS_PORT, "HTTP"
    try:
        u = urlsplit(given.split(",")[0])
        port = u.port
    except ValueError:
        return lo, METRICS_PORT, "HTTP"
    scheme = "HTTPS" if u.scheme == "https" else "HTTP"
    return u.hostname or lo, port or METRICS_PORT, scheme


def _args(ctx, addr: str, name: str, image: str) -> Args:
    local = ctx.cfg.cluster.etcd_local
    d = ctx.cfg.cluster.certificates_dir
    cert = ctx.paths.cert
    args: Args = [
        ("name", name),
        ("listen-client-urls", f"{client_url(localhost(addr))},{client_url(addr)}"),
        ("advertise-client-urls", client_url(addr)),
        ("listen-peer-urls", peer_url(addr)),
        ("initial-advertise-peer-urls", peer_url(addr)),
        ("data-dir", local.data_dir),
        ("cert-file", cert(d, "etcd/server", "crt")),
        ("key-file", cert(d, "etcd/server", "key")),
        ("trusted-ca-file", cert(d, "etcd/ca", "crt")),
        ("client-cert-auth", "true"),
        ("peer-cert-file", cert(d, "etcd/peer", "crt")),
        ("peer-key-file", cert(d, "etcd/peer", "key")),
        ("peer-trusted-ca-file", cert(d, "etcd/ca", "crt")),
        ("peer-client-cert-auth", "true"),
        ("snapshot-count", "10000"),
        ("listen-metrics-urls", f"http://{pod.join_host_port(localhost(addr), METRICS_PORT)}"),
    ]
    if image_tag_at_least_3_6(image):
        args += [("feature-gates", "InitialCorruptCheck=true"), ("watch-progress-notify-interval", "5s")]
    else:
        args += [("experimental-initial-corrupt-check", "true"),
                 ("experimental-watch-progress-notify-interval", "5s")]
    # init starts a new single-member cluster; members joining later are out of scope.
    pod.set_arg(args, "initial-cluster", f"{name}={peer_url(addr)}")
    return args


def etcd_pod(ctx) -> Pod:
    c = ctx.cfg.cluster
    local = c.etcd_local
    if local is None:
        raise KbootdError("etcd: the configuration uses external etcd; there is no local etcd to write")
    check_supported(c)
    image = ctx.data.images.etcd
    assert image is not None  # images_for gives one whenever etcd is local
    addr = ctx.data.advertise_address
    certs_dir = f"{c.certificates_dir}/etcd"
    data = Mount(DATA_VOLUME, local.data_dir, local.data_dir, False)
    certs = Mount(CERTS_VOLUME, certs_dir, certs_dir, False)
    host, port, scheme = probe_endpoint(local.extra_args, pod.is_ipv6(addr))
    timeout = ctx.cfg.timeouts.control_plane_component_health_check
    ctr = pod.container(
        name=ETCD,
        image=image,
        cmd=pod.command(ETCD, _args(ctx, addr, ctx.data.node_name, image), local.extra_args),
        # Unlike the control plane, kubeadm lists etcd's mounts in this order, not by name.
        mounts=[data.volume_mount(), certs.volume_mount()],
        resources={"cpu": "100m", "memory": "100Mi"},
        liveness=pod.liveness_probe(host, "/livez", port, scheme),
        readiness=pod.readiness_probe(host, "/readyz", port, scheme),
        startup=pod.startup_probe(host, "/readyz", port, scheme, timeout),
        env=pod.merge_envs(local.extra_envs),
    )
    vols, _ = pod.sorted_mounts({m.name: m for m in (data, certs)})
    # How clients (the API server, etcdctl) reach this member; kubeadm reads it back.
    return pod.component_pod(ctr, vols, {"kubeadm.kubernetes.io/etcd.advertise-client-urls": client_url(addr)})
