from pathlib import Path

import pytest

from kbootd.paths import Paths


def test_host_root_maps_identity():
    p = Paths.rooted("/")
    assert p.is_host
    assert p.at("/etc/kubernetes/admin.conf") == Path("/etc/kubernetes/admin.conf")
    assert p.show("/etc/kubernetes") == "/etc/kubernetes"


def test_rooted_paths_stay_under_root(tmp_path):
    p = Paths.rooted(tmp_path)
    assert not p.is_host
    for host in (p.admin_conf, p.kubelet_config, p.kubelet_dropin, p.state_file, p.crictl_yaml,
                 p.manifest("etcd"), p.containerd_dropin, p.status_file):
        real = p.at(host)
        assert str(real).startswith(str(tmp_path) + "/"), host
        assert p.show(real) == host


def test_relative_host_path_rejected(tmp_path):
    with pytest.raises(ValueError):
        Paths.rooted(tmp_path).at("etc/kubernetes")


def test_kubernetes_dir_moves_kubeadm_files(tmp_path):
    p = Paths.rooted(tmp_path, "/opt/k8s")
    assert p.admin_conf == "/opt/k8s/admin.conf"
    assert p.manifests_dir == "/opt/k8s/manifests"
    # kubelet and kbootd state do not move with it
    assert p.kubelet_config == "/var/lib/kubelet/config.yaml"
