"""Value validators shared by every loader: each takes (value, where) and names `where` on error."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from kbootd.errors import SecurityError, ValidationError
from kbootd.version import DEFAULT_KUBERNETES_VERSION, MIN_KUBERNETES_MINOR

CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# kubeadm's KubernetesReleaseVersion grammar (util/version.go): any of [-0-9a-zA-Z_.+] may follow
# the patch number, so `1.32.0_coreos.0` is a version; labels may carry a release/ or ci/ bucket.
VERSION_RE = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)([-0-9a-zA-Z_.+]*)$")
VERSION_LABEL_RE = re.compile(r"^((latest|stable)+(-[1-9](\.[1-9]([0-9])?)?)?)$")
VERSION_BUCKET_RE = re.compile(r"^((release|ci|ci-cross)/)?([-\w.+]+)$", re.ASCII)
# kubeadm's constants: DNS is the 10th service address; pod subnets hold at least an IPv4 /28;
# the service subnet is stored as a bitmap in etcd, so at most 20 host bits.
MIN_SERVICE_SUBNET_ADDRESSES = 10
MIN_POD_SUBNET_ADDRESSES = 14
MAX_SERVICE_SUBNET_BITS = 20
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
DEFAULT_NODE_MASK = {4: 24, 6: 64}
# docker/distribution's reference grammar, as ValidateImageRepository applies it to "<repo>/name:tag".
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
IMAGE_REFERENCE_RE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")
WILDCARD_DNS1123 = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
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


def cidrs(value: object, where: str, warn: Callable[[str], None] | None = None) -> str:
    """One CIDR, or a dual-stack pair separated by a comma. Returns the normalized text.

    Host bits are accepted as kubeadm, kube-apiserver and kube-controller-manager accept them
    (10.96.0.1/12 means 10.96.0.0/12); kbootd writes the network and says so (ValidateIPNetFromString).
    """
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    if not parts or len(parts) > 2:
        raise ValidationError(f"{where}: {value!r} is not a CIDR; expected one (IPv4 or IPv6) CIDR or two "
                              "CIDRs, one of each family, for dual-stack networking, e.g. 10.96.0.0/12")
    out = []
    for p in parts:
        if "/" not in p:  # ParseCIDRs: an address is not a CIDR (ip_network would read it as /32)
            raise ValidationError(f"{where}: {p!r} is an address, not a CIDR; expected e.g. 10.96.0.0/12")
        try:
            net = ipaddress.ip_network(p, strict=False)
        except ValueError as e:
            raise ValidationError(f"{where}: {p!r} is not a valid CIDR ({e}); expected e.g. 10.96.0.0/12") from None
        if str(net) != p and warn is not None and "/" in p:
            warn(f"{where}: {p} has host bits set; using the network {net}")
        out.append(str(net))
    if len(out) == 2 and ipaddress.ip_network(out[0]).version == ipaddress.ip_network(out[1]).version:
        raise ValidationError(f"{where}: a dual-stack pair needs one IPv4 and one IPv6 CIDR, got {value!r}")
    return ",".join(out)


def subnet_min_size(value: str, minimum: int, where: str) -> None:
    """ValidateIPNetFromString's size rule: each subnet holds at least `minimum` addresses."""
    for net in networks(value):
        if net.num_addresses < minimum:
            raise ValidationError(f"{where}: subnet {net} with {net.num_addresses} address(es) is too small; "
                                  f"the minimum is {minimum}")


def service_subnet_size(value: str, where: str) -> None:
    """ValidateServiceSubnetSize: at most 20 host bits (the API server's own limit)."""
    for net in networks(value):
        if net.max_prefixlen - net.prefixlen > MAX_SERVICE_SUBNET_BITS:
            raise ValidationError(
                f"{where}: service subnet {net} is too large; for {net.max_prefixlen}-bit addresses the mask "
                f"must be >= {net.max_prefixlen - MAX_SERVICE_SUBNET_BITS}")


def node_cidr_mask(args: tuple[tuple[str, str], ...], family: int, where: str) -> int:
    """kubeadm's getClusterNodeMask: the controller-manager's node-cidr-mask-size-ipv4/-ipv6, else 24/64."""
    name = f"node-cidr-mask-size-ipv{family}"
    value = arg_value(args, name)
    if not value:
        return DEFAULT_NODE_MASK[family]
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{where}.{name}: {value!r} is not an integer (the controller-manager's "
                              f"--{name})") from None


def arg_value(args: tuple[tuple[str, str], ...], name: str) -> str | None:
    """kubeadm.GetArgValue(args, name, -1): the last occurrence wins."""
    found = None
    for k, val in args:
        if k == name:
            found = val
    return found


