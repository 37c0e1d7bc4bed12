"""`kbootd join`: discovery, the kubelet's start and its TLS bootstrap.

PHASES is join's declaration for kbootd.phases.JOIN (data only: importing this package
stays light; implementations load when a phase runs).
"""

from __future__ import annotations

from kbootd.workflow import Phase

_J = "kbootd.join.phases"

PHASES: tuple[Phase, ...] = (
    # As in init, cri runs first: it loads br_netfilter and sets ip_forward, which preflight
    # checks, so a fresh worker needs no manual preparation. kubelet-start re-applies it with
    # the cluster's pause image and cgroup driver (no change, no runtime restart).
    Phase("cri", "Configure the container runtime (crictl, containerd/CRI-O, kernel modules, sysctls)",
          run="kbootd.cri:configure"),
    Phase("preflight", "Run join pre-flight checks", run="kbootd.preflight:run_join"),
    Phase("discovery", "Discover the cluster and trust its CA (bootstrap token and CA pin, or a discovery file)",
          run=f"{_J}:discovery_phase"),
    Phase("kubelet-start", "Write the bootstrap kubeconfig and the cluster's kubelet settings, (re)start the kubelet",
          run=f"{_J}:kubelet_start"),
    Phase("wait-tls-bootstrap", "Wait for the kubelet's TLS bootstrap and Node, then record its CRI socket",
          run=f"{_J}:wait_tls_bootstrap"),
)
