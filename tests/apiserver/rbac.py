"""Authorization as `--authorization-mode=Node,RBAC` does it, plus the system:masters short-circuit.

RBAC evaluates the Roles, ClusterRoles and bindings in the store (verbs, apiGroups, resources with
`*/sub` and `res/sub` forms, resourceNames, nonResourceURLs with a trailing `*`, subjects of kind
User, Group and ServiceAccount). The Node authorizer covers node identities (system:node:<name> in
system:nodes) with the 1.32 defaults (AuthorizeNodeWithSelectors on). Forbidden messages are built
like the apiserver's responsewriters.Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.apiserver.auth import User
from tests.apiserver.selectors import Requirement
from tests.apiserver.store import Store

MASTERS = "system:masters"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"


@dataclass
class Attributes:
    user: User
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    field_selector: list[Requirement] = field(default_factory=list)

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def forbidden_message(a: Attributes) -> str:
    """responsewriters.forbiddenMessage, to which the authorizers' reason is appended."""
    if not a.resource_request:
        return f'User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    if a.namespace:
        return (f'User "{a.user.name}" cannot {a.verb} resource "{a.combined_resource}" in API group '
                f'"{a.api_group}" in the namespace "{a.namespace}"')
    return (f'User "{a.user.name}" cannot {a.verb} resource "{a.combined_resource}" in API group '
            f'"{a.api_group}" at the cluster scope')


# --- rule matching ---------------------------------------------------------------------------


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url[:-1])):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and a.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], a):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _resource_matches(resources: list[str], a: Attributes) -> bool:
    for r in resources:
        if r == "*" or r == a.combined_resource:
            return True
        if a.subresource and r == f"*/{a.subresource}":
            return True
    return False


def rules_allow(rules: list[dict[str, Any]], a: Attributes) -> bool:
    return any(rule_allows(r, a) for r in rules)


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


# --- authorizers -----------------------------------------------------------------------------


