"""What a fresh kube-apiserver has before anybody writes to it.

The four system namespaces, the `kubernetes` Service, and the slice of the RBAC bootstrap policy
that matters to kubeadm-style bootstrapping: cluster-admin for system:masters, the discovery and
public-info roles, and the node, node-bootstrapper, CSR auto-approval and node-proxier roles that
kubeadm binds to. Nothing else is granted, so anonymous users can read nothing but /healthz,
/livez, /readyz and /version until a Role says otherwise (fixture 06).
"""

from __future__ import annotations

from typing import Any

from tests.apiserver.rbac import NODE_RULES

MANAGER = "kube-apiserver"
RBAC_API = "rbac.authorization.k8s.io/v1"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_BOOTSTRAP_META = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}


def _rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None,
          urls: list[str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"verbs": verbs}
    if urls is not None:
        rule["nonResourceURLs"] = urls
    else:
        rule["apiGroups"] = groups
        rule["resources"] = resources
    return rule


CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])],
    "system:discovery": [_rule(["get"], urls=["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                              "/openapi", "/openapi/*", "/readyz", "/version", "/version/"])],
    "system:basic-user": [_rule(["create"], ["authorization.k8s.io"],
                                ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])],
    "system:public-info-viewer": [_rule(["get"], urls=["/healthz", "/livez", "/readyz", "/version", "/version/"])],
    "system:node": NODE_RULES,
    "system:node-bootstrapper": [_rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
                                       ["certificatesigningrequests"])],
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": [
        _rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/nodeclient"])],
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": [
        _rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/selfnodeclient"])],
    "system:node-proxier": [
        _rule(["list", "watch"], [""], ["endpoints", "services"]),
        _rule(["get", "list", "watch"], [""], ["nodes"]),
        _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    ],
}

CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "cluster-admin": ("cluster-admin", [("Group", "system:masters")]),
    "system:discovery": ("system:discovery", [("Group", "system:authenticated")]),
    "system:basic-user": ("system:basic-user", [("Group", "system:authenticated")]),
    "system:public-info-viewer": ("system:public-info-viewer",
                                  [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
    "system:node": ("system:node", []),  # the Node authorizer grants node identities, not this binding
    "system:node-proxier": ("system:node-proxier", [("User", "system:kube-proxy")]),
}


def cluster_role(name: str, rules: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": {"name": name, **(meta or {})},
            "rules": rules}


def binding(kind: str, name: str, role_kind: str, role: str, subjects: list[tuple[str, str]],
            namespace: str = "", meta: dict[str, Any] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, **(meta or {})}
    if namespace:
        md["namespace"] = namespace
    subs = []
    for k, n in subjects:
        s = {"kind": k, "name": n}
        if k == "ServiceAccount":
            s["namespace"] = namespace or "kube-system"
        else:
            s["apiGroup"] = "rbac.authorization.k8s.io"
        subs.append(s)
    return {"apiVersion": RBAC_API, "kind": kind, "metadata": md, "subjects": subs,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}}


def system_objects() -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                                  for n in SYSTEM_NAMESPACES]
    objs.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    })
    for name, rules in CLUSTER_ROLES.items():
        objs.append(cluster_role(name, rules, _BOOTSTRAP_META))
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        objs.append(binding("ClusterRoleBinding", name, "ClusterRole", role, subjects, meta=_BOOTSTRAP_META))
    return objs
