"""bootstrap-token: token Secrets, the RBAC that lets joining nodes use them, and cluster-info.

The Secret format is the bootstrap token authenticator's (type
bootstrap.kubernetes.io/token in kube-system). cluster-info in kube-public holds a
kubeconfig with only the CA and the server URL; anonymous clients may read exactly that
ConfigMap, which the bootstrap signer then signs with each token (discovery).
"""

from __future__ import annotations

import base64
import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

from kbootd import apiclient, kyaml
from kbootd.cluster import admin_client, write_all
from kbootd.cluster.uploadconfig import (
    BOOTSTRAP_GROUP,
    NODES_GROUP,
    get_one_configmap_role,
    group,
    role_binding,
)
from kbootd.config.model import BootstrapTokenSpec
from kbootd.errors import KbootdError
from kbootd.node import control_plane_url
from kbootd.paths import Paths
from kbootd.token import BootstrapToken

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
CLUSTER_INFO = "cluster-info"
PUBLIC_NAMESPACE = "kube-public"
CLUSTER_INFO_ROLE = "kubeadm:bootstrap-signer-clusterinfo"
ANONYMOUS = "system:anonymous"
# On the Secret of a token init generated (none was configured), so a re-run finds and reuses it.
GENERATED_LABEL = ("kbootd.io/generated-by", "init")

_RBAC = "rbac.authorization.k8s.io"


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_data(token: BootstrapToken, *, expires: str | None, usages: tuple[str, ...],
                groups: tuple[str, ...], description: str = "") -> dict[str, str]:
    """The Secret's fields as text, before base64."""
    data = {"token-id": token.id, "token-secret": token.secret}
    if description:
        data["description"] = description
    if expires:
        data["expiration"] = expires
    for u in usages:
        data[f"usage-bootstrap-{u}"] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    return data


def expiration(spec_expires: str | None, ttl: float | None, now: datetime) -> str | None:
    """RFC 3339 UTC; None (never expires) for a TTL of 0."""
    if spec_expires:
        return spec_expires
    if not ttl:
        return None
    return rfc3339(now + timedelta(seconds=ttl))


def token_secret(token: BootstrapToken, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": token.secret_name, "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def spec_secret(spec: BootstrapTokenSpec, token: BootstrapToken, now: datetime) -> dict[str, Any]:
    secret = token_secret(token, secret_data(token, expires=expiration(spec.expires, spec.ttl, now),
                                             usages=spec.usages, groups=spec.groups,
                                             description=spec.description))
    if spec.token is None:
        secret["metadata"]["labels"] = dict([GENERATED_LABEL])
    return secret


def decode_secret(secret: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            out[k] = ""
    return out


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def cluster_role_binding(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects}


# (console line, objects): kubeadm's order and wording.
def rbac_steps() -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        ("Configured RBAC rules to allow Node Bootstrap tokens to get nodes", [
            cluster_role("kubeadm:get-nodes", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]),
            cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes", [group(BOOTSTRAP_GROUP)]),
        ]),
        ("Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long "
         "term certificate credentials", [
            cluster_role_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", [group(BOOTSTRAP_GROUP)]),
        ]),
        ("Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node "
         "Bootstrap Token", [
            cluster_role_binding("kubeadm:node-autoapprove-bootstrap",
                                 "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                                 [group(BOOTSTRAP_GROUP)]),
        ]),
        ("Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster", [
            cluster_role_binding("kubeadm:node-autoapprove-certificate-rotation",
                                 "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                                 [group(NODES_GROUP)]),
        ]),
    ]


def cluster_info_kubeconfig(cluster: dict[str, Any]) -> str:
    """Only the cluster entry, unnamed, as kubeadm writes it (clientcmd.Write of a bare Config)."""
    return kyaml.dump({"apiVersion": "v1", "clusters": [{"cluster": cluster, "name": ""}], "contexts": None,
                       "current-context": "", "kind": "Config", "preferences": {}, "users": None})


def cluster_info_objects(kubeconfig_text: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CLUSTER_INFO, "namespace": PUBLIC_NAMESPACE},
         "data": {"kubeconfig": kubeconfig_text}},
        get_one_configmap_role(CLUSTER_INFO_ROLE, PUBLIC_NAMESPACE, CLUSTER_INFO),
        role_binding(CLUSTER_INFO_ROLE, PUBLIC_NAMESPACE, CLUSTER_INFO_ROLE, [{"kind": "User", "name": ANONYMOUS}]),
    ]


def cluster_entry(ctx: Any) -> dict[str, Any]:
    """admin.conf's cluster (CA inlined), as kubeadm copies it; else the CA file and this endpoint."""
    if ctx.host.exists(ctx.paths.admin_conf):
        return dict(apiclient.load_kubeconfig(ctx, ctx.paths.admin_conf).cluster)
    ca_path = Paths.cert(ctx.cfg.cluster.certificates_dir, "ca", "crt")
    ca = ctx.host.read_bytes(ca_path)
    if ca is None:
        raise KbootdError(f"cannot build cluster-info: neither {ctx.paths.admin_conf} nor {ca_path} exists",
                          hint="run the certs and kubeconfig phases first")
    return {"certificate-authority-data": base64.b64encode(ca).decode(), "server": control_plane_url(ctx)}


def ensure_token_secret(client: apiclient.Client, secret: dict[str, Any], token: BootstrapToken) -> str:
    """Create the token's Secret; an existing one with the same id is kept, never duplicated."""
    what, existing = apiclient.create_or_keep(client, secret)
    if what == "kept" and existing is not None:
        have = decode_secret(existing).get("token-secret", "")
        if not hmac.compare_digest(have.encode(), token.secret.encode()):
            raise KbootdError(
                f"a bootstrap token with id {token.id!r} already exists in {NAMESPACE} with a different secret",
                hint=f"delete it first (kbootd token delete {token.id}) or configure another token")
    return what


def bootstrap_token(ctx: Any) -> None:
    say = ctx.reporter.info
    tokens = ctx.data.tokens
    if tokens:
        say("bootstrap-token", f"Using token: {tokens[0][1]}")  # str() shows the id only
    say("bootstrap-token", "Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    client = admin_client(ctx)
    now = ctx.seams.now()
    for spec, tok in tokens:
        ensure_token_secret(client, spec_secret(spec, tok, now), tok)
    for line, objects in rbac_steps():
        say("bootstrap-token", line)
        write_all(client, objects)
    say("bootstrap-token", f'Creating the "{CLUSTER_INFO}" ConfigMap in the "{PUBLIC_NAMESPACE}" namespace')
    cm, role, binding = cluster_info_objects(cluster_info_kubeconfig(cluster_entry(ctx)))

    def set_kubeconfig(live: dict[str, Any]) -> None:
        # Keep the bootstrap signer's jws-kubeconfig-<id> keys; replace only our own.
        live["data"] = {**(live.get("data") or {}), "kubeconfig": cm["data"]["kubeconfig"]}

    apiclient.create_or_mutate(client, cm, set_kubeconfig)
    write_all(client, [role, binding])
