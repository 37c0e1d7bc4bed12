"""Stacked etcd: talking to the members over etcd's v3 JSON gateway, and joining new ones."""
