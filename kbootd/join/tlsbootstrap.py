"""Waiting for the kubelet's TLS bootstrap (the control plane trusting the node).

The kubelet, started with bootstrap-kubelet.conf, makes a key, POSTs a CSR for
CN=system:node:<name>, O=system:nodes with its bootstrap token, waits for the certificate,
writes kubelet.conf pointing at /var/lib/kubelet/pki/kubelet-client-current.pem and
registers its Node. Join is done when kubelet.conf is complete, its client certificate is
accepted by the API server and the Node exists (kubeadm waits for the file only; asking the
API as well catches a kubelet.conf from another cluster).

Until then, when the CSR sits unapproved (auto-approval turned off: the spec's "Turning off
auto-approval"), join says which CSR and how to approve it, and keeps waiting.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from kbootd import apiclient
from kbootd.apiclient import patch_node
from kbootd.cluster.uploadconfig import CRI_SOCKET_ANNOTATION
from kbootd.errors import KbootdError, TransientError

PHASE = "wait-tls-bootstrap"
NODE_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_CHECK_EVERY = 3.0  # seconds between looks at the kubelet's CSR while waiting
CSR_FIRST_CHECK = 1.0  # auto-approval takes milliseconds; look only once it is overdue


def kubelet_kubeconfig(ctx: Any) -> Any:
    """kubelet.conf with its client certificate and key read (TransientError while incomplete)."""

    path = ctx.paths.kubelet_conf
    if not ctx.host.exists(path):
        raise TransientError(f"the kubelet has not written {path} yet")
    try:
        kc = apiclient.load_kubeconfig(ctx, path)
    except KbootdError as e:
        raise TransientError(f"{path} is not complete yet: {e}") from None
    if not (kc.cert_pem and kc.key_pem):
        raise TransientError(f"{path} has no client certificate yet")
    return kc


def kubelet_client(ctx: Any, timeout: float) -> Any:
    """A client with the kubelet's own identity, once its Node is registered (else TransientError)."""

    kc = kubelet_kubeconfig(ctx)
    client = apiclient.Client(apiclient.APITransport(kc), timeout=timeout)
    name = ctx.data.node_name
    try:
        node = client.get("Node", name)
    except apiclient.APIError as e:
        client.close()
        if e.status in (401, 403):
            raise TransientError(f"the kubelet's client certificate is not accepted yet: {e}") from None
        raise TransientError(str(e)) from None
    except BaseException:
        client.close()
        raise
    if node is None:
        client.close()
        raise TransientError(f'the kubelet has its certificate; node "{name}" is not registered yet')
    return client


def _csr_subject_cn(csr: dict[str, Any]) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        req = x509.load_pem_x509_csr(base64.b64decode((csr.get("spec") or {}).get("request") or ""))
    except (ValueError, TypeError):
        return ""
    cns = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def _conditions(csr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (csr.get("status") or {}).get("conditions") or []}


class CsrWatch:
    """Looks up this node's CSR with the bootstrap credentials; reports a pending or denied one once."""

    def __init__(self, client_factory: Callable[[], Any], node: str, requestor: str | None,
                 report: Callable[[str], None]) -> None:
        self.client_factory = client_factory
        self.node = node
        self.requestor = requestor  # "system:bootstrap:<id>", or None for certificate credentials
        self.report = report
        self.reported: set[tuple[str, str]] = set()
        self.state = ""  # a short phrase for the retry cause

    def newest(self) -> dict[str, Any] | None:
        client = self.client_factory()
        try:
            items = client.list("CertificateSigningRequest")
        finally:
            client.close()
        mine = [c for c in items
                if (c.get("spec") or {}).get("signerName") == NODE_CLIENT_SIGNER
                and (self.requestor is None or (c.get("spec") or {}).get("username") == self.requestor)
                and _csr_subject_cn(c) == f"system:node:{self.node}"]
        mine.sort(key=lambda c: (c.get("metadata") or {}).get("creationTimestamp") or "")
        return mine[-1] if mine else None

    def check(self) -> None:
        try:
            csr = self.newest()
        except KbootdError:
            return  # a failed look-up must not end the wait; the next one may work
        if csr is None:
            self.state = ""
            return
        name = (csr.get("metadata") or {}).get("name", "?")
        cond = _conditions(csr)
        if "Denied" in cond:
            self.state = f'certificate signing request "{name}" was denied'
            self._once(name, "denied", f'The kubelet\'s certificate signing request "{name}" was denied: '
                       f'{cond["Denied"].get("message") or cond["Denied"].get("reason") or "no reason given"}. '
                       "The kubelet will ask again; approve the new request with `kubectl certificate approve`")
        elif "Approved" in cond or (csr.get("status") or {}).get("certificate"):
            self.state = f'certificate signing request "{name}" is approved'
        else:
            self.state = f'certificate signing request "{name}" is waiting for approval'
            self._once(name, "pending",
                       f'The kubelet\'s certificate signing request "{name}" (node "{self.node}") is waiting for '
                       "approval: this cluster does not approve node client certificates automatically. On the "
                       f"control plane, run `kubectl get csr` and `kubectl certificate approve {name}`; join "
                       "continues as soon as it is approved")

    def _once(self, name: str, what: str, message: str) -> None:
        if (name, what) not in self.reported:
            self.reported.add((name, what))
            self.report(message)


def annotate_cri_socket(client: Any, name: str, socket: str, timeout: float) -> bool:
    """kubeadm's patchnode.AnnotateCRISocket, sent with the kubelet's own credentials (fixture 41)."""

    def mutate(node: dict[str, Any]) -> None:
        node.setdefault("metadata", {}).setdefault("annotations", {})[CRI_SOCKET_ANNOTATION] = socket

    return patch_node(client, name, mutate, timeout=timeout)
