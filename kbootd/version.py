"""Version facts, kept import-free so `kbootd version` starts fast."""

__version__ = "0.1.0"

# The Kubernetes version init uses when none is given. "latest"/"stable" would need
# the network; kbootd resolves them to this pin with a warning instead.
DEFAULT_KUBERNETES_VERSION = "v1.32.0"
# kubeadm's skew policy: the control plane may be at most this many minors ahead of a kubelet.
MAX_KUBELET_SKEW = 3
MIN_KUBERNETES_MINOR = 30
