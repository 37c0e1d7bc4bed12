"""Value validators shared by every loader: each takes (value, where) and names `where` on error."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from kbootd.errors import SecurityError, ValidationError
from kbootd.version import DEFAULT_KUBERNETES_VERSION, MIN_KUBERNETES_MINOR

CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]+)?$")
ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
AUTHORIZATION_MODES = ("Node", "RBAC", "ABAC", "Webhook", "AlwaysAllow", "AlwaysDeny")
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# kubeadm's feature gates today, with their defaults.
FEATURE_GATES: dict[str, bool] = {
    "ControlPlaneKubeletLocalMode": False,
    "EtcdLearnerMode": True,
    "NodeLocalCRISocket": False,
    "PublicKeysECDSA": False,
    "RootlessControlPlane": False,
    "WaitForAllControlPlaneComponents": False,
}
# Gates the spec names that kubeadm has since removed: a clear "no" beats silently ignoring them.
REMOVED_FEATURE_GATES = {
    "SelfHosting": "self-hosted control planes were removed from kubeadm in v1.14",
    "StoreCertsInSecrets": "removed from kubeadm in v1.14 together with self-hosting",
    "HighAvailability": "removed from kubeadm in v1.12; use controlPlaneEndpoint",
    "CoreDNS": "CoreDNS is the only DNS add-on today",
}

Check = Callable[[object, str], object]


def cidrs(value: object, where: str) -> str:
    """One CIDR, or a dual-stack pair separated by a comma. Returns the normalized text."""
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    if not parts or len(parts) > 2:
        raise ValidationError(f"{where}: {value!r} is not a CIDR; expected e.g. 10.96.0.0/12")
    out = []
    for p in parts:
        try:
            net = ipaddress.ip_network(p, strict=True)
        except ValueError as e:
            raise ValidationError(f"{where}: {p!r} is not a valid CIDR ({e}); expected e.g. 10.96.0.0/12") from None
        out.append(str(net))
    if len(out) == 2 and ipaddress.ip_network(out[0]).version == ipaddress.ip_network(out[1]).version:
        raise ValidationError(f"{where}: a dual-stack pair needs one IPv4 and one IPv6 CIDR, got {value!r}")
    return ",".join(out)


def networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p) for p in value.split(",")]


def check_overlap(service: str, pod: str | None, where: str) -> None:
    if not pod:
        return
    for s in networks(service):
        for p in networks(pod):
            if s.version == p.version and s.overlaps(p):
                raise ValidationError(
                    f"{where}: service CIDR {s} overlaps pod network CIDR {p}; they must be disjoint"
                )


def service_ip(service_cidr: str, index: int) -> str:
    """The index-th address of the (first) service CIDR: 1 = API server, 10 = cluster DNS."""
    net = networks(service_cidr)[0]
    if net.num_addresses <= index + 1:
        raise ValidationError(f"service CIDR {net} is too small to hold address number {index}")
    return str(net.network_address + index)


def port(value: object, where: str) -> int:
    try:
        n = int(str(value))
    except ValueError:
        n = -1
    if isinstance(value, bool) or not 1 <= n <= 65535:
        raise ValidationError(f"{where}: {value!r} is not a port; expected a number from 1 to 65535")
    return n


def ip_address(value: object, where: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValidationError(f"{where}: {value!r} is not an IP address") from None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def san(value: object, where: str) -> str:
    v = str(value).strip()
    if is_ip(v):
        return str(ipaddress.ip_address(v))
    if not DNS1123_SUBDOMAIN.match(v.lower().lstrip("*.")) or len(v) > 253:
        raise ValidationError(f"{where}: {v!r} is neither an IP address nor a DNS name")
    return v


def ca_hash(value: object, where: str) -> str:
    v = str(value).strip()
    low = v.lower()
    if not CA_HASH_RE.match(low):
        raise ValidationError(
            f"{where}: {v!r} is not a CA public-key pin; expected sha256: followed by 64 hex digits"
        )
    return low


def node_name(value: object, where: str) -> str:
    v = str(value).strip().lower()
    if not v or len(v) > 253 or not DNS1123_SUBDOMAIN.match(v):
        raise ValidationError(
            f"{where}: {value!r} is not a valid node name; expected a lower-case DNS subdomain "
            "(letters, digits, '-' and '.')"
        )
    return v


def dns_domain(value: object, where: str) -> str:
    v = str(value).strip().rstrip(".")
    if not v or not DNS1123_SUBDOMAIN.match(v):
        raise ValidationError(f"{where}: {value!r} is not a DNS domain; expected e.g. cluster.local")
    return v


def kubernetes_version(value: object, where: str, warn: Callable[[str], None] | None = None) -> str:
    v = str(value).strip()
    if v in ("latest", "stable") or v.startswith(("latest-", "stable-", "ci/", "release/")):
        # Resolving these needs dl.k8s.io; kbootd never reaches out for it.
        if warn:
            warn(f"{where}: cannot resolve {v!r} without network access to dl.k8s.io; "
                 f"falling back to the pinned {DEFAULT_KUBERNETES_VERSION}")
        return DEFAULT_KUBERNETES_VERSION
    m = VERSION_RE.match(v)
    if not m:
        raise ValidationError(f"{where}: {v!r} is not a Kubernetes version; expected e.g. v1.32.0")
    if int(m.group(1)) != 1 or int(m.group(2)) < MIN_KUBERNETES_MINOR:
        raise ValidationError(
            f"{where}: {v} is not supported; kbootd builds clusters of v1.{MIN_KUBERNETES_MINOR}.0 and newer"
        )
    return v if v.startswith("v") else "v" + v


def version_minor(version: str) -> int:
    m = VERSION_RE.match(version)
    return int(m.group(2)) if m else 0


def cri_socket(value: object, where: str) -> str:
    v = str(value).strip()
    if v.startswith("unix://"):
        path = v[len("unix://"):]
    elif v.startswith("/"):
        path = v
    else:
        raise ValidationError(f"{where}: {v!r} is not a CRI socket; expected unix:///path/to/socket")
    if not path.startswith("/"):
        raise ValidationError(f"{where}: {v!r}: the socket path must be absolute")
    return "unix://" + path


def endpoint(value: object, where: str, default_port: int = 6443) -> str:
    """host[:port] of an API server (IPv6 in brackets)."""
    v = str(value).strip()
    if v.startswith(("https://", "http://")):
        raise ValidationError(f"{where}: {v!r}: give host:port without a scheme")
    host, _, p = v.rpartition(":") if (v.count(":") == 1 or v.startswith("[")) else (v, "", "")
    if not host:
        host, p = v, ""
    h = host.strip("[]")
    if not h or not (is_ip(h) or DNS1123_SUBDOMAIN.match(h.lower())):
        raise ValidationError(f"{where}: {v!r} is not host:port of an API server")
    prt = port(p, where) if p else default_port
    return f"[{h}]:{prt}" if ":" in h else f"{h}:{prt}"


def https_url(value: object, where: str) -> str:
    v = str(value).strip()
    if v.startswith("http://"):
        # A security failure, not a typo: trusting a CA fetched over plain HTTP is what an
        # attacker in the middle wants. Fail closed with exit code 4.
        raise SecurityError(
            f"{where}: refusing plain-HTTP discovery URL {v!r}: the cluster CA must come over HTTPS "
            "(or from a local file)"
        )
    return v


def encryption_algorithm(value: object, where: str) -> str:
    v = str(value)
    legacy = {"RSA": "RSA-2048", "ECDSA": "ECDSA-P256"}
    v = legacy.get(v, v)
    if v not in ENCRYPTION_ALGORITHMS:
        raise ValidationError(f"{where}: {value!r} is not supported; expected one of {', '.join(ENCRYPTION_ALGORITHMS)}")
    return v


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: object, where: str) -> str:
        if value not in choices:
            raise ValidationError(f"{where}: {value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def feature_gates(gates: tuple[tuple[str, bool], ...], where: str) -> tuple[tuple[str, bool], ...]:
    for name, _ in gates:
        if name in REMOVED_FEATURE_GATES:
            raise ValidationError(f"{where}: feature gate {name} is not supported: {REMOVED_FEATURE_GATES[name]}")
        if name not in FEATURE_GATES:
            raise ValidationError(
                f"{where}: unknown feature gate {name!r}; known: {', '.join(sorted(FEATURE_GATES))}"
            )
    return gates


def parse_feature_gates(text: str, where: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, val = part.partition("=")
        if not eq or val.lower() not in ("true", "false"):
            raise ValidationError(f"{where}: {part!r}: expected Name=true or Name=false")
        out.append((name.strip(), val.lower() == "true"))
    return feature_gates(tuple(out), where)
