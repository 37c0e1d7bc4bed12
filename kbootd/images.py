"""Container images for a Kubernetes version: kubeadm's version table and naming rules."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from kbootd.config.model import ClusterConfig
from kbootd.config.validate import version_minor

# minor -> (etcd, coredns, pause), as kubeadm's constants pin them.
COMPONENT_VERSIONS: dict[int, tuple[str, str, str]] = {
    30: ("3.5.15-0", "v1.11.1", "3.9"),
    31: ("3.5.15-0", "v1.11.3", "3.10"),
    32: ("3.5.16-0", "v1.11.3", "3.10"),
    33: ("3.5.21-0", "v1.12.0", "3.10"),
    34: ("3.6.4-0", "v1.12.1", "3.10.1"),
}


@dataclass(frozen=True)
class Images:
    kube_apiserver: str
    kube_controller_manager: str
    kube_scheduler: str
    kube_proxy: str
    coredns: str
    pause: str
    etcd: str | None  # None with external etcd

    def all(self) -> list[str]:
        out = [self.kube_apiserver, self.kube_controller_manager, self.kube_scheduler,
               self.kube_proxy, self.coredns, self.pause]
        return out + ([self.etcd] if self.etcd else [])


def component_versions(kubernetes_version: str, warn: Callable[[str], None] | None = None) -> tuple[str, str, str]:
    minor = version_minor(kubernetes_version)
    if minor in COMPONENT_VERSIONS:
        return COMPONENT_VERSIONS[minor]
    newest = max(COMPONENT_VERSIONS)
    if warn:
        warn(f"no component version table for {kubernetes_version}; using v1.{newest}'s etcd, CoreDNS and pause")
    return COMPONENT_VERSIONS[newest]


def images_for(c: ClusterConfig, warn: Callable[[str], None] | None = None) -> Images:
    repo = c.image_repository
    unified = c.unified_control_plane_image
    etcd_override = c.etcd_local.image if c.etcd_local else None
    # The spec's environment variables, honoured but deprecated.
    if os.environ.get("KUBE_REPO_PREFIX"):
        repo = os.environ["KUBE_REPO_PREFIX"]
        if warn:
            warn(f"KUBE_REPO_PREFIX is deprecated; use imageRepository (using {repo})")
    if os.environ.get("KUBE_HYPERKUBE_IMAGE"):
        unified = os.environ["KUBE_HYPERKUBE_IMAGE"]
        if warn:
            warn("KUBE_HYPERKUBE_IMAGE is deprecated; use unifiedControlPlaneImage")
    if os.environ.get("KUBE_ETCD_IMAGE"):
        etcd_override = os.environ["KUBE_ETCD_IMAGE"]
        if warn:
            warn("KUBE_ETCD_IMAGE is deprecated; use etcd.local.imageRepository/imageTag")
    etcd_v, dns_v, pause_v = component_versions(c.kubernetes_version, warn)
    # The spec's registry once named images per architecture (kube-apiserver-amd64), but
    # those names were never published for the versions kbootd supports: kubeadm v1.32
    # writes plain names for gcr.io/google_containers too.

    def img(name: str, tag: str, r: str | None = None) -> str:
        return f"{(r or repo).rstrip('/')}/{name}:{tag}"

    # kubeadm's KubernetesVersionToImageTag: a tag holds only [-a-zA-Z0-9_.] (v1.32.0+abc -> v1.32.0_abc).
    kv = re.sub(r"[^-a-zA-Z0-9_.]", "_", c.kubernetes_version)
    cp = {n: unified or img(n, kv) for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    dns_repo = c.dns_image_repository
    if dns_repo:
        coredns = f"{dns_repo.rstrip('/')}/coredns:{c.dns_image_tag or dns_v}"
    elif repo == "registry.k8s.io":
        coredns = f"{repo}/coredns/coredns:{c.dns_image_tag or dns_v}"
    else:
        coredns = img("coredns", c.dns_image_tag or dns_v)
    etcd = None
    if c.etcd_local is not None:
        if etcd_override:
            etcd = etcd_override
        else:
            etcd = img("etcd", c.etcd_local.image_tag or etcd_v, c.etcd_local.image_repository)
    return Images(cp["kube-apiserver"], cp["kube-controller-manager"], cp["kube-scheduler"],
                  img("kube-proxy", kv), coredns, img("pause", pause_v), etcd)
