"""Static Pod manifests for the control plane and local etcd, as kubeadm v1.32 writes them.

pod.py holds what every static Pod shares (volumes, probes, argument merging, YAML);
controlplane.py and etcd.py build one Pod dict each; phase.py writes them.
"""
