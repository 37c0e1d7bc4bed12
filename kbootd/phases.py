"""The order of init and join: one declaration each. Implementations are imported when run."""

from __future__ import annotations

from kbootd.workflow import Phase

INIT: tuple[Phase, ...] = ()

JOIN: tuple[Phase, ...] = ()

RESET: tuple[Phase, ...] = (
    Phase("preflight", "Run reset pre-flight checks", run="kbootd.reset:preflight"),
    Phase("remove-node", "Delete this node's Node object (with --remove-node)", run="kbootd.reset:remove_node",
          run_if="kbootd.reset:skip_remove_node"),
    Phase("cleanup-node", "Stop the kubelet, remove Pods and delete kubeadm's and kbootd's files",
          run="kbootd.reset:cleanup_node"),
)

WORKFLOWS = {"init": INIT, "join": JOIN, "reset": RESET}
