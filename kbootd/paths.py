"""Every host path kbootd touches, in one place, rooted at --root.

Nothing else in kbootd builds host paths: phases ask this object. Tests and the demo
root the whole tree in a temp dir; with root "/" these are the real host paths.
Attributes are *host* paths (what a user sees, what goes into manifests and
kubeconfigs); `.at(p)` maps one into the root for I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

KUBERNETES_DIR = "/etc/kubernetes"
DEFAULT_CERT_DIR = "/etc/kubernetes/pki"


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")
    # The spec's KUBE_KUBERNETES_DIR may move this (deprecated, honoured with a warning).
    kubernetes_dir: str = KUBERNETES_DIR

    @classmethod
    def rooted(cls, root: str | os.PathLike[str] = "/", kubernetes_dir: str = KUBERNETES_DIR) -> Paths:
        return cls(Path(root).resolve() if str(root) != "/" else Path("/"), kubernetes_dir)

    @property
    def is_host(self) -> bool:
        """True when this is the real machine (root "/"), where commands may run."""
        return self.root == Path("/")

    def at(self, host_path: str | PurePosixPath) -> Path:
        """The rooted filesystem path of a host path."""
        p = str(host_path)
        if not p.startswith("/"):
            raise ValueError(f"host path must be absolute: {p!r}")
        return self.root / p.lstrip("/") if not self.is_host else Path(p)

    def show(self, real: str | os.PathLike[str]) -> str:
        """The host path of a rooted path (for messages and dry-run output)."""
        r = Path(real)
        if self.is_host:
            return str(r)
        try:
            return "/" + str(r.relative_to(self.root))
        except ValueError:
            return str(r)

    # --- /etc/kubernetes -------------------------------------------------------
    def k8s(self, name: str) -> str:
        return f"{self.kubernetes_dir}/{name}"

    @property
    def manifests_dir(self) -> str:
        return self.k8s("manifests")

    def manifest(self, component: str) -> str:
        return f"{self.manifests_dir}/{component}.yaml"

    @property
    def admin_conf(self) -> str:
        return self.k8s("admin.conf")

    @property
    def super_admin_conf(self) -> str:
        return self.k8s("super-admin.conf")

    @property
    def kubelet_conf(self) -> str:
        return self.k8s("kubelet.conf")

    @property
    def bootstrap_kubelet_conf(self) -> str:
        return self.k8s("bootstrap-kubelet.conf")

    @property
    def controller_manager_conf(self) -> str:
        return self.k8s("controller-manager.conf")

    @property
    def scheduler_conf(self) -> str:
        return self.k8s("scheduler.conf")

    @property
    def cloud_config(self) -> str:
        return self.k8s("cloud-config")

    def kubeconfig(self, name: str) -> str:
        return self.k8s(name)

    # --- kubelet ---------------------------------------------------------------
    kubelet_dir: str = "/var/lib/kubelet"

    @property
    def kubelet_config(self) -> str:
        return f"{self.kubelet_dir}/config.yaml"

    @property
    def kubelet_flags_env(self) -> str:
        return f"{self.kubelet_dir}/kubeadm-flags.env"

    @property
    def kubelet_pki_dir(self) -> str:
        return f"{self.kubelet_dir}/pki"

    kubelet_dropin_dir: str = "/etc/systemd/system/kubelet.service.d"

    @property
    def kubelet_dropin(self) -> str:
        return f"{self.kubelet_dropin_dir}/10-kbootd.conf"

    kubelet_unit_candidates: tuple[str, ...] = (
        "/etc/systemd/system/kubelet.service",
        "/lib/systemd/system/kubelet.service",
        "/usr/lib/systemd/system/kubelet.service",
    )
    # KUBELET_EXTRA_ARGS, as the kubeadm packages read it.
    kubelet_defaults_files: tuple[str, ...] = ("/etc/default/kubelet", "/etc/sysconfig/kubelet")

    # --- etcd ------------------------------------------------------------------
    etcd_data_dir: str = "/var/lib/etcd"

    # --- container runtime -----------------------------------------------------
    crictl_yaml: str = "/etc/crictl.yaml"
    containerd_config: str = "/etc/containerd/config.toml"
    containerd_dropin_dir: str = "/etc/containerd/conf.d"

    @property
    def containerd_dropin(self) -> str:
        return f"{self.containerd_dropin_dir}/10-kbootd.toml"

    crio_dropin: str = "/etc/crio/crio.conf.d/10-kbootd.conf"
    modules_load: str = "/etc/modules-load.d/kbootd.conf"
    sysctl_conf: str = "/etc/sysctl.d/99-kbootd.conf"
    cni_conf_dir: str = "/etc/cni/net.d"

    # --- kbootd's own ----------------------------------------------------------
    config_file: str = "/etc/kbootd/kbootd.yaml"
    config_dir: str = "/etc/kbootd/kbootd.d"
    state_dir: str = "/var/lib/kbootd"
    run_dir: str = "/run/kbootd"

    @property
    def state_file(self) -> str:
        return f"{self.state_dir}/state.json"

    @property
    def status_file(self) -> str:
        return f"{self.run_dir}/status.json"

    @property
    def lock_file(self) -> str:
        return f"{self.run_dir}/kbootd.lock"

    # --- cloud-init (read only) ------------------------------------------------
    cloudinit_combined: str = "/run/cloud-init/combined-cloud-config.json"
    cloudinit_cloud_config: str = "/var/lib/cloud/instance/cloud-config.txt"
    cloudinit_sensitive: str = "/run/cloud-init/instance-data-sensitive.json"

    # --- the daemon (kbootd run) -------------------------------------------------
    # Probed (never written) to tell whether journald is there to take structured records.
    journal_socket: str = "/run/systemd/journal/socket"

    @property
    def config_dropin_glob(self) -> str:
        """kbootd.d drop-ins, read in name order after kbootd.yaml."""
        return f"{self.config_dir}/*.yaml"

    # --- kernel and host facts (read only, rooted so tests can fake them) -------
    proc_ip_forward: str = "/proc/sys/net/ipv4/ip_forward"
    proc_bridge_nf: str = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    proc_swaps: str = "/proc/swaps"
    proc_meminfo: str = "/proc/meminfo"
    proc_cgroups: str = "/proc/cgroups"
    cgroup_root: str = "/sys/fs/cgroup"
    home_kube_config: str = "/root/.kube/config"

    # --- certificates (the directory comes from configuration) ------------------
    @staticmethod
    def cert(cert_dir: str, base: str, ext: str) -> str:
        return f"{cert_dir}/{base}.{ext}"
