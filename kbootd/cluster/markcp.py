"""mark-control-plane: the control-plane labels and taints on this node's Node object.

spec.taints is an atomic list: a patch replaces it whole. So, as kubeadm does, we read
the Node, append the missing taints to the taints it has (keeping the ones the node
lifecycle controller set) and send the whole list; the patch carries the read
resourceVersion, so a concurrent change makes us re-read instead of dropping it.
"""

from __future__ import annotations

from typing import Any

from kbootd import apiclient
from kbootd.cluster import admin_client, node_wait_reporter
from kbootd.config.model import CONTROL_PLANE_TAINT, Taint

LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
LABEL_EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
LABELS = (LABEL_CONTROL_PLANE, LABEL_EXCLUDE_LB)


def taints_for(cfg: Any) -> tuple[Taint, ...]:
    """nodeRegistration.taints; unset means the control-plane taint, [] means none."""
    return (CONTROL_PLANE_TAINT,) if cfg.node.taints is None else tuple(cfg.node.taints)


def taint_dict(t: Taint) -> dict[str, str]:
    return {"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect}


def taint_text(t: Taint) -> str:
    return f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"


def mark(node: dict[str, Any], taints: tuple[Taint, ...]) -> None:
    """Add the labels, and the taints the node lacks (same key and effect), in place."""
    md = node.setdefault("metadata", {})
    labels = md.get("labels") or {}
    for label in LABELS:
        labels.setdefault(label, "")
    md["labels"] = labels
    if not taints:
        return
    spec = node.setdefault("spec", {})
    have = list(spec.get("taints") or [])
    for t in taints:
        if not any(h.get("key") == t.key and h.get("effect") == t.effect for h in have):
            have.append(taint_dict(t))
    spec["taints"] = have


def mark_control_plane(ctx: Any) -> None:
    name = ctx.data.node_name
    taints = taints_for(ctx.cfg)
    ctx.reporter.info("mark-control-plane", f"Marking the node {name} as control-plane by adding the labels: "
                      f"[{' '.join(LABELS)}]")
    if taints:
        ctx.reporter.info("mark-control-plane", f"Marking the node {name} as control-plane by adding the taints "
                          f"[{' '.join(taint_text(t) for t in taints)}]")
    apiclient.patch_node(admin_client(ctx), name, lambda node: mark(node, taints),
                         on_retry=node_wait_reporter(ctx, "mark-control-plane"))
