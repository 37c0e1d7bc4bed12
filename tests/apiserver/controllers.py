"""The controller-manager loops kubeadm relies on, run in one background thread.

* bootstrapsigner: keeps `jws-kubeconfig-<id>` in kube-public/cluster-info in step with the
  bootstrap token Secrets that have usage-bootstrap-signing and are not expired (fixture 08);
* tokencleaner: deletes expired bootstrap token Secrets;
* csrapproving: approves kubelet client CSRs (O=system:nodes, CN=system:node:<name>, client
  usages) whose requester may create certificatesigningrequests/nodeclient (or selfnodeclient
  for its own name), asking the same authorizer the server uses (fixtures 30, 33);
* csrsigning: issues approved CSRs from the cluster CA: 1 year, notBefore backdated 5 minutes;
* garbagecollector: deletes namespaced objects whose every ownerReference names an object (by uid, in
  the same namespace) that no longer exists: kubeadm-certs goes when its 2-hour token is cleaned.

The loop wakes on every store change and at least every 50 ms (so moving the clock is noticed).
`settle()` waits for a pass that began after the call and changed nothing: the deterministic way for
a test to say "the controllers have seen this state and will not act on it" (no sleeping).
"""

from __future__ import annotations

import base64
import logging
import threading
from datetime import timedelta
from typing import Any

from cryptography import x509

from kbootd import jws
from tests.apiserver import apierrors, pki
from tests.apiserver.auth import BOOTSTRAP_TOKEN_TYPE, TOKEN_RE, User, token_expired
from tests.apiserver.pki import CertificateAuthority
from tests.apiserver.rbac import Authorizer
from tests.apiserver.store import Store

MANAGER = "kube-controller-manager"
JWS_PREFIX = "jws-kubeconfig-"
CLIENT_KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SIGNERS = (CLIENT_KUBELET_SIGNER, "kubernetes.io/kube-apiserver-client", "kubernetes.io/kubelet-serving")
KUBELET_CLIENT_USAGES = ({"digital signature", "client auth"}, {"digital signature", "key encipherment", "client auth"})
log = logging.getLogger(__name__)


def _data(secret: dict[str, Any], key: str) -> str:
    try:
        return base64.b64decode((secret.get("data") or {}).get(key) or "").decode()
    except ValueError:
        return ""


def signing_tokens(store: Store, now_ts: float) -> dict[str, str]:
    """token id -> secret for every token the bootstrap signer should sign cluster-info with."""
    out = {}
    for s in store.list("secrets", "kube-system"):
        if s.get("type") != BOOTSTRAP_TOKEN_TYPE or s["metadata"].get("deletionTimestamp"):
            continue
        token_id, secret = _data(s, "token-id"), _data(s, "token-secret")
        if not TOKEN_RE.match(f"{token_id}.{secret}") or s["metadata"]["name"] != f"bootstrap-token-{token_id}":
            continue
        if _data(s, "usage-bootstrap-signing") != "true" or token_expired(s, now_ts):
            continue
        out[token_id] = secret
    return out


def is_kubelet_client_csr(req: x509.CertificateSigningRequest, usages: list[str]) -> bool:
    """Kubernetes' ValidateKubeletClientCSR: O=[system:nodes], CN=system:node:*, no SANs, client usages."""
    cn, orgs = pki.subject_of(req)
    if orgs != ["system:nodes"] or not cn.startswith("system:node:"):
        return False
    try:
        if list(req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value):
            return False
    except x509.ExtensionNotFound:
        pass
    return set(usages) in KUBELET_CLIENT_USAGES


def _condition(csr: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status", "True") == "True"
               for c in (csr.get("status") or {}).get("conditions") or [])


