"""An in-repo HTTPS test double of kube-apiserver v1.32 (tests only, never shipped).

It answers like the recorded responses in shared/fixtures/apiserver/ for the API kbootd uses:
authentication (client certs, bootstrap tokens, anonymous), RBAC + Node authorization, admission,
an in-memory store with managedFields and watch, and the controller loops kubeadm relies on
(bootstrap signer, token cleaner, CSR approver and signer). See server.py for the entry point and
`python -m tests.apiserver --help` for the process form.
"""

from tests.apiserver.auth import User
from tests.apiserver.clock import Clock
from tests.apiserver.server import TestAPIServer

__all__ = ["Clock", "TestAPIServer", "User"]
