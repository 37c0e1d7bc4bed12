"""Facts about this node that init and join derive from config and host: name, address, endpoint."""

from __future__ import annotations

import fcntl
import socket
import struct

from kbootd.config import validate as v
from kbootd.errors import ValidationError


def detect_host_name(ctx) -> str:
    """The machine's host name as the kernel reports it (under a test root: its /etc/hostname)."""
    raw = None
    if not ctx.paths.is_host:
        raw = (ctx.host.read_text("/etc/hostname") or "").strip() or None
    return raw or socket.gethostname()


def derive_node_name(ctx) -> str:
    """--node-name / nodeRegistration.name, else the host name lower-cased, as kubeadm does."""
    cfg = ctx.init or ctx.join
    if cfg is not None and cfg.node.name:
        return cfg.node.name
    opts = ctx.reset
    if opts is not None and opts.node_name:
        return opts.node_name
    return v.node_name(ctx.data.host_name, "host name (set --node-name to override)")


def _default_route_iface(ctx) -> str | None:
    text = ctx.host.read_text("/proc/net/route") or ""
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) > 3 and f[1] == "00000000" and int(f[3], 16) & 0x2:  # RTF_GATEWAY
            return f[0]
    return None


def _iface_ipv4(iface: str) -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface[:15].encode()))  # SIOCGIFADDR
        return socket.inet_ntoa(packed[20:24])
    except OSError:
        return None
    finally:
        s.close()


def detect_advertise_address(ctx) -> str:
    """The API server's advertise address; 0.0.0.0 or unset means the default interface's (spec)."""
    cfg = ctx.cfg
    if cfg.advertise_address and cfg.advertise_address not in ("0.0.0.0", "::"):
        return cfg.advertise_address
    iface = _default_route_iface(ctx)
    addr = _iface_ipv4(iface) if (iface and ctx.paths.is_host) else None
    if not addr:
        raise ValidationError(
            "cannot find the default interface's address"
            + ("" if ctx.paths.is_host else f" under --root {ctx.paths.root}")
            + "; set --apiserver-advertise-address (or localAPIEndpoint.advertiseAddress)")
    return addr


def control_plane_endpoint(ctx) -> str:
    """host:port that kubeconfigs and the join command use."""
    cfg = ctx.cfg
    if cfg.cluster.control_plane_endpoint:
        return cfg.cluster.control_plane_endpoint
    return host_port(ctx.data.advertise_address, cfg.bind_port)


def host_port(addr: str, port: int) -> str:
    """addr:port, an IPv6 address in brackets."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def control_plane_url(ctx) -> str:
    return f"https://{control_plane_endpoint(ctx)}"


def endpoint_host(endpoint: str) -> str:
    host = endpoint.rsplit(":", 1)[0] if not endpoint.startswith("[") else endpoint[1:].split("]")[0]
    return host
