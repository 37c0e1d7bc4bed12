"""`join --control-plane`: the phases that make a joining node a control plane (kubeadm's order).

preflight              the cluster must have a controlPlaneEndpoint (a stable address every member
                       and worker uses); the shared CAs must be obtainable (certificate key) or on disk
control-plane-prepare  download-certs (kubeadm-certs with the certificate key) or check the pre-shared
                       material against the discovered CA; then init's certs, kubeconfig and control-plane
                       phases for this node, with the cluster's ClusterConfiguration
control-plane-join     etcd (learner, manifest, promote: kbootd.etcd.members), mark-control-plane
wait-control-plane     the local API server answers

Each phase derives what it needs (the discovered cluster, the ClusterConfiguration, this node's
InitConfiguration view) on first use, so each runs alone, in --dry-run, and after a crash.
The shared CAs are never generated here: a control plane with a CA of its own would split the cluster.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from kbootd import apiclient, kubeconfig
from kbootd.cluster import markcp, sharedpki, uploadcerts, waitcp
from kbootd.config.model import InitConfig, JoinControlPlane
from kbootd.errors import PreflightError, SecurityError
from kbootd.etcd import members
from kbootd.join import clients
from kbootd.join import phases as join_phases
from kbootd.manifests import phase as manifests_phase
from kbootd.pin import pin_of
from kbootd.pki import certlist, files
from kbootd.pki import certs as pki_certs
from kbootd.pki import phase as pki_phase
from kbootd.preflight import facts_for
from kbootd.preflight.runner import run_checks
from kbootd.preflight.tables import control_plane_join_checks
from kbootd.retry import DEFAULT_BACKOFF, retry

PREFLIGHT = "preflight"
DOWNLOAD = "download-certs"
SHARED_CAS = ("ca", "front-proxy-ca")  # plus etcd/ca with a local etcd, and sa.key/sa.pub
KUBECONFIGS = ("admin", "controller-manager", "scheduler")  # super-admin.conf is init's only


def is_control_plane(ctx: Any) -> bool:
    return ctx.join is not None and ctx.join.control_plane is not None


def skip_unless_control_plane(ctx: Any) -> str | None:
    return None if is_control_plane(ctx) else "not a control-plane join (see --control-plane)"


# --- what the cluster says ---------------------------------------------------------------------------

def bootstrap_client(ctx: Any) -> Any:
    cluster = ctx.data.cluster
    creds = clients.bootstrap_credentials(ctx, cluster)
    return clients.client(cluster.server, cluster.ca_pem, creds, timeout=ctx.join.timeouts.kubernetes_api_call)


def cluster_configuration(ctx: Any) -> Any:
    """The cluster's ClusterConfiguration (kubeadm-config), read with the bootstrap token once per run."""
    if ctx.data.cluster_configuration is None:
        client = bootstrap_client(ctx)
        try:
            text = join_phases._configmap_key(ctx, client, "kubeadm-config", "ClusterConfiguration")
        finally:
            client.close()
        ctx.data.cluster_configuration = join_phases.cluster_configuration(
            text, lambda m: ctx.reporter.warn(PREFLIGHT, m))
    return ctx.data.cluster_configuration


def init_view(ctx: Any) -> Any:
    """This node as init would see it: the cluster's ClusterConfiguration, the join's node registration,
    timeouts and local API endpoint. Set as ctx.init, so init's phase functions run unchanged."""
    if ctx.init is None:
        cp = ctx.join.control_plane
        ctx.init = InitConfig(cluster=cluster_configuration(ctx), advertise_address=cp.advertise_address,
                              bind_port=cp.bind_port, node=ctx.join.node, bootstrap_tokens=(),
                              timeouts=ctx.join.timeouts, source=ctx.join.source)
    return ctx.init


# --- preflight --------------------------------------------------------------------------------------

