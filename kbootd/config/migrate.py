"""`config migrate` and `config validate`, as kubeadm has them.

migrate reads a v1beta3, v1beta4 or the spec's v1alpha1 file, checks it like init/join would,
and writes the same configuration as kubeadm.k8s.io/v1beta4 with kubeadm's defaults filled in.
Host-specific dynamic defaults (node name, advertise address, a generated token) stay unset, so
the result can go to every node. validate runs the same checks, makes kubeadm's strict-decoding
findings errors, and prints "ok".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kbootd.config import printer
from kbootd.config.load import Parsed, Warn, parse_file
from kbootd.config.model import ClusterConfig, InitConfig
from kbootd.errors import ValidationError


def migrate(path: str, warn: Warn, text: str | None = None) -> str:
    parsed = parse_file(path, warn, text)
    for problem in parsed.strict:
        warn(problem)
    docs: list[dict[str, Any]] = []
    if parsed.init is not None:
        docs.append(printer.init_doc(parsed.init))
        docs.append(_cluster_doc(parsed.init, path, warn))
    if parsed.join is not None:
        docs.append(printer.join_doc(parsed.join))
    return printer.dump(docs)


def _cluster_doc(cfg: InitConfig, path: str, warn: Warn) -> dict[str, Any]:
    """ClusterConfiguration; the spec's top-level fields move where kubeadm later put them."""

    c = cfg.cluster
    d = ClusterConfig()
    extra_api: list[tuple[str, str]] = []
    extra_cm: list[tuple[str, str]] = []
    if c.authorization_modes != d.authorization_modes:
        extra_api.append(("authorization-mode", ",".join(c.authorization_modes)))
    if c.cloud_provider:
        extra_api.append(("cloud-provider", c.cloud_provider))
        extra_cm.append(("cloud-provider", c.cloud_provider))
    if c.unified_control_plane_image:
        warn(f"{path}: unifiedControlPlaneImage has no v1beta4 field (kubeadm removed hyperkube); "
             "it is left out: the control plane uses imageRepository's per-component images")
    if c.etcd_local is not None and c.etcd_local.image:
        warn(f"{path}: etcd.image has no v1beta4 field; use etcd.local.imageRepository and imageTag")
    if extra_api or extra_cm:
        c = replace(c, api_server=replace(c.api_server, extra_args=c.api_server.extra_args + tuple(extra_api)),
                    controller_manager=replace(c.controller_manager,
                                               extra_args=c.controller_manager.extra_args + tuple(extra_cm)))
    return printer.cluster_doc(c)


def validate(path: str, warn: Warn) -> Parsed:
    """kubeadm config validate: every problem is an error, strict decoding included."""
    parsed = parse_file(path, warn)
    if parsed.strict:
        more = f" (and {len(parsed.strict) - 1} more)" if len(parsed.strict) > 1 else ""
        raise ValidationError(parsed.strict[0] + more, hint="\n".join(parsed.strict[1:]) or None)
    return parsed
