"""Pieces of kubeadm's config formats that v1alpha1 and v1beta4 share."""

from __future__ import annotations

from collections.abc import Callable

from kbootd.config import validate as v
from kbootd.config.model import BootstrapTokenSpec, ExtraArgs, Networking, NodeRegistration, Taint
from kbootd.config.yamlsrc import Fields
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError
from kbootd.token import (
    DEFAULT_GROUPS,
    DEFAULT_USAGES,
    BootstrapToken,
    validate_groups,
    validate_usages,
)


def token(f: Fields, key: str) -> BootstrapToken | None:
    raw = f.str(key)
    return None if raw is None else BootstrapToken.parse(raw, source=f.where(key))


def duration(f: Fields, key: str, default: float) -> float:
    raw = f.get(key, (str, int, float), None)
    return default if raw is None else parse_duration(raw, what=f.where(key))


def extra_args_list(f: Fields, key: str) -> ExtraArgs:
    """v1beta4: a list of {name, value}."""
    out = []
    for item in f.items(key):
        name = item.str("name")
        if not name:
            raise item.error("name", "required")
        out.append((name, item.str("value", "") or ""))
        item.finish()
    return tuple(out)


def taints(f: Fields, key: str) -> tuple[Taint, ...] | None:
    if not f.has(key) or f.data[key] is None:
        f.raw(key)
        return None
    out = []
    for t in f.items(key):
        k = t.str("key")
        if not k:
            raise t.error("key", "required")
        effect = t.str("effect", check=v.one_of(v.TAINT_EFFECTS))
        if not effect:
            raise t.error("effect", f"required; one of {', '.join(v.TAINT_EFFECTS)}")
        out.append(Taint(k, effect, t.str("value", "") or ""))
        t.raw("timeAdded")
        t.finish()
    return tuple(out)


def node_registration(f: Fields | None, *, extra_args_as_list: bool) -> NodeRegistration:
    if f is None:
        return NodeRegistration()
    name = f.str("name", check=v.node_name)
    cri = f.str("criSocket", check=v.cri_socket)
    t = taints(f, "taints")
    if extra_args_as_list:
        kea = extra_args_list(f, "kubeletExtraArgs")
    else:
        kea = f.str_map("kubeletExtraArgs")
    ipe = v.ignore_preflight_errors(f.str_list("ignorePreflightErrors"), f.where("ignorePreflightErrors"))
    policy = f.str("imagePullPolicy", "IfNotPresent", check=v.one_of(v.IMAGE_PULL_POLICIES))
    f.bool("imagePullSerial", True)
    f.finish()
    return NodeRegistration(name=name, cri_socket=cri, taints=t, kubelet_extra_args=kea,
                            ignore_preflight_errors=ipe, image_pull_policy=policy)


def bootstrap_token_spec(f: Fields) -> BootstrapTokenSpec:
    tok = token(f, "token")  # None: generated at init, as kubeadm's dynamic defaults do
    ttl = duration(f, "ttl", 24 * 3600.0)
    expires = f.str("expires")
    usages = validate_usages(f.str_list("usages") or DEFAULT_USAGES, source=f.where("usages"))
    groups = validate_groups(f.str_list("groups") or DEFAULT_GROUPS, source=f.where("groups"))
    desc = f.str("description", "") or ""
    f.finish()
    if expires and f.has("ttl"):
        raise f.error("expires", "give either ttl or expires, not both")
    # ValidateTokenGroups: groups only mean something to a token that authenticates; like kubeadm
    # this applies to the defaulted groups too.
    if groups and "authentication" not in usages:
        raise f.error("groups", f"{', '.join(groups)}: token groups need the 'authentication' usage "
                                f"(usages are {', '.join(usages)})")
    return BootstrapTokenSpec(token=tok, ttl=None if expires else ttl, expires=expires,
                              usages=usages, groups=groups, description=desc)


def require_kind(f: Fields, expected_api: str, kinds: tuple[str, ...]) -> str:
    api, kind = f.str("apiVersion"), f.str("kind")
    if api != expected_api or kind not in kinds:
        raise ValidationError(f"{f.where('kind')}: unexpected {api}/{kind}")
    return kind


def feature_gates(f: Fields, key: str) -> tuple[tuple[str, bool], ...]:
    raw = f.get(key, dict, None) or {}
    for name, val in raw.items():
        if not isinstance(val, bool):
            raise ValidationError(f"{f.where(key)}.{name}: expected true or false, got {val!r}")
    return v.feature_gates(tuple((str(k), val) for k, val in raw.items()), f.where(key))


def networking(f: Fields | None, warn: Callable[[str], None] | None = None) -> Networking:
    """The `networking` block: the same in v1alpha1, v1beta3 and v1beta4."""
    net = Networking()
    if f is None:
        return net
    net = Networking(
        service_subnet=f.str("serviceSubnet", net.service_subnet, check=lambda x, w: v.cidrs(x, w, warn)),
        pod_subnet=f.str("podSubnet", check=lambda x, w: v.cidrs(x, w, warn)),
        dns_domain=f.str("dnsDomain", net.dns_domain, check=v.dns_domain),
    )
    v.check_overlap(net.service_subnet, net.pod_subnet, f.where("podSubnet"))
    f.finish()
    return net


def check_networking(net: Networking, nf: Fields | None, cm_args: ExtraArgs, args_where: str, fallback: str) -> None:
    """kubeadm's ValidateNetworking size rules, naming file:line when the block came from a file
    (check_init applies the same rules again to every source)."""
    def where(key: str) -> str:
        return nf.where(key) if nf is not None and nf.has(key) else f"{fallback}: networking.{key}"

    v.subnet_min_size(net.service_subnet, v.MIN_SERVICE_SUBNET_ADDRESSES, where("serviceSubnet"))
    v.service_subnet_size(net.service_subnet, where("serviceSubnet"))
    if net.pod_subnet:
        v.subnet_min_size(net.pod_subnet, v.MIN_POD_SUBNET_ADDRESSES, where("podSubnet"))
        v.pod_subnet_node_mask(net.pod_subnet, cm_args, where("podSubnet"), args_where)
