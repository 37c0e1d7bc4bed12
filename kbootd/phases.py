"""The order of init and join: one declaration each. Implementations are imported when run."""

from __future__ import annotations

from kbootd.workflow import Phase

_M = "kbootd.manifests.phase"

# cri runs first: it loads br_netfilter and sets ip_forward, which preflight then checks,
# so a fresh machine needs no manual preparation (k3s does the same).
INIT: tuple[Phase, ...] = (
    Phase("cri", "Configure the container runtime (crictl, containerd/CRI-O, kernel modules, sysctls)",
          run="kbootd.cri:configure"),
    Phase("preflight", "Run pre-flight checks", run="kbootd.preflight:run_init"),
    Phase("etcd", "Generate the static Pod manifest for the local etcd", run_if=f"{_M}:skip_if_external_etcd",
          children=(Phase("local", "Generate the static Pod manifest for a local, single-node etcd",
                          run=f"{_M}:etcd_local"),)),
    Phase("control-plane", "Generate the static Pod manifests for the control plane", run=f"{_M}:control_plane",
          children=(
              Phase("apiserver", "Generate the kube-apiserver static Pod manifest", run=f"{_M}:apiserver"),
              Phase("controller-manager", "Generate the kube-controller-manager static Pod manifest",
                    run=f"{_M}:controller_manager"),
              Phase("scheduler", "Generate the kube-scheduler static Pod manifest", run=f"{_M}:scheduler"),
          )),
    Phase("kubelet-start", "Write the kubelet settings and (re)start the kubelet", run="kbootd.kubelet:start"),
)

JOIN: tuple[Phase, ...] = ()

RESET: tuple[Phase, ...] = (
    Phase("preflight", "Run reset pre-flight checks", run="kbootd.reset:preflight"),
    Phase("remove-node", "Delete this node's Node object (with --remove-node)", run="kbootd.reset:remove_node",
          run_if="kbootd.reset:skip_remove_node"),
    Phase("cleanup-node", "Stop the kubelet, remove Pods and delete kubeadm's and kbootd's files",
          run="kbootd.reset:cleanup_node"),
)

WORKFLOWS = {"init": INIT, "join": JOIN, "reset": RESET}
