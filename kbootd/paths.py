"""Every host path kbootd touches, in one place, rooted at --root.

Nothing else in kbootd builds host paths: phases ask this object. Tests and the demo
root the whole tree in a temp dir; with root "/" these are the real host paths.
Attributes are *host* paths (what a user sees, what goes into manifests and
kubeconfigs); `.at(p)` maps one into the root for I/O.

Containment: under a root other than "/", `.at()` resolves a path the way the kernel
would inside a chroot (or openat2 with RESOLVE_IN_ROOT): each symlink is read and an
absolute target starts again at the root, and `..` never climbs above the root. So
`R/var/run -> /run` means `R/run`, never the host's /run. A host path that is relative,
or that itself climbs above "/" (`--cert-dir /../../victim`), is refused (exit 3). The
check and the later open are two steps, so a process racing to swap a directory for a
symlink in between is not covered; the root is expected to be owned by the caller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbootd.errors import ValidationError

KUBERNETES_DIR = "/etc/kubernetes"
DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class PathSettingError(ValidationError, ValueError):
    """A host path that is relative or climbs above the root (also a ValueError, as before)."""


def check_setting(value: str, where: str) -> str:
    """A path setting (flag or field) must be absolute and must not climb above "/"."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise PathSettingError(f"{where}: {value!r}: expected an absolute path")
    depth = 0
    for part in value.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise PathSettingError(f"{where}: {value!r}: the path climbs above / with '..'")
        elif part not in ("", "."):
            depth += 1
    return value


def check_config_paths(cfg: object, source: str) -> None:
    """Every host path setting of an init or join configuration, named by flag and field."""
    c = getattr(cfg, "cluster", None)
    checks: list[tuple[str | None, str]] = []
    if c is not None:
        checks.append((c.certificates_dir, "certificatesDir (--cert-dir)"))
        if c.etcd_local is not None:
            checks.append((c.etcd_local.data_dir, "etcd.local.dataDir"))
        if c.etcd_external is not None:
            x = c.etcd_external
            checks += [(x.ca_file, "etcd.external.caFile"), (x.cert_file, "etcd.external.certFile"),
                       (x.key_file, "etcd.external.keyFile")]
    ca_cert_path = getattr(cfg, "ca_cert_path", None)
    if ca_cert_path is not None:
        checks.append((ca_cert_path, "caCertPath"))
        f = getattr(cfg, "discovery_file", None)
        if f and "://" not in f:
            checks.append((f, "discovery.file.kubeConfigPath (--discovery-file)"))
    for value, field_name in checks:
        if value:
            check_setting(value, f"{source}: {field_name}")


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

    def at(self, host_path: str | PurePosixPath, *, follow: bool = True) -> Path:
        """The rooted filesystem path of a host path, resolved inside the root.

        With follow=False a symlink in the last component is not followed (to remove the
        link itself, never its target).
        """
        p = check_setting(str(host_path), "host path")
        if self.is_host:
            return Path(p)
        return self._resolve_in_root(p, follow)

    def _resolve_in_root(self, p: str, follow: bool) -> Path:
        todo = [c for c in p.split("/") if c not in ("", ".")]
        todo.reverse()  # a stack: the next component is todo[-1]
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop()
            if name == "..":
                if done:
                    done.pop()  # clamped at the root, as in a chroot
                continue
            cand = self.root.joinpath(*done, name)
            if (todo or follow) and cand.is_symlink():
                links += 1
                if links > MAX_SYMLINKS:
                    raise ValidationError(f"{p}: too many levels of symbolic links under the root {self.root}")
                target = os.readlink(cand)
                if target.startswith("/"):
                    done = []  # absolute targets are relative to the root
                todo.extend(reversed([c for c in target.split("/") if c not in ("", ".")]))
                continue
            done.append(name)
        return self.root.joinpath(*done)

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