def preflight(ctx: Any) -> None:
    """kubeadm's control-plane prerequisites for join."""
    cfg = init_view(ctx)
    ctx.reporter.info(PREFLIGHT, "Running pre-flight checks before initializing the new control plane instance")
    if not cfg.cluster.control_plane_endpoint:
        raise PreflightError(
            "unable to add a new control plane instance to a cluster that doesn't have a stable "
            "controlPlaneEndpoint address",
            hint="set controlPlaneEndpoint (a load-balanced or DNS name for the API servers) in the cluster's "
                 "ClusterConfiguration (kubeadm-config ConfigMap), then join again")
    run_checks(ctx, control_plane_join_checks(ctx), facts_for(ctx))
    if ctx.join.control_plane.certificate_key is None and not ctx.host.exists(_crt(ctx, "ca")):
        raise PreflightError(
            f"no certificate key and no pre-shared cluster CA at {_crt(ctx, 'ca')}: this node cannot obtain "
            "the control plane's shared certificates",
            hint="pass --certificate-key (from `kbootd init --upload-certs`), or write the shared material from "
                 "`kbootd ca generate --control-plane` before joining")


# --- control-plane-prepare ---------------------------------------------------------------------------

def _crt(ctx: Any, base: str) -> str:
    d = (ctx.init.cluster if ctx.init is not None else None)
    cert_dir = d.certificates_dir if d is not None else "/etc/kubernetes/pki"
    return f"{cert_dir}/{base}.crt"


def download_certs(ctx: Any) -> None:
    init_view(ctx)
    key = ctx.join.control_plane.certificate_key
    if not key:
        ctx.reporter.info(DOWNLOAD, "Skipping phase. Please see --certificate-key")
        check_preshared(ctx)
        return
    cluster = ctx.data.cluster
    ctx.reporter.info(DOWNLOAD, f'Downloading the certificates in Secret "{uploadcerts.SECRET_NAME}" in the '
                                f'"{uploadcerts.NAMESPACE}" Namespace')
    if ctx.dry_run:
        ctx.reporter.out(f'[dryrun] Would decrypt Secret "{uploadcerts.SECRET_NAME}" and write the shared '
                         f'certificates to "{ctx.cfg.cluster.certificates_dir}"')
        return

    expected = pin_of(pki_certs.load_cert_chain_pem(cluster.ca_pem, "the discovered cluster CA")[0])
    client = bootstrap_client(ctx)
    try:
        # kubeadm fails at once when the Secret is missing; the daemon (no deadline) waits for the first
        # control plane to upload it, saying so in its status.
        wait(ctx, lambda: uploadcerts.download(ctx, client, key, source="--certificate-key", expected_pin=expected),
             "waiting for the control plane's certificates (Secret kubeadm-certs)", DOWNLOAD,
             retryable=lambda e: isinstance(e, uploadcerts.CertsNotUploaded))
    finally:
        client.close()
    ctx.reporter.info(DOWNLOAD, f'Saving the certificates to the folder: "{ctx.cfg.cluster.certificates_dir}"')


def check_preshared(ctx: Any) -> None:
    """Pre-shared material must be the cluster's: ca.crt's pin is the discovered CA's, each CA has its
    key, sa.key/sa.pub are a pair. Checked before anything of this node is derived from them."""
    sharedpki.check_against_cluster(ctx, ctx.data.cluster.ca_pem)


def require_shared(ctx: Any) -> bool:
    """Refuse to continue without the shared CAs: init's certs phase would generate new ones.
    False in a dry run that lacks them (download-certs did not really run): the caller only says
    what it would do."""
    cfg = ctx.cfg
    bases = list(SHARED_CAS) + (["etcd/ca"] if cfg.cluster.etcd_local is not None else [])
    missing = [p for b in bases for p in (files.crt_path(ctx, b), files.key_path(ctx, b))
               if not ctx.host.exists(p)]
    missing += [p for p in (files.key_path(ctx, "sa"), files.pub_path(ctx, "sa")) if not ctx.host.exists(p)]
    if missing and ctx.dry_run:
        return False
    if missing:
        raise SecurityError(
            f"the control plane's shared certificates are missing: {', '.join(missing)}; refusing to generate new "
            "certificate authorities on a joining control plane",
            hint="run the download-certs phase with --certificate-key, or pre-share them")
    return True


def certs(ctx: Any) -> None:
    init_view(ctx)
    if not require_shared(ctx):
        ctx.reporter.out("[dryrun] Would generate this node's certificates (apiserver, etcd, front-proxy client...) "
                         "from the shared certificate authorities download-certs brings")
        return
    pki_phase.certs(ctx)
    for spec in certlist.cert_list(ctx):
        pki_phase.ensure_cert(ctx, spec)
    pki_phase.ensure_sa(ctx)


