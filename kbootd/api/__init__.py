"""Talking to a Kubernetes API server, one job per module; `kbootd.apiclient` is the public face.

resources  the kinds kbootd writes, their API paths and names in messages
errors     APIError (a Status answer), APIUnavailable, is_transient
connection a kubeconfig's credentials (KubeConfig) and the HTTPS transport through kbootd.transport
client     the verbs on plain-dict objects, with retries through kbootd.retry
dryrun     the client that prints kubeadm's dry-run lines and changes nothing
objects    comparing, merge patches, create-or-update / keep / mutate, node patching
"""
