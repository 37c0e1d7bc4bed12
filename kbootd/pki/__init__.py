"""The cluster PKI: keys, certificates, the declared certificate list, their files and the certs phase."""
