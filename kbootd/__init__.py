"""kbootd: kubeadm's bootstrap, natively in Python, as a zero-touch systemd daemon."""
