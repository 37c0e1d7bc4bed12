"""The configuration model and its loaders (flags, kubeadm v1alpha1 and v1beta4 files)."""
