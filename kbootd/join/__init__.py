"""`kbootd join`: discovery, the kubelet's start and its TLS bootstrap.

The phase declaration is kbootd.phases.JOIN; implementations are in .phases.
"""
