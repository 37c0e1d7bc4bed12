"""Restarting a control-plane static Pod so it loads renewed certificates.

kubeadm's documentation gives two ways: move the manifest out of /etc/kubernetes/manifests,
wait for the kubelet to remove the Pod (fileCheckFrequency, 20 s) and move it back; or stop
the Pod's containers with crictl. kbootd stops the containers (`crictl stop`), because:
- nothing leaves the manifest directory, so a kbootd killed halfway never leaves a control
  plane without its manifest (the manifest way needs a write-ahead record to move it back);
- the kubelet restarts a stopped container of a static Pod at once (restartPolicy: Always,
  as kubeadm's manifests set), with the same Pod and the files on disk; no 2 x 20 s wait.
The containers are found by name in kube-system (`crictl ps --name ^<c>$ --label
io.kubernetes.pod.namespace=kube-system`). crictl uses /etc/crictl.yaml, which init writes.
With a root other than "/", hostio records the commands instead of running them.
"""

from __future__ import annotations

from kbootd.errors import KbootdError
from kbootd.hostio import Host

NAMESPACE_LABEL = "io.kubernetes.pod.namespace=kube-system"


def restart(host: Host, component: str) -> str:
    """Stop the component's running containers (the kubelet starts them again). Returns what happened."""
    ps = host.run(["crictl", "ps", "--quiet", "--state", "running", "--name", f"^{component}$",
                   "--label", NAMESPACE_LABEL], check=False)
    if not ps.ran:
        return "restart requested (recorded, not run)"
    if ps.returncode != 0:
        raise KbootdError(f"crictl ps for {component} failed (exit {ps.returncode}): {ps.stderr.strip()[:300]}")
    ids = ps.stdout.split()
    if not ids:
        return "not running; the kubelet starts it with the new files"
    host.run(["crictl", "stop", *ids])
    return f"restarted (stopped container {', '.join(i[:13] for i in ids)}; the kubelet starts it again)"
