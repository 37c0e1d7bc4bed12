"""The API resources kbootd writes: kinds, groups, plurals, paths, and how messages name objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kbootd.errors import KbootdError

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_label(self) -> str:
        """As kubeadm's dry-run names it: "core/v1", "rbac.authorization.k8s.io/v1"."""
        return f"{self.group or 'core'}/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if not namespace:
                raise KbootdError(f"{self.kind} {name or '(list)'}: a namespace is required")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


_RBAC = "rbac.authorization.k8s.io"
RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("ConfigMap", "", "v1", "configmaps", True),
    Resource("Secret", "", "v1", "secrets", True),
    Resource("ServiceAccount", "", "v1", "serviceaccounts", True),
    Resource("Service", "", "v1", "services", True),
    Resource("Node", "", "v1", "nodes", False),
    Resource("Pod", "", "v1", "pods", True),
    Resource("Namespace", "", "v1", "namespaces", False),
    Resource("Role", _RBAC, "v1", "roles", True),
    Resource("RoleBinding", _RBAC, "v1", "rolebindings", True),
    Resource("ClusterRole", _RBAC, "v1", "clusterroles", False),
    Resource("ClusterRoleBinding", _RBAC, "v1", "clusterrolebindings", False),
    Resource("Deployment", "apps", "v1", "deployments", True),
    Resource("DaemonSet", "apps", "v1", "daemonsets", True),
    Resource("CertificateSigningRequest", "certificates.k8s.io", "v1", "certificatesigningrequests", False),
)}


_BY_PLURAL = {r.plural: r for r in RESOURCES.values()}


def resource(kind: str) -> Resource:
    """By kind ("ConfigMap") or by plural resource name ("configmaps")."""
    r = RESOURCES.get(kind) or _BY_PLURAL.get(kind)
    if r is None:
        raise KbootdError(f"kbootd does not know the API resource for kind {kind!r}")
    return r


def describe(kind: str, name: str, namespace: str | None = None) -> str:
    return f'{kind} "{namespace}/{name}"' if namespace else f'{kind} "{name}"'


def meta(obj: Obj) -> tuple[str, str, str | None]:
    md = obj.get("metadata") or {}
    if not obj.get("kind") or not md.get("name"):
        raise KbootdError("an API object needs kind and metadata.name")
    return obj["kind"], md["name"], md.get("namespace")


def with_type(obj: Obj) -> Obj:
    """apiVersion filled from the kind, so builders may leave it out."""
    if obj.get("apiVersion"):
        return obj
    return {"apiVersion": resource(obj["kind"]).api_version, **obj}