def kubeconfigs(ctx: Any) -> None:
    init_view(ctx)
    if not require_shared(ctx):
        ctx.reporter.out(f"[dryrun] Would write {', '.join(k + '.conf' for k in KUBECONFIGS)} signed by the "
                         "cluster CA download-certs brings")
        return
    kubeconfig.kubeconfig(ctx)
    for name in KUBECONFIGS:
        kubeconfig.ensure(ctx, kubeconfig.BY_NAME[name])


def control_plane(ctx: Any) -> None:
    init_view(ctx)
    manifests_phase.control_plane(ctx)
    manifests_phase.apiserver(ctx)
    manifests_phase.controller_manager(ctx)
    manifests_phase.scheduler(ctx)


# --- control-plane-join ------------------------------------------------------------------------------

def skip_unless_stacked_etcd(ctx: Any) -> str | None:
    reason = skip_unless_control_plane(ctx)
    if reason:
        return reason
    return "external etcd: no member to add" if init_view(ctx).cluster.etcd_local is None else None


def etcd(ctx: Any) -> None:
    """Join the stacked etcd cluster through the members the etcd Pods announce (kubeadm finds them so)."""
    init_view(ctx)
    if ctx.dry_run:
        members.run(ctx, ["https://<etcd members from the etcd Pods>:2379"])
        return
    client = apiclient.client_for(ctx)
    try:
        endpoints = wait(ctx, lambda: members.endpoints_from_cluster(client), "waiting for the etcd members' "
                         "Pods to announce their client URLs", "etcd", deadline=ctx.cfg.timeouts.etcd_api_call)
    finally:
        if client is not ctx.data.api_client:
            client.close()
    members.run(ctx, endpoints)


def wait(ctx: Any, fn: Any, what: str, phase: str, *, deadline: float | None = None, retryable: Any = None) -> Any:
    """kbootd.retry with the join's backoff; without a deadline given: forever in the daemon (discovery
    has none there), once on the command line."""
    if deadline is None:
        if not math.isinf(ctx.join.timeouts.discovery):
            return fn()  # the command line: kubeadm's error at once, not a timeout
        deadline = math.inf
    return retry(fn, what=what, deadline=deadline, backoff=ctx.seams.backoff or DEFAULT_BACKOFF, timing=ctx.seams,
                 on_retry=lambda a, c, n: ctx.reporter.retry(phase, a, f"{what}: {c}", n), retryable=retryable)


def mark_control_plane(ctx: Any) -> None:
    init_view(ctx)
    markcp.mark_control_plane(ctx)


def wait_control_plane(ctx: Any) -> None:
    """This node's own API server (kubeadm waits for the local one), then kubeadm's closing words."""
    cfg = init_view(ctx)
    waitcp.wait_control_plane(ctx, server=local_api_url(ctx, cfg))
    ctx.reporter.out(joined_text(ctx))


def local_api_url(ctx: Any, cfg: Any) -> str:
    addr = ctx.data.advertise_address
    host = f"[{addr}]" if ":" in addr else addr
    return f"https://{host}:{cfg.bind_port}"


def joined_text(ctx: Any) -> str:
    return ("\nThis node has joined the cluster and a new control plane instance was created:\n\n"
            "* Certificate signing request was sent to apiserver and approval was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n"
            "* Control plane label and taint were applied to the new node.\n"
            "* The Kubernetes control plane instances scaled up.\n"
            "* A new etcd member was added to the local/stacked etcd cluster.\n")


def with_control_plane(cfg: Any, *, advertise_address: str | None, bind_port: int | None,
                       certificate_key: str | None) -> Any:
    """A JoinConfig made a control-plane join by flags (they override the file's controlPlane)."""
    cp = cfg.control_plane or JoinControlPlane()
    cp = replace(cp, **{k: v for k, v in (("advertise_address", advertise_address), ("bind_port", bind_port),
                                          ("certificate_key", certificate_key)) if v is not None})
    return replace(cfg, control_plane=cp)