NODE_RULES: list[dict[str, Any]] = [
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"]},
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["localsubjectaccessreviews", "subjectaccessreviews"]},
    {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["services"]},
    {"verbs": ["create", "get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]},
    {"verbs": ["patch", "update"], "apiGroups": [""], "resources": ["nodes/status"]},
    {"verbs": ["patch", "update"], "apiGroups": [""], "resources": ["nodes"]},
    {"verbs": ["create", "patch", "update"], "apiGroups": ["", "events.k8s.io"], "resources": ["events"]},
    {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
    {"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]},
    {"verbs": ["patch", "update"], "apiGroups": [""], "resources": ["pods/status"]},
    {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/eviction"]},
    {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps", "secrets"]},
    {"verbs": ["get"], "apiGroups": [""], "resources": ["persistentvolumeclaims", "persistentvolumes"]},
    {"verbs": ["get"], "apiGroups": [""], "resources": ["endpoints"]},
    {"verbs": ["create", "get", "list", "watch"], "apiGroups": ["certificates.k8s.io"],
     "resources": ["certificatesigningrequests"]},
    {"verbs": ["create", "delete", "get", "patch", "update"], "apiGroups": ["coordination.k8s.io"],
     "resources": ["leases"]},
    {"verbs": ["get"], "apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"]},
    {"verbs": ["get", "patch", "update"], "apiGroups": [""], "resources": ["persistentvolumeclaims/status"]},
    {"verbs": ["create"], "apiGroups": [""], "resources": ["serviceaccounts/token"]},
    {"verbs": ["get", "list", "watch"], "apiGroups": ["storage.k8s.io"], "resources": ["csidrivers"]},
    {"verbs": ["create", "delete", "get", "patch", "update"], "apiGroups": ["storage.k8s.io"],
     "resources": ["csinodes"]},
    {"verbs": ["get", "list", "watch"], "apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"]},
]


def node_name(user: User) -> str | None:
    """NodeIdentity: system:node:<name> in group system:nodes; '' for an unidentifiable node."""
    if not user.name.startswith(NODE_PREFIX) or NODES not in user.groups:
        return None
    return user.name[len(NODE_PREFIX):]


def _no_relationship(node: str) -> str:
    return f"no relationship found between node '{node}' and this object"


def node_authorize(a: Attributes) -> tuple[bool | None, str]:
    """The Node authorizer. (True, "") allows; (None, reason) has no opinion. Nodes own no pods here,
    so the graph-based checks never find a relationship."""
    node = node_name(a.user)
    if node is None:
        return None, ""
    if node == "":
        return None, f'unknown node for user "{a.user.name}"'
    if a.resource_request:
        group_res = (a.api_group, a.resource)
        if group_res in (("", "secrets"), ("", "configmaps")):
            if a.verb not in ("get", "list", "watch"):
                return None, "can only read resources of this type"
            if a.subresource:
                return None, "cannot read subresource"
            if not a.namespace:
                return None, "can only read namespaced object of this type"
            return None, "No Object name found" if not a.name else _no_relationship(node)
        if group_res in (("", "persistentvolumeclaims"), ("", "persistentvolumes"),
                         ("resource.k8s.io", "resourceclaims"), ("storage.k8s.io", "volumeattachments")):
            if a.resource == "persistentvolumeclaims" and a.subresource == "status":
                if a.verb not in ("update", "patch"):
                    return None, "can only get/update/patch this type"
            elif a.verb != "get":
                return None, "can only get individual resources of this type"
            elif a.subresource:
                return None, "cannot get subresource"
            return None, "No Object name found" if not a.name else _no_relationship(node)
        if group_res == ("", "serviceaccounts"):
            if a.verb != "create" or not a.name:
                return None, "can only create tokens for individual service accounts"
            if a.subresource != "token":
                return None, "can only create token subresource of serviceaccount"
            return None, _no_relationship(node)
        if group_res == ("coordination.k8s.io", "leases"):
            if a.verb not in ("get", "create", "update", "patch", "delete"):
                return None, "can only get, create, update, patch, or delete a node lease"
            if a.namespace != "kube-node-lease":
                return None, 'can only access leases in the "kube-node-lease" system namespace'
            if a.verb != "create" and a.name != node:
                return None, "can only access node lease with the same name as the requesting node"
            return True, ""
        if group_res == ("", "nodes"):
            return _authorize_node(node, a)
        if group_res == ("", "pods"):
            return _authorize_pod(node, a)
    if rules_allow(NODE_RULES, a):
        return True, ""
    return None, ""


def _authorize_node(node: str, a: Attributes) -> tuple[bool | None, str]:
    if a.subresource == "":
        if a.verb in ("create", "update", "patch"):
            return True, ""  # NodeRestriction admission limits these to the node's own object
        if a.verb in ("get", "list", "watch"):
            if a.name == node:
                return True, ""
            if a.name == "":
                return None, f"node '{node}' cannot read all nodes, only its own Node object"
            return None, f"node '{node}' cannot read '{a.name}', only its own Node object"
    elif a.subresource == "status" and a.verb in ("update", "patch"):
        return True, ""
    return None, ""


def _authorize_pod(node: str, a: Attributes) -> tuple[bool | None, str]:
    if a.subresource == "":
        if a.verb == "get":
            return None, "No Object name found" if not a.name else _no_relationship(node)
        if a.verb in ("list", "watch"):
            for r in a.field_selector:
                if r.key == "spec.nodeName" and r.op == "=" and r.values == (node,):
                    return True, ""
            if a.name:
                return None, _no_relationship(node)
            return None, "can only list/watch pods with spec.nodeName field selector"
        if a.verb in ("create", "delete"):
            return True, ""
    elif a.subresource == "status" and a.verb in ("update", "patch"):
        return True, ""
    elif a.subresource == "eviction" and a.verb == "create":
        return True, ""
    return None, ""


class Authorizer:
    """system:masters, then Node, then RBAC; the first that allows wins (a union with no denies)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def rbac(self, a: Attributes) -> tuple[bool, str]:
        errors: list[str] = []

        def role_rules(kind: str, name: str, namespace: str) -> list[dict[str, Any]] | None:
            if kind == "ClusterRole":
                role = self.store.get("clusterroles", name)
                if role is None:
                    errors.append(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
            else:
                role = self.store.get("roles", name, namespace)
                if role is None:
                    errors.append(f'role.rbac.authorization.k8s.io "{name}" not found')
            return (role.get("rules") or []) if role else None

        for binding in self.store.list("clusterrolebindings"):
            if any(_subject_matches(s, a.user, "") for s in binding.get("subjects") or []):
                rules = role_rules("ClusterRole", binding["roleRef"]["name"], "")
                if rules and rules_allow(rules, a):
                    return True, ""
        if a.namespace:
            for binding in self.store.list("rolebindings", a.namespace):
                if any(_subject_matches(s, a.user, a.namespace) for s in binding.get("subjects") or []):
                    ref = binding["roleRef"]
                    rules = role_rules(ref.get("kind", ""), ref.get("name", ""), a.namespace)
                    if rules and rules_allow(rules, a):
                        return True, ""
        if not errors:
            return False, ""
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return False, f"RBAC: {joined}"

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason goes after the forbidden message, joined by newlines."""
        if MASTERS in a.user.groups:
            return True, ""
        reasons = []
        decision, reason = node_authorize(a)
        if decision:
            return True, ""
        if reason:
            reasons.append(reason)
        allowed, reason = self.rbac(a)
        if allowed:
            return True, ""
        if reason:
            reasons.append(reason)
        return False, "\n".join(reasons)

    def allowed(self, user: User, verb: str, *, group: str = "", resource: str = "", subresource: str = "",
                name: str = "", namespace: str = "", path: str = "") -> bool:
        """A SubjectAccessReview, for controllers and admission plugins."""
        a = Attributes(user, verb, not path, path, group, "", resource, subresource, name, namespace)
        return self.authorize(a)[0]
