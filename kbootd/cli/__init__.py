"""The kubeadm-compatible command line. Parsing stays light; commands import what they need."""
