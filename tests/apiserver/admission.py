"""The admission plugins kubeadm's apiserver runs that kbootd can run into.

* NamespaceLifecycle: the system namespaces cannot be deleted (missing namespaces: see Store).
* TaintNodesByCondition: a new Node gets `node.kubernetes.io/not-ready:NoSchedule` (fixture 19).
* NodeRestriction: a node may only modify its own Node, not its taints, and only kubelet labels
  (fixtures 42, 43); its node CSRs must name itself.
* CertificateApproval / CertificateSigning: approving or signing needs `approve`/`sign` on signers.
* CertificateSubjectRestriction: no kube-apiserver-client CSRs for system:masters (fixture 34).

Admission 403s carry no X-Content-Type-Options header, unlike RBAC 403s (see the server).
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

from tests.apiserver import apierrors, pki
from tests.apiserver.auth import User
from tests.apiserver.rbac import Authorizer, node_name
from tests.apiserver.schema import Resource
from tests.apiserver.store import Admit

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
KUBELET_LABELS = {
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
}
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
CLIENT_KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


class AdmissionChain:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def for_user(self, user: User, subresource: str = "") -> Admit:
        def admit(op: str, res: Resource, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
            obj = new if new is not None else old or {}
            name = obj.get("metadata", {}).get("name", "")
            if op == "DELETE" and res.plural == "namespaces" and name in IMMORTAL_NAMESPACES:
                raise apierrors.forbidden(res, name, "this namespace may not be deleted")
            if op == "CREATE" and res.plural == "nodes" and new is not None:
                taints = new.setdefault("spec", {}).setdefault("taints", [])
                if not any(t.get("key") == NOT_READY_TAINT["key"] for t in taints):
                    taints.append(dict(NOT_READY_TAINT))
            node = node_name(user)
            if node is not None:
                _node_restriction(node, user, op, res, name, new, old)
            if res.plural == "certificatesigningrequests":
                self._certificates(user, op, res, name, subresource, new, old)

        return admit

    def _certificates(self, user: User, op: str, res: Resource, name: str, subresource: str,
                      new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if op == "CREATE" and new is not None:
            spec = new.get("spec") or {}
            if spec.get("signerName") == APISERVER_CLIENT_SIGNER:
                _, orgs = _csr_subject(spec)
                if "system:masters" in orgs:
                    raise apierrors.forbidden(res, name, f"use of {APISERVER_CLIENT_SIGNER} signer with "
                                                         "system:masters group is not allowed")
        if op != "UPDATE" or new is None or old is None:
            return
        signer = (old.get("spec") or {}).get("signerName", "")
        if subresource == "approval" and _decisions(new) != _decisions(old):
            if not self._may(user, "approve", signer):
                raise apierrors.forbidden(res, name, f'user not permitted to approve requests with signerName "{signer}"')
        if subresource == "status" and (new.get("status") or {}).get("certificate") != \
                (old.get("status") or {}).get("certificate"):
            if not self._may(user, "sign", signer):
                raise apierrors.forbidden(res, name, f'user not permitted to sign requests with signerName "{signer}"')

    def _may(self, user: User, verb: str, signer: str) -> bool:
        domain = signer.split("/", 1)[0]
        return any(self.authorizer.allowed(user, verb, group="certificates.k8s.io", resource="signers", name=n)
                   for n in (signer, f"{domain}/*"))


def _decisions(csr: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((c.get("type", ""), c.get("status", "")) for c in (csr.get("status") or {}).get("conditions") or [])


def _csr_subject(spec: dict[str, Any]) -> tuple[str, list[str]]:
    try:
        csr = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
    except ValueError:
        return "", []
    return pki.subject_of(csr)


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _forbidden_label(key: str) -> bool:
    ns = _label_namespace(key)
    if ns == "node-restriction.kubernetes.io" or ns.endswith(".node-restriction.kubernetes.io"):
        return True
    is_k8s = ns in ("kubernetes.io", "k8s.io") or ns.endswith((".kubernetes.io", ".k8s.io"))
    if not is_k8s:
        return False
    if key in KUBELET_LABELS:
        return False
    return not any(ns == a or ns.endswith("." + a) for a in KUBELET_LABEL_NAMESPACES)


def _modified_labels(new: dict[str, str], old: dict[str, str]) -> set[str]:
    return {k for k in set(new) | set(old) if new.get(k) != old.get(k)}


def _node_restriction(node: str, user: User, op: str, res: Resource, name: str,
                      new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    if node == "":
        raise apierrors.forbidden(res, name, f'could not determine node from user "{user.name}"')
    if res.plural == "nodes":
        if name != node:
            raise apierrors.forbidden(res, name, f'node "{node}" is not allowed to modify node "{name}"')
        labels_new = ((new or {}).get("metadata") or {}).get("labels") or {}
        if op == "CREATE":
            bad = sorted(k for k in labels_new if _forbidden_label(k))
            if bad:
                raise apierrors.forbidden(res, name, f'node "{node}" is not allowed to set the following labels: '
                                                     + ", ".join(bad))
        if op == "UPDATE" and new is not None and old is not None:
            if (new.get("spec") or {}).get("taints") != (old.get("spec") or {}).get("taints"):
                raise apierrors.forbidden(res, name, f'node "{node}" is not allowed to modify taints')
            labels_old = (old.get("metadata") or {}).get("labels") or {}
            bad = sorted(k for k in _modified_labels(labels_new, labels_old) if _forbidden_label(k))
            if bad:
                raise apierrors.forbidden(res, name, "is not allowed to modify labels: " + ", ".join(bad))
    elif res.plural == "certificatesigningrequests" and op == "CREATE" and new is not None:
        spec = new.get("spec") or {}
        if spec.get("signerName") in (CLIENT_KUBELET_SIGNER, KUBELET_SERVING_SIGNER):
            cn, _ = _csr_subject(spec)
            if cn != f"system:node:{node}":
                raise apierrors.forbidden(res, name, f"can only create a node CSR with CN=system:node:{node}")