class ControllerManager:
    def __init__(self, store: Store, authorizer: Authorizer, ca: CertificateAuthority | None, *,
                 token_cleaner: bool = True, signing_duration: timedelta = pki.LEAF_VALIDITY) -> None:
        self.store = store
        self.authorizer = authorizer
        self.ca = ca
        self.token_cleaner = token_cleaner
        self.signing_duration = signing_duration
        self.enabled = {"bootstrapsigner": True, "tokencleaner": token_cleaner, "csrapproving": True,
                        "csrsigning": True, "garbagecollector": True}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self._passes = 0  # sync passes begun
        self._quiet = 0  # the last pass that wrote nothing
        self._pass_done = threading.Condition()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="test-apiserver-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.store.changed:
            self.store.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        rv = -1
        while not self._stop.is_set():
            self._counted_pass()
            rv = self.store.wait_for_change(rv if rv >= 0 else self.store.resource_version, timeout=0.05)

    def _counted_pass(self) -> None:
        with self._pass_done:
            self._passes += 1
            number = self._passes
        before = self.store.resource_version
        quiet = False
        try:
            self.sync_once()
            quiet = self.store.resource_version == before
        except Exception as e:  # a broken sync must not kill the loop; tests can inspect .errors
            log.exception("controller sync failed")
            self.errors.append(repr(e))
        with self._pass_done:
            if quiet:
                self._quiet = max(self._quiet, number)
            self._pass_done.notify_all()

    def settle(self, timeout: float = 5.0) -> None:
        """Return once a whole pass that began after this call changed nothing.

        The controllers have then seen the store (and the clock) as they are now and have nothing
        to do about it, so "the CSR stays pending" or "no signature appears" is a fact, not a wait
        that was hopefully long enough. Without the background loop, passes run here.
        """
        with self._pass_done:
            after = self._passes
        if self._thread is None:
            for _ in range(20):
                self._counted_pass()
                if self._quiet > after:
                    return
            raise TimeoutError("the controllers keep changing the store")
        with self._pass_done:
            if not self._pass_done.wait_for(lambda: self._quiet > after, timeout=timeout):
                raise TimeoutError(f"the controllers did not settle within {timeout}s")

    def sync_once(self) -> None:
        now_ts = self.store.clock.time()
        if self.enabled["tokencleaner"]:
            self._clean_tokens(now_ts)
        if self.enabled["bootstrapsigner"]:
            self._sign_cluster_info(now_ts)
        if self.enabled["csrapproving"]:
            self._approve_csrs()
        if self.enabled["csrsigning"] and self.ca is not None and self.ca.key is not None:
            self._sign_csrs()
        if self.enabled["garbagecollector"]:
            self._collect_garbage()

    # --- garbage collector -----------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        from tests.apiserver import schema

        for res in schema.BY_PLURAL.values():
            if not res.namespaced:
                continue
            for obj in self.store.list(res):
                md = obj["metadata"]
                refs = md.get("ownerReferences") or []
                if not refs or any(self._owner_alive(ref, md.get("namespace", "")) for ref in refs):
                    continue
                try:
                    self.store.delete(res, md["name"], md.get("namespace", ""))
                except apierrors.APIError:
                    pass

    def _owner_alive(self, ref: dict[str, Any], namespace: str) -> bool:
        from tests.apiserver import schema

        kind = ref.get("kind")
        for res in schema.BY_PLURAL.values():
            if res.kind == kind:
                owner = self.store.get(res, ref.get("name", ""), namespace if res.namespaced else "")
                return owner is not None and owner["metadata"].get("uid") == ref.get("uid")
        return True  # a kind this server does not serve: never collect on a guess

    # --- bootstrap tokens ------------------------------------------------------------------------

    def _clean_tokens(self, now_ts: float) -> None:
        for s in self.store.list("secrets", "kube-system"):
            if s.get("type") == BOOTSTRAP_TOKEN_TYPE and _data(s, "expiration") and token_expired(s, now_ts):
                try:
                    self.store.delete("secrets", s["metadata"]["name"], "kube-system")
                except apierrors.APIError:
                    pass

    def _sign_cluster_info(self, now_ts: float) -> None:
        cm = self.store.get("configmaps", "cluster-info", "kube-public")
        if cm is None:
            return
        data = cm.get("data") or {}
        kubeconfig = data.get("kubeconfig")
        if kubeconfig is None:
            return
        wanted = {JWS_PREFIX + tid: jws.sign(kubeconfig, tid, secret)
                  for tid, secret in signing_tokens(self.store, now_ts).items()}
        current = {k: v for k, v in data.items() if k.startswith(JWS_PREFIX)}
        if wanted == current:
            return

        def resign(obj: dict[str, Any]) -> None:
            d = {k: v for k, v in (obj.get("data") or {}).items() if not k.startswith(JWS_PREFIX)}
            if d.get("kubeconfig") != kubeconfig:
                return  # changed meanwhile; the next pass signs the new content
            d.update(wanted)
            obj["data"] = d

        self.store.mutate("configmaps", "cluster-info", resign, namespace="kube-public", manager=MANAGER)

    # --- certificates ----------------------------------------------------------------------------

    def _approve_csrs(self) -> None:
        for csr in self.store.list("certificatesigningrequests"):
            status = csr.get("status") or {}
            if status.get("certificate") or _condition(csr, "Approved") or _condition(csr, "Denied"):
                continue
            spec = csr.get("spec") or {}
            if spec.get("signerName") != CLIENT_KUBELET_SIGNER:
                continue
            try:
                req = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
            except ValueError:
                continue
            if not is_kubelet_client_csr(req, spec.get("usages") or []):
                continue
            requester = User(spec.get("username", ""), tuple(spec.get("groups") or ()), spec.get("uid", ""))
            cn, _ = pki.subject_of(req)
            checks = []
            if cn == requester.name:
                checks.append(("selfnodeclient", "Auto approving self kubelet client certificate after "
                                                 "SubjectAccessReview."))
            checks.append(("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."))
            for sub, message in checks:
                if self.authorizer.allowed(requester, "create", group="certificates.k8s.io",
                                           resource="certificatesigningrequests", subresource=sub):
                    self._approve(csr["metadata"]["name"], message)
                    break

    def _approve(self, name: str, message: str) -> None:
        now = self.store.clock.timestamp()

        def add(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            if _condition(obj, "Approved") or _condition(obj, "Denied"):
                return
            status.setdefault("conditions", []).append({
                "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
                "lastUpdateTime": now, "lastTransitionTime": now,
            })

        self.store.mutate("certificatesigningrequests", name, add, manager=MANAGER, subresource="approval")

    def _sign_csrs(self) -> None:
        assert self.ca is not None
        for csr in self.store.list("certificatesigningrequests"):
            status = csr.get("status") or {}
            if status.get("certificate") or not _condition(csr, "Approved") or _condition(csr, "Denied") \
                    or _condition(csr, "Failed"):
                continue
            spec = csr.get("spec") or {}
            if spec.get("signerName") not in SIGNERS:
                continue
            name = csr["metadata"]["name"]
            try:
                req = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
            except ValueError:
                self._fail(name, "unable to parse csr")
                continue
            usages = spec.get("usages") or []
            if spec["signerName"] == CLIENT_KUBELET_SIGNER and not is_kubelet_client_csr(req, usages):
                self._fail(name, "invalid kubelet client certificate request")
                continue
            validity = self.signing_duration
            if spec.get("expirationSeconds"):
                validity = min(validity, timedelta(seconds=max(600, int(spec["expirationSeconds"]))))
            cert = self.ca.sign_request(req, usages, now=self.store.clock.now(), validity=validity)
            encoded = base64.b64encode(pki.cert_pem(cert)).decode()

            def issue(obj: dict[str, Any], encoded: str = encoded) -> None:
                obj.setdefault("status", {})["certificate"] = encoded

            self.store.mutate("certificatesigningrequests", name, issue, manager=MANAGER, subresource="status")

    def _fail(self, name: str, message: str) -> None:
        now = self.store.clock.timestamp()

        def add(obj: dict[str, Any]) -> None:
            obj.setdefault("status", {}).setdefault("conditions", []).append({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": message,
                "lastUpdateTime": now, "lastTransitionTime": now,
            })

        self.store.mutate("certificatesigningrequests", name, add, manager=MANAGER, subresource="status")
