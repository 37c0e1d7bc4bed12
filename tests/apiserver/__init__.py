"""An in-repo HTTPS test double of kube-apiserver v1.32 (tests only, never shipped).

It answers like the recorded responses in shared/fixtures/apiserver/ for the API kbootd uses:
authentication (client certs, bootstrap tokens, anonymous), RBAC + Node authorization, admission,
an in-memory store with managedFields and watch, and the controller loops kubeadm relies on
(bootstrap signer, token cleaner, CSR approver and signer).

In-process (own CA and serving cert, 127.0.0.1, an ephemeral port):

    from tests.apiserver import TestAPIServer, kubeadm
    with TestAPIServer() as srv:
        kubeadm.seed_init(srv)                   # objects `kubeadm init` leaves (token abcdef.0123456789abcdef)
        srv.write_kubeconfig(tmp / "admin.conf", "admin")        # or "super-admin", "node:<name>", token=...
        api = srv.api_client("admin")            # a kubernetes.client.ApiClient
        srv.store.get("configmaps", "cluster-info", "kube-public")
        srv.clock.advance(3600); srv.set_ready(False); srv.faults.fail_next(2, 503)
        fault = srv.faults.after_write(3)       # the 3rd write is applied, its answer lost (fault.fired)
        srv.requests[-1]                         # every request is logged before it is answered
        srv.settle()                             # the controllers have seen this state and are idle

It is the suite's one API fake: tests of kbootd's API code use it, not an in-memory stand-in.

As a process (e.g. in a container, with the PKI kbootd's init wrote), from the repository root:

    python -m tests.apiserver --cert-dir /etc/kubernetes/pki --bind 0.0.0.0 --port 6443

See `python -m tests.apiserver --help`.
"""

from tests.apiserver.auth import User
from tests.apiserver.clock import Clock
from tests.apiserver.server import TestAPIServer

__all__ = ["Clock", "TestAPIServer", "User"]
