"""Per-type behaviour of the registry: defaulting, what create/update may change, validation.

Mirrors the parts of Kubernetes' REST strategies that kbootd can observe: Namespace phase and
finalizer, Secret `stringData`, Service IP allocation and defaults, Deployment/DaemonSet
generation and defaults, CSR requester fields, RBAC subject defaults, and status subresources.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from typing import Any

from tests.apiserver import schema
from tests.apiserver.apierrors import Cause

RBAC_GROUP = "rbac.authorization.k8s.io"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                 "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                 "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',"
                  "  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


class ServiceIPs:
    """Allocates ClusterIPs from the service CIDR (first address is the `kubernetes` Service's)."""

    def __init__(self, cidr: str = "10.96.0.0/12") -> None:
        self.network = ipaddress.ip_network(cidr)
        self.used: set[str] = set()

    def allocate(self, wanted: str | None = None) -> str:
        if wanted:
            self.used.add(wanted)
            return wanted
        for host in self.network.hosts():
            ip = str(host)
            if ip not in self.used:
                self.used.add(ip)
                return ip
        raise RuntimeError("service CIDR exhausted")

    def taken(self, ip: str) -> bool:
        return ip in self.used

    def release(self, ip: str | None) -> None:
        self.used.discard(ip or "")


def default(res: schema.Resource, obj: dict[str, Any]) -> None:
    """Decode-time defaulting: runs before the field manager, so the request's manager owns these."""
    meta = obj.setdefault("metadata", {})
    if res.plural == "namespaces" and meta.get("name"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif res.plural == "secrets":
        _fold_string_data(obj)
        if not obj.get("type"):
            obj["type"] = "Opaque"
    elif res.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
    elif res.plural in ("deployments", "daemonsets"):
        _default_workload(res, obj)
    elif res.plural in ("rolebindings", "clusterrolebindings"):
        _default_subjects(obj)


def prepare_for_create(res: schema.Resource, obj: dict[str, Any], user: Any, ips: ServiceIPs) -> None:
    """What the REST strategy does after admission: status resets, allocations, requester identity."""
    meta = obj.setdefault("metadata", {})
    if res.plural == "namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif res.plural == "services":
        _allocate_ips(obj.setdefault("spec", {}), ips)
        obj["status"] = {"loadBalancer": {}}
    elif res.plural in ("deployments", "daemonsets"):
        obj["status"] = {}
    elif res.plural == "certificatesigningrequests":
        spec = obj.setdefault("spec", {})
        for k in ("username", "uid", "groups", "extra"):
            spec.pop(k, None)
        if user is not None:
            spec["username"] = user.name
            if user.uid:
                spec["uid"] = user.uid
            spec["groups"] = list(user.groups)
            if user.extra:
                spec["extra"] = copy.deepcopy(user.extra)
        obj["status"] = {}
    if res.has_generation:
        meta["generation"] = 1


def prepare_for_update(res: schema.Resource, new: dict[str, Any], old: dict[str, Any], subresource: str,
                       ips: ServiceIPs) -> dict[str, Any]:
    """The object to store for an update of `old` with `new` through this endpoint."""
    if subresource == "status":
        out = copy.deepcopy(old)
        out["status"] = copy.deepcopy(new.get("status") or {})
        return out
    if subresource == "approval":  # only the conditions change, as `kubectl certificate approve` sends
        out = copy.deepcopy(old)
        out.setdefault("status", {})["conditions"] = copy.deepcopy((new.get("status") or {}).get("conditions"))
        return out
    out = copy.deepcopy(new)
    if res.status_subresource:
        out["status"] = copy.deepcopy(old.get("status") or {})
    if res.plural == "certificatesigningrequests":
        out["spec"] = copy.deepcopy(old.get("spec"))
    elif res.plural == "namespaces":
        out["spec"] = copy.deepcopy(old.get("spec"))
    elif res.plural == "secrets" and not out.get("type"):
        out["type"] = old.get("type")
    elif res.plural == "services":
        spec = out.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if not spec.get(k) and old_spec.get(k):
                spec[k] = copy.deepcopy(old_spec[k])
        _allocate_ips(spec, ips)
    if res.has_generation:
        gen = old["metadata"].get("generation", 1)
        out["metadata"]["generation"] = gen + 1 if out.get("spec") != old.get("spec") else gen
    return out


def _fold_string_data(obj: dict[str, Any]) -> None:
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {}) or {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


def allocation_causes(res: schema.Resource, obj: dict[str, Any], ips: ServiceIPs) -> list[Cause]:
    """A Service asking for fixed cluster IPs that are taken: the registry fails to allocate them
    before it ever looks for a name clash, so a re-created Service gets 422, not 409 (fixture 44)."""
    spec = obj.get("spec") or {}
    if res.plural != "services" or spec.get("type") == "ExternalName":
        return []
    wanted = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    for ip in wanted:
        if ips.taken(ip):
            return [Cause("FieldValueInvalid", "spec.clusterIPs",
                          f"failed to allocate IP {ip}: provided IP is already allocated", wanted)]
    return []


def _allocate_ips(spec: dict[str, Any], ips: ServiceIPs) -> None:
    if spec.get("type") == "ExternalName":
        return
    if spec.get("clusterIP") != "None":
        spec["clusterIP"] = ips.allocate(spec.get("clusterIP") or None)
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def _default_workload(res: schema.Resource, obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    if res.plural == "deployments":
        spec.setdefault("replicas", 1)
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        spec.setdefault("progressDeadlineSeconds", 600)
    else:
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})


def _default_subjects(obj: dict[str, Any]) -> None:
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and not s.get("apiGroup") and s.get("kind") in ("User", "Group"):
            s["apiGroup"] = RBAC_GROUP
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = RBAC_GROUP


# --- validation --------------------------------------------------------------------------------


def _name_causes(res: schema.Resource, meta: dict[str, Any]) -> list[Cause]:
    name = meta.get("name") or ""
    if not name:
        if meta.get("generateName"):
            return []
        return [Cause("FieldValueRequired", "metadata.name", "name or generateName is required")]
    if res.group == RBAC_GROUP:  # RBAC names are path segments (they contain ':')
        if name in (".", "..") or "/" in name or "%" in name:
            return [Cause("FieldValueInvalid", "metadata.name", "may not contain '/' or '%'", name)]
        return []
    if res.plural == "namespaces":
        ok, msg = DNS1123_LABEL.match(name) and len(name) <= 63, LABEL_MSG
    elif res.plural == "services":
        ok, msg = DNS1035_LABEL.match(name) and len(name) <= 63, DNS1035_MSG
    else:
        ok, msg = DNS1123_SUBDOMAIN.match(name) and len(name) <= 253, SUBDOMAIN_MSG
    return [] if ok else [Cause("FieldValueInvalid", "metadata.name", msg, name)]


def validate(res: schema.Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes = _name_causes(res, meta)
    if res.namespaced and meta.get("namespace") and not DNS1123_LABEL.match(meta["namespace"]):
        causes.append(Cause("FieldValueInvalid", "metadata.namespace", LABEL_MSG, meta["namespace"]))
    if res.plural in ("configmaps", "secrets"):
        for field_name in ("data", "binaryData"):
            for key in obj.get(field_name) or {}:
                if not CONFIG_KEY.match(key):
                    causes.append(Cause("FieldValueInvalid", f"{field_name}[{key}]", CONFIG_KEY_MSG, key))
        if res.plural == "secrets":
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(value, validate=True)
                except (ValueError, TypeError):
                    causes.append(Cause("FieldValueInvalid", f"data[{key}]", "illegal base64 data", value))
        if old is not None and old.get("immutable"):
            for field_name in ("data", "binaryData"):
                if obj.get(field_name) != old.get(field_name):
                    causes.append(Cause("FieldValueForbidden", field_name,
                                        "field is immutable when `immutable` is set"))
    if res.plural in ("rolebindings", "clusterrolebindings"):
        ref = obj.get("roleRef") or {}
        allowed = ("Role", "ClusterRole") if res.plural == "rolebindings" else ("ClusterRole",)
        if ref.get("kind") not in allowed:
            causes.append(Cause("FieldValueNotSupported", "roleRef.kind",
                                "supported values: " + ", ".join(f'"{a}"' for a in allowed), ref.get("kind", "")))
        if not ref.get("name"):
            causes.append(Cause("FieldValueRequired", "roleRef.name", ""))
        if old is not None and (old.get("roleRef") or {}) != ref:
            causes.append(Cause("FieldValueInvalid", "roleRef", "cannot change roleRef", ref))
        for i, s in enumerate(obj.get("subjects") or []):
            if s.get("kind") not in ("User", "Group", "ServiceAccount"):
                causes.append(Cause("FieldValueNotSupported", f"subjects[{i}].kind",
                                    'supported values: "Group", "ServiceAccount", "User"', s.get("kind", "")))
            if not s.get("name"):
                causes.append(Cause("FieldValueRequired", f"subjects[{i}].name", ""))
    if res.plural in ("roles", "clusterroles"):
        for i, rule in enumerate(obj.get("rules") or []):
            if not rule.get("verbs"):
                causes.append(Cause("FieldValueRequired", f"rules[{i}].verbs", "verbs must contain at least one value"))
    if res.plural == "certificatesigningrequests" and old is None:
        causes += _validate_csr(obj.get("spec") or {})
    if res.plural == "nodes":
        for i, t in enumerate((obj.get("spec") or {}).get("taints") or []):
            if t.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                causes.append(Cause("FieldValueNotSupported", f"spec.taints[{i}].effect",
                                    'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
                                    t.get("effect", "")))
    return causes


def _validate_csr(spec: dict[str, Any]) -> list[Cause]:
    from cryptography import x509

    causes = []
    try:
        pem = base64.b64decode(spec.get("request") or "", validate=True)
        x509.load_pem_x509_csr(pem)
    except (ValueError, TypeError):
        causes.append(Cause("FieldValueInvalid", "spec.request", "PEM block type must be CERTIFICATE REQUEST",
                            "[]byte{...}"))
    if not spec.get("signerName"):
        causes.append(Cause("FieldValueRequired", "spec.signerName", ""))
    if not spec.get("usages"):
        causes.append(Cause("FieldValueRequired", "spec.usages", ""))
    return causes