def pod_subnet_node_mask(pod: str, cm_args: tuple[tuple[str, str], ...], where: str, args_where: str) -> None:
    """ValidatePodSubnetNodeMask: each family's pod subnet holds at least one node subnet, and at
    most 2^16 of them (the controller-manager's CIDR bitmap)."""
    if arg_value(cm_args, "allocate-node-cidrs") == "false":
        return
    for net in networks(pod):
        mask = node_cidr_mask(cm_args, net.version, args_where)
        if net.prefixlen > mask:
            raise ValidationError(
                f"{where}: pod subnet {net} (mask {net.prefixlen}) is smaller than a node subnet "
                f"(mask {mask}); widen the pod subnet or raise node-cidr-mask-size-ipv{net.version}")
        if mask - net.prefixlen > POD_SUBNET_NODE_MASK_MAX_DIFF:
            raise ValidationError(
                f"{where}: pod subnet mask {net.prefixlen} and node mask {mask} differ by more than "
                f"{POD_SUBNET_NODE_MASK_MAX_DIFF}; use a smaller pod subnet or a larger "
                f"node-cidr-mask-size-ipv{net.version}")


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


def service_ip(service_cidr: str, index: int, where: str = "networking.serviceSubnet") -> str:
    """The index-th address of the (first) service CIDR: 1 = API server, 10 = cluster DNS."""
    net = networks(service_cidr)[0]
    if net.num_addresses <= index + 1:
        raise ValidationError(f"{where}: service CIDR {net} is too small to hold address number {index}")
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
    """ValidateCertSANs: an IP, a DNS subdomain, or a DNS subdomain under one leading `*.` label."""
    v = str(value).strip()
    if is_ip(v):
        return str(ipaddress.ip_address(v))
    if len(v) > 253 or not (DNS1123_SUBDOMAIN.fullmatch(v) or WILDCARD_DNS1123.fullmatch(v)):
        raise ValidationError(
            f"{where}: {v!r} is neither an IP address, a lower-case DNS name nor a DNS name with one "
            "leading wildcard label (*.example.com)")
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
    """kubeadm's KubernetesReleaseVersion: a version, or a label (stable, latest-1.32, ci/latest)
    that needs dl.k8s.io, optionally under a release/, ci/ or ci-cross/ bucket."""
    v = str(value).strip()
    label = v
    if not VERSION_RE.fullmatch(v):
        m = VERSION_BUCKET_RE.fullmatch(v)
        if not m:
            raise ValidationError(f"{where}: {v!r} is not a Kubernetes version nor a release label; "
                                  "expected e.g. v1.32.0, stable, latest-1.32 or ci/latest")
        label = m.group(3)
        if not VERSION_RE.fullmatch(label):
            if not VERSION_LABEL_RE.fullmatch(label):
                raise ValidationError(
                    f"{where}: {v!r} is not a Kubernetes version (v1.32.0) nor a label (stable, latest, "
                    "stable-1, latest-1.32, optionally after release/ or ci/)")
            # Resolving a label needs dl.k8s.io; kbootd never reaches out for it.
            if warn:
                warn(f"{where}: cannot resolve {v!r} without network access to dl.k8s.io; "
                     f"falling back to the pinned {DEFAULT_KUBERNETES_VERSION}")
            return DEFAULT_KUBERNETES_VERSION
    m = VERSION_RE.fullmatch(label)
    assert m is not None
    if any(len(g) > 20 or int(g) >= 2**64 for g in m.groups()[:3] if g and g.isdigit()):
        # Go parses each part as a uint64 (util/version); int() of 4300+ digits would raise.
        raise ValidationError(f"{where}: {label[:40]!r}...: a version number part is out of range")
    if int(m.group(1)) != 1 or int(m.group(2)) < MIN_KUBERNETES_MINOR:
        raise ValidationError(
            f"{where}: {label} is not supported; kbootd builds clusters of v1.{MIN_KUBERNETES_MINOR}.0 and newer"
        )
    return label if label.startswith("v") else "v" + label


def version_minor(version: str) -> int:
    m = VERSION_RE.fullmatch(version)
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


