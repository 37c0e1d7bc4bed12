"""init's cluster half: the phases that create objects through the API server.

Every phase gets its client from `admin_client(ctx)`, kubeadm's initData.Client():
built once from admin.conf and, on first use, made usable by ensuring the
kubeadm:cluster-admins ClusterRoleBinding (with super-admin.conf when admin.conf's
user cannot create it yet). Builders return plain dicts; phases write them with the
create-or-update helpers of kbootd.apiclient, so a re-run after a crash converges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbootd import apiclient
from kbootd.apiclient import APIError, Client
from kbootd.errors import KbootdError, WaitTimeout

CLUSTER_ADMINS = "kubeadm:cluster-admins"  # the group in admin.conf's certificate, and the binding


def cluster_admins_binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": CLUSTER_ADMINS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": CLUSTER_ADMINS}],
    }


def admin_client(ctx: Any) -> Client:
    """The shared client for init's cluster phases (ctx.data.api_client)."""
    client = ctx.data.api_client
    if client is None or (ctx.dry_run and not client.dry_run):
        client = apiclient.client_for(ctx)
        ctx.data.api_client = client
    if not ctx.data.cluster_admins_ensured:
        ensure_cluster_admins(ctx, client)
        ctx.data.cluster_admins_ensured = True
    return client


def ensure_cluster_admins(ctx: Any, client: Client) -> None:
    """kubeadm's EnsureAdminClusterRoleBinding.

    admin.conf's user is only in the kubeadm:cluster-admins group, which nothing binds
    until this ClusterRoleBinding exists; it cannot create it itself (403). Then the
    break-glass super-admin.conf (group system:masters) creates it, and we wait until
    admin.conf's user is allowed, since RBAC caches take a moment.
    """
    crb = cluster_admins_binding()
    try:
        status = client.retry(lambda: _create_or_exists(client, crb), f"create ClusterRoleBinding {CLUSTER_ADMINS}")
    except APIError as e:
        if not e.forbidden:
            raise
        status = "forbidden"
    if status != "forbidden":
        return
    sa_path = ctx.paths.super_admin_conf
    if not ctx.host.exists(sa_path):
        raise KbootdError(
            f"the ClusterRoleBinding for the {CLUSTER_ADMINS} group is missing and admin.conf's user "
            f"may not create it, but there is no {sa_path} to create it with",
            hint="run the kubeconfig phase (it writes super-admin.conf) or create the binding by hand")
    ctx.reporter.info("upload-config", f"Creating ClusterRoleBinding {CLUSTER_ADMINS} with {sa_path}")
    kc = apiclient.load_kubeconfig(ctx, sa_path)
    transport = getattr(client.transport, "server", None)
    super_client = Client(apiclient.APITransport(kc, server=transport), timeout=client.timeout,
                          interval=client.interval, sleep=client.sleep, clock=client.clock)
    try:
        super_client.retry(lambda: _create_or_exists(super_client, crb), f"create ClusterRoleBinding {CLUSTER_ADMINS}")
    finally:
        super_client.close()
    _wait_allowed(client)


def _create_or_exists(client: Client, obj: dict[str, Any]) -> str:
    try:
        client.create(obj)
        return "created"
    except APIError as e:
        if e.already_exists:
            return "exists"
        raise


def _wait_allowed(client: Client) -> None:
    def allowed(e: BaseException) -> bool:
        return isinstance(e, APIError) and e.forbidden or apiclient.is_transient(e)

    try:
        client.retry(lambda: client.get("ClusterRoleBinding", CLUSTER_ADMINS),
                     f"read ClusterRoleBinding {CLUSTER_ADMINS}", retryable=allowed)
    except WaitTimeout as e:
        raise WaitTimeout(f"admin.conf's user is still not allowed after {client.timeout:g}s "
                          f"of the {CLUSTER_ADMINS} ClusterRoleBinding existing: {e.__cause__}") from e.__cause__


def node_wait_reporter(ctx: Any, phase: str) -> Callable[[int, str, float], None]:
    """on_retry for patch_node: say that we wait for the kubelet to register the Node, then every 20th try."""
    def waiting(attempt: int, why: str, next_in: float) -> None:
        if attempt == 1 or attempt % 20 == 0:
            ctx.reporter.retry(phase, attempt, why, next_in)

    return waiting


def write_all(client: Client, objects: list[dict[str, Any]]) -> dict[str, str]:
    """create-or-update each object in order; returns "Kind ns/name" -> what happened."""
    out = {}
    for obj in objects:
        md = obj["metadata"]
        out[f"{obj['kind']} {md.get('namespace', '')}/{md['name']}".replace(" /", " ")] = \
            apiclient.create_or_update(client, obj)
    return out
