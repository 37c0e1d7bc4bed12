"""What the test server knows about the API types it serves.

Two jobs, both about looking like the real (Go) server on the wire:
* field order and omission: Go marshals struct fields in declaration order, map keys sorted, and
  drops empty `omitempty` fields but never empty structs. `shape()` rebuilds a JSON object that way.
* list semantics, for managedFields (fieldsV1) and strategic merge patch: which lists are atomic,
  sets, or maps keyed by some fields (`+listType`, `+listMapKey`, `patchMergeKey`).

Only the types kbootd touches are described; anything else keeps the client's order and is
treated like the real server treats untyped data (maps granular, lists atomic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Type:
    """Base of the small type language below."""


class Untyped(Type):
    pass


ANY = Untyped()


@dataclass(frozen=True)
class Scalar(Type):
    pass


SCALAR = Scalar()


@dataclass(frozen=True)
class MapOf(Type):
    """A Go map: keys sorted on output, every key tracked on its own."""

    value: Type = SCALAR


MAP = MapOf()


@dataclass(frozen=True)
class ListOf(Type):
    """A list. kind: "atomic" (replaced whole), "set" (scalars, merged) or "map" (items keyed)."""

    item: Type = SCALAR
    kind: str = "atomic"
    keys: tuple[str, ...] = ()
    merge_key: str | None = None  # strategic merge patch; None means the list is replaced


ATOMIC = ListOf()
STRINGS = ListOf()
STRING_SET = ListOf(SCALAR, "set", merge_key="")  # merge_key "" = merge a list of scalars


@dataclass(frozen=True)
class Field:
    type: Type
    # Go emits the field even when empty (a struct, or a value without omitempty): its zero value.
    always: Callable[[], Any] | None = None


@dataclass
class Struct(Type):
    fields: dict[str, Field] = field(default_factory=dict)
    atomic: bool = False  # +structType=atomic: owned and replaced as one value


def struct(*, _atomic: bool = False, **fields: Type | Field) -> Struct:
    """Fields in Go declaration order (keyword order is kept)."""
    return Struct({k: v if isinstance(v, Field) else Field(v) for k, v in fields.items()}, _atomic)


def always(t: Type, default: Callable[[], Any] | None = None) -> Field:
    if default is None:
        default = dict if isinstance(t, Struct) else (lambda: "")
    return Field(t, default)


def keyed(item: Type, *keys: str, merge_key: str | None = None) -> ListOf:
    return ListOf(item, "map", keys, merge_key if merge_key is not None else keys[0])


# --- metadata --------------------------------------------------------------------------------

OWNER_REFERENCE = struct(apiVersion=SCALAR, kind=SCALAR, name=SCALAR, uid=SCALAR, controller=SCALAR,
                         blockOwnerDeletion=SCALAR)
MANAGED_FIELDS_ENTRY = struct(manager=SCALAR, operation=SCALAR, apiVersion=SCALAR, time=SCALAR,
                              fieldsType=SCALAR, fieldsV1=ANY, subresource=SCALAR)
OBJECT_META = struct(
    name=SCALAR, generateName=SCALAR, namespace=SCALAR, selfLink=SCALAR, uid=SCALAR,
    resourceVersion=SCALAR, generation=SCALAR, creationTimestamp=SCALAR, deletionTimestamp=SCALAR,
    deletionGracePeriodSeconds=SCALAR, labels=MAP, annotations=MAP,
    ownerReferences=keyed(OWNER_REFERENCE, "uid"), finalizers=STRING_SET,
    managedFields=ListOf(MANAGED_FIELDS_ENTRY),
)
LIST_META = Struct({k: Field(SCALAR) for k in ("selfLink", "resourceVersion", "continue", "remainingItemCount")})
LABEL_SELECTOR = struct(
    _atomic=True,
    matchLabels=MAP,
    matchExpressions=ListOf(struct(key=SCALAR, operator=SCALAR, values=STRINGS)),
)


def top(**fields: Type | Field) -> Struct:
    """A top-level object: TypeMeta, ObjectMeta, then its own fields."""
    return struct(kind=SCALAR, apiVersion=SCALAR, metadata=always(OBJECT_META), **fields)


# --- core/v1 ---------------------------------------------------------------------------------

CONFIG_MAP = top(immutable=SCALAR, data=MAP, binaryData=MAP)
SECRET = top(immutable=SCALAR, data=MAP, stringData=MAP, type=SCALAR)
NAMESPACE = top(
    spec=always(struct(finalizers=STRINGS)),
    status=always(struct(phase=SCALAR, conditions=keyed(ANY, "type"))),
)
SERVICE_ACCOUNT = top(
    secrets=keyed(struct(kind=SCALAR, namespace=SCALAR, name=SCALAR, uid=SCALAR, apiVersion=SCALAR,
                         resourceVersion=SCALAR, fieldPath=SCALAR), "name"),
    imagePullSecrets=ListOf(struct(name=SCALAR)),
    automountServiceAccountToken=SCALAR,
)
SERVICE_PORT = struct(name=SCALAR, protocol=SCALAR, appProtocol=SCALAR, port=SCALAR, targetPort=SCALAR,
                      nodePort=SCALAR)
SERVICE = top(
    spec=always(struct(
        ports=keyed(SERVICE_PORT, "port", "protocol", merge_key="port"), selector=MAP,
        clusterIP=SCALAR, clusterIPs=ATOMIC, type=SCALAR, externalIPs=ATOMIC, sessionAffinity=SCALAR,
        loadBalancerIP=SCALAR, loadBalancerSourceRanges=ATOMIC, externalName=SCALAR,
        externalTrafficPolicy=SCALAR, healthCheckNodePort=SCALAR, publishNotReadyAddresses=SCALAR,
        sessionAffinityConfig=ANY, ipFamilies=ATOMIC, ipFamilyPolicy=SCALAR,
        allocateLoadBalancerNodePorts=SCALAR, loadBalancerClass=SCALAR, internalTrafficPolicy=SCALAR,
        trafficDistribution=SCALAR,
    )),
    status=always(struct(loadBalancer=always(struct(ingress=ATOMIC)), conditions=keyed(ANY, "type"))),
)
TAINT = struct(key=SCALAR, value=SCALAR, effect=always(SCALAR), timeAdded=SCALAR)
NODE_CONDITION = struct(type=always(SCALAR), status=always(SCALAR), lastHeartbeatTime=SCALAR,
                        lastTransitionTime=SCALAR, reason=SCALAR, message=SCALAR)
NODE_SYSTEM_INFO = struct(**{k: always(SCALAR) for k in (
    "machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
    "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture")}, swap=ANY)
NODE = top(
    spec=always(struct(
        podCIDR=SCALAR, podCIDRs=STRING_SET, providerID=SCALAR, unschedulable=SCALAR,
        taints=ListOf(TAINT), configSource=ANY, externalID=SCALAR,
    )),
    status=always(struct(
        capacity=MAP, allocatable=MAP, phase=SCALAR,
        conditions=keyed(NODE_CONDITION, "type"),
        addresses=keyed(struct(type=always(SCALAR), address=always(SCALAR)), "type"),
        daemonEndpoints=always(struct(kubeletEndpoint=always(struct(Port=always(SCALAR, lambda: 0))))),
        nodeInfo=always(NODE_SYSTEM_INFO),
        images=ATOMIC, volumesInUse=ATOMIC, volumesAttached=ATOMIC, config=ANY,
        runtimeHandlers=ATOMIC, features=ANY,
    )),
)

# --- pods (only the parts whose list semantics matter for patches and managedFields) --------

CONTAINER = struct(
    name=SCALAR, image=SCALAR, command=ATOMIC, args=ATOMIC, workingDir=SCALAR,
    ports=keyed(struct(name=SCALAR, hostPort=SCALAR, containerPort=SCALAR, protocol=SCALAR, hostIP=SCALAR),
                "containerPort", "protocol", merge_key="containerPort"),
    envFrom=ATOMIC, env=keyed(ANY, "name"), resources=ANY,
    volumeMounts=keyed(ANY, "mountPath"),
)
POD_SPEC = struct(
    volumes=keyed(ANY, "name"), initContainers=keyed(CONTAINER, "name"), containers=keyed(CONTAINER, "name"),
    imagePullSecrets=keyed(struct(name=SCALAR), "name"), tolerations=ATOMIC,
)
POD_TEMPLATE = always(struct(metadata=always(OBJECT_META), spec=always(POD_SPEC)))
# Mirror Pods of static Pods: kubeadm reads the etcd Pods' advertise-client-urls annotation.
POD = top(spec=always(POD_SPEC), status=ANY)

# --- apps/v1 ---------------------------------------------------------------------------------

DEPLOYMENT = top(
    spec=always(struct(
        replicas=SCALAR, selector=LABEL_SELECTOR, template=POD_TEMPLATE, strategy=ANY,
        minReadySeconds=SCALAR, revisionHistoryLimit=SCALAR, paused=SCALAR, progressDeadlineSeconds=SCALAR,
    )),
    status=always(struct(
        observedGeneration=SCALAR, replicas=SCALAR, updatedReplicas=SCALAR, readyReplicas=SCALAR,
        availableReplicas=SCALAR, unavailableReplicas=SCALAR, terminatingReplicas=SCALAR,
        conditions=keyed(ANY, "type"), collisionCount=SCALAR,
    )),
)
DAEMON_SET = top(
    spec=always(struct(
        selector=LABEL_SELECTOR, template=POD_TEMPLATE, updateStrategy=ANY, minReadySeconds=SCALAR,
        revisionHistoryLimit=SCALAR,
    )),
    status=always(struct(**{k: always(SCALAR, lambda: 0) for k in (
        "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")},
        observedGeneration=SCALAR, updatedNumberScheduled=SCALAR, numberAvailable=SCALAR,
        numberUnavailable=SCALAR, collisionCount=SCALAR, conditions=keyed(ANY, "type"),
    )),
)

# --- rbac.authorization.k8s.io/v1 ------------------------------------------------------------

POLICY_RULE = struct(verbs=always(STRINGS, lambda: []), apiGroups=STRINGS, resources=STRINGS,
                     resourceNames=STRINGS, nonResourceURLs=STRINGS)
RULES = always(ListOf(POLICY_RULE), lambda: None)  # `json:"rules"`: a nil slice is sent as null
ROLE = top(rules=RULES)
CLUSTER_ROLE = top(rules=RULES, aggregationRule=ANY)
SUBJECT = struct(kind=always(SCALAR), apiGroup=SCALAR, name=always(SCALAR), namespace=SCALAR)
ROLE_REF = struct(apiGroup=always(SCALAR), kind=always(SCALAR), name=always(SCALAR))
ROLE_BINDING = top(subjects=ListOf(SUBJECT), roleRef=always(ROLE_REF, dict))

# --- certificates.k8s.io/v1 ------------------------------------------------------------------

CSR_CONDITION = struct(type=always(SCALAR), status=always(SCALAR), reason=SCALAR, message=SCALAR,
                       lastUpdateTime=SCALAR, lastTransitionTime=SCALAR)
CSR = top(
    spec=always(struct(
        request=always(SCALAR), signerName=always(SCALAR), expirationSeconds=SCALAR, usages=ATOMIC,
        username=SCALAR, uid=SCALAR, groups=ATOMIC, extra=ANY,
    )),
    status=always(struct(conditions=keyed(CSR_CONDITION, "type"), certificate=SCALAR)),
)

# --- meta/v1 Status --------------------------------------------------------------------------

STATUS_DETAILS = struct(name=SCALAR, group=SCALAR, kind=SCALAR, uid=SCALAR,
                        causes=ListOf(struct(reason=SCALAR, message=SCALAR, field=SCALAR)),
                        retryAfterSeconds=SCALAR)
STATUS = struct(kind=SCALAR, apiVersion=SCALAR, metadata=always(LIST_META), status=SCALAR, message=SCALAR,
                reason=SCALAR, details=STATUS_DETAILS, code=SCALAR)


@dataclass(frozen=True)
class Resource:
    """One REST resource, as discovery would describe it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    schema: Struct
    status_subresource: bool = False
    create_on_update: bool = False  # PUT on a missing object creates it (RBAC objects do)
    has_generation: bool = False
    managed_fields: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    field_labels: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    returns_deleted: bool = False  # DELETE answers with the object rather than a Status

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """Kubernetes' GroupResource.String(): `configmaps`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, NAMESPACE, status_subresource=True,
             short_names=("ns",), field_labels=("status.phase",), subresources=("status", "finalize"),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, CONFIG_MAP, short_names=("cm",)),
    Resource("", "v1", "secrets", "secret", "Secret", True, SECRET, field_labels=("type",)),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, SERVICE_ACCOUNT,
             short_names=("sa",), returns_deleted=True),
    Resource("", "v1", "services", "service", "Service", True, SERVICE, status_subresource=True,
             short_names=("svc",), subresources=("status",), returns_deleted=True,
             verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    Resource("", "v1", "nodes", "node", "Node", False, NODE, status_subresource=True, short_names=("no",),
             field_labels=("spec.unschedulable",), subresources=("status",)),
    Resource("", "v1", "pods", "pod", "Pod", True, POD, status_subresource=True, short_names=("po",),
             field_labels=("spec.nodeName",), subresources=("status",)),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, DEPLOYMENT,
             status_subresource=True, has_generation=True, short_names=("deploy",), subresources=("status",)),
    Resource("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, DAEMON_SET,
             status_subresource=True, has_generation=True, short_names=("ds",), subresources=("status",)),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, ROLE, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True,
             ROLE_BINDING, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False,
             CLUSTER_ROLE, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
             "ClusterRoleBinding", False, ROLE_BINDING, create_on_update=True),
    # The real server records no managedFields for CSRs (fixtures 29-33).
    Resource("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest",
             "CertificateSigningRequest", False, CSR, status_subresource=True, managed_fields=False,
             short_names=("csr",), field_labels=("spec.signerName",), subresources=("approval", "status")),
)

BY_PLURAL = {(r.group, r.plural): r for r in RESOURCES}
BY_KIND = {(r.group, r.kind): r for r in RESOURCES}
GROUP_VERSIONS: dict[str, list[str]] = {}
for _r in RESOURCES:
    GROUP_VERSIONS.setdefault(_r.group, [])
    if _r.version not in GROUP_VERSIONS[_r.group]:
        GROUP_VERSIONS[_r.group].append(_r.version)


def resource_for(ref: str) -> Resource:
    """Look a resource up by plural (`configmaps`, `deployments.apps`) or kind (`ConfigMap`)."""
    name, _, group = ref.partition(".")
    for r in RESOURCES:
        if (r.plural == name or r.kind == name or r.singular == name) and (not group or r.group == group):
            return r
    raise KeyError(f"unknown resource {ref!r}")


def resource_for_object(obj: dict[str, Any]) -> Resource:
    api_version = obj.get("apiVersion", "")
    group = api_version.rpartition("/")[0]
    try:
        return BY_KIND[(group, obj.get("kind", ""))]
    except KeyError:
        raise KeyError(f"unknown kind {obj.get('kind')!r} in {api_version!r}") from None


# --- shaping ---------------------------------------------------------------------------------


def _empty(v: Any) -> bool:
    # Go's omitempty: nil, "", and empty maps/slices. Numbers and booleans are mostly pointers in
    # Kubernetes types (so 0 and false are kept); the few value fields are marked `always`.
    return v is None or v == "" or (isinstance(v, (dict, list)) and not v)


def shape(value: Any, t: Type = ANY) -> Any:
    """Rebuild `value` the way Go would marshal it as type `t`."""
    if isinstance(t, Struct) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, f in t.fields.items():
            v = value.get(name)
            if not _empty(v) or (name in value and v is not None and f.always is not None):
                out[name] = shape(v, f.type)
            elif f.always is not None:
                default = f.always()
                out[name] = shape(default, f.type) if isinstance(default, dict) else default
        for name, v in value.items():  # fields this schema does not describe keep the client's order
            if name not in t.fields and not _empty(v):
                out[name] = shape(v)
        return out
    if isinstance(t, MapOf) and isinstance(value, dict):
        return {k: shape(value[k], t.value) for k in sorted(value)}
    if isinstance(t, ListOf) and isinstance(value, list):
        return [shape(v, t.item) for v in value]
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def child_type(t: Type, key: str) -> Type:
    if isinstance(t, Struct):
        f = t.fields.get(key)
        return f.type if f else ANY
    if isinstance(t, MapOf):
        return t.value
    return ANY