def endpoint(value: object, where: str, default_port: int | None = 6443) -> str:
    """host[:port] of an API server (IPv6 in brackets). With default_port None a missing port stays
    missing (controlPlaneEndpoint takes localAPIEndpoint.bindPort later, as in kubeadm)."""
    v = str(value).strip()
    if v.startswith(("https://", "http://")):
        raise ValidationError(f"{where}: {v!r}: give host:port without a scheme")
    if v.startswith("[") and v.endswith("]"):
        host, p = v, ""  # a bracketed IPv6 address without a port
    else:
        host, _, p = v.rpartition(":") if (v.count(":") == 1 or v.startswith("[")) else (v, "", "")
    if not host:
        host, p = v, ""
    h = host.strip("[]")
    if not h or not (is_ip(h) or DNS1123_SUBDOMAIN.match(h.lower())):
        raise ValidationError(f"{where}: {v!r} is not host:port of an API server")
    prt = port(p, where) if p else default_port
    host_text = f"[{h}]" if ":" in h else h
    return host_text if prt is None else f"{host_text}:{prt}"


def endpoint_port(ep: str) -> int | None:
    """The port of a host[:port] that endpoint() returned, or None."""
    if ep.startswith("["):
        tail = ep.rpartition("]")[2]
        return int(tail[1:]) if tail.startswith(":") else None
    return int(ep.rpartition(":")[2]) if ":" in ep else None


def https_url(value: object, where: str) -> str:
    """A discovery file: an https:// URL with a valid host, or a path (made absolute against the
    working directory, as kubeadm reads it). ValidateDiscoveryKubeConfigPath."""

    v = str(value).strip()
    if v.startswith("http://"):
        # A security failure, not a typo: trusting a CA fetched over plain HTTP is what an
        # attacker in the middle wants. Fail closed with exit code 4.
        raise SecurityError(
            f"{where}: refusing plain-HTTP discovery URL {v!r}: the cluster CA must come over HTTPS "
            "(or from a local file)"
        )
    if "://" not in v:
        if not v:
            raise ValidationError(f"{where}: empty; expected an https:// URL or a file path")
        return os.path.abspath(v)
    try:
        u = urlsplit(v)
        host, _ = u.hostname, u.port  # .port raises on a malformed port
    except ValueError as e:
        raise ValidationError(f"{where}: {v!r} is not a valid HTTPS URL ({e})") from None
    if u.scheme.lower() != "https":
        raise ValidationError(f"{where}: {v!r}: if a URL is used, the scheme must be https")
    if not host or any(c.isspace() for c in v) or not (is_ip(host) or DNS1123_SUBDOMAIN.fullmatch(host.lower())):
        raise ValidationError(f"{where}: {v!r} is not a valid HTTPS URL (bad host); expected "
                              "https://host[:port]/path")
    return v


def absolute_path(value: object, where: str) -> str:
    """ValidateAbsolutePath."""
    v = str(value)
    if not v.startswith("/"):
        raise ValidationError(f"{where}: {v!r} is not an absolute path")
    return v


def ca_cert_path(value: object, where: str) -> str:
    """ValidateJoinConfiguration: caCertPath is absolute and ends in .crt."""
    v = str(value)
    if not v.startswith("/") or not v.endswith(".crt"):
        raise ValidationError(f"{where}: {v!r}: the CA certificate path must be absolute and end in .crt")
    return v


def image_repository(value: object, where: str) -> str:
    """ValidateImageRepository: "<repo>/name:tag" must be an image reference."""
    v = str(value)
    if len(v) > 255 - len("/name:tag") or not IMAGE_REFERENCE_RE.fullmatch(f"{v}/name:tag"):
        raise ValidationError(f"{where}: {v!r} is not a valid image repository; expected e.g. "
                              "registry.k8s.io or registry.example.com:5000/k8s (no scheme)")
    return v


def etcd_endpoints(urls: tuple[str, ...], require_https: bool, where: str) -> tuple[str, ...]:
    """ValidateURLs: every endpoint is a URL with a scheme; https:// when TLS files are given."""

    for u in urls:
        try:
            parts = urlsplit(u)
            _ = parts.port
        except ValueError as e:
            raise ValidationError(f"{where}: {u!r} is not a URL ({e})") from None
        if not parts.scheme or not parts.netloc or any(c.isspace() for c in u):
            raise ValidationError(f"{where}: {u!r} is not a URL with a scheme; expected e.g. https://10.0.0.20:2379")
        if require_https and parts.scheme != "https":
            raise ValidationError(f"{where}: {u!r}: the URL must use https:// when caFile/certFile/keyFile are set")
    return urls


def ignore_preflight_errors(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    """ValidateIgnorePreflightErrors: case-insensitive; 'all' cannot be combined with other names."""
    low = {n.strip().lower() for n in names if n.strip()}
    if "all" in low and len(low) > 1:
        raise ValidationError(f"{where}: {','.join(sorted(low))}: don't name individual checks if 'all' is used")
    return tuple(names)


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
