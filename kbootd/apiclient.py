"""The public face of kbootd's Kubernetes API client (the parts live in kbootd.api).

Objects are plain JSON-ready dicts. Traffic goes through kbootd.transport (a total
deadline per request, a size cap, no redirects, key material only in memory); the
kubeconfig is read by kbootd.kubeconfigfile; retries go through kbootd.retry.

Helpers mirror kubeadm's util/apiclient: create-or-update (so a re-run converges),
create-or-keep, create-or-mutate, node patching with retries, and a dry-run client that
prints every action as kubeadm's does and changes nothing.
"""

from __future__ import annotations

from typing import Any

from kbootd.api.client import DEFAULT_TIMEOUT, RETRY_INTERVAL, Client, with_retries
from kbootd.api.connection import (
    USER_AGENT,
    APITransport,
    KubeConfig,
    KubernetesTransport,
    load_kubeconfig,
)
from kbootd.api.dryrun import DryRunClient, printable
from kbootd.api.errors import APIError, APIUnavailable, is_transient
from kbootd.api.objects import (
    NodeNotRegistered,
    contains,
    create_or_keep,
    create_or_mutate,
    create_or_update,
    merge_patch,
    merge_patch_apply,
    patch_node,
)
from kbootd.api.resources import RESOURCES, Obj, Resource, describe, resource

__all__ = [
    "APIError", "APITransport", "APIUnavailable", "Client", "DEFAULT_TIMEOUT", "DryRunClient", "KubeConfig",
    "KubernetesTransport", "NodeNotRegistered", "Obj", "RESOURCES", "RETRY_INTERVAL", "Resource", "USER_AGENT",
    "client_for", "contains", "create_or_keep", "create_or_mutate", "create_or_update", "describe",
    "is_transient", "load_kubeconfig", "merge_patch", "merge_patch_apply", "patch_node", "printable", "resource",
    "with_retries",
]


def client_for(ctx: Any, kubeconfig: str | None = None, *, server: str | None = None,
               timeout: float | None = None) -> Client:
    """A client from a kubeconfig (admin.conf by default); the dry-run client in dry-run.

    ctx.data.api_client, when set, is used as is (tests, and a client already built),
    except that dry-run only ever uses a DryRunClient.
    """
    given = ctx.data.api_client
    if ctx.dry_run:
        # Never a real client in dry-run, whatever was handed over.
        return given if isinstance(given, DryRunClient) else DryRunClient(ctx.reporter.out)
    if given is not None:
        return given
    if timeout is None:
        timeout = ctx.init.timeouts.kubernetes_api_call if ctx.init is not None else DEFAULT_TIMEOUT
    kc = load_kubeconfig(ctx, kubeconfig or ctx.paths.admin_conf)
    return Client(APITransport(kc, server=server), timeout=timeout)
