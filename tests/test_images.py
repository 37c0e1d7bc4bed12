"""Image names as kubeadm v1.32 writes them (issue 11 #12)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kbootd.config.model import ClusterConfig
from kbootd.images import images_for


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for k in ("KUBE_REPO_PREFIX", "KUBE_HYPERKUBE_IMAGE", "KUBE_ETCD_IMAGE"):
        monkeypatch.delenv(k, raising=False)


def test_legacy_repository_has_no_arch_suffix():
    # kubeadm v1.32, imageRepository gcr.io/google_containers, v1.30.8: plain names
    # (per-architecture names were never published for the versions kbootd supports).
    c = replace(ClusterConfig(), image_repository="gcr.io/google_containers", kubernetes_version="v1.30.8")
    im = images_for(c)
    assert im.kube_apiserver == "gcr.io/google_containers/kube-apiserver:v1.30.8"
    assert im.kube_proxy == "gcr.io/google_containers/kube-proxy:v1.30.8"
    assert im.pause == "gcr.io/google_containers/pause:3.9"
    assert im.etcd == "gcr.io/google_containers/etcd:3.5.15-0"
    assert im.coredns == "gcr.io/google_containers/coredns:v1.11.1"
    assert not any("-amd64" in i or "-arm64" in i for i in im.all())
