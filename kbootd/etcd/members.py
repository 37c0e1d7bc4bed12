"""A control plane joining the stacked etcd cluster, idempotently (kubeadm v1.32's learner flow).

1. find this node's member by its peer URL, else add it as a learner (a learner neither votes nor
   counts for quorum, so a new member that never starts cannot cost the cluster its quorum);
2. write the etcd manifest with --initial-cluster listing every member and
   --initial-cluster-state=existing (the kubelet starts it);
3. promote the learner once etcd says it caught up with the leader.

A retry after a crash at any point (after the add whose answer was lost, before the static Pod
runs, after promote) finds the member by peer URL instead of adding a second one, and a promote
that already happened is recognised. Each step goes through kbootd.retry: etcd answers "too many
learners" while another joiner's learner is pending and "not in sync" while ours catches up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbootd.errors import KbootdError, SecurityError
from kbootd.etcd.gateway import EtcdError, EtcdUnavailable, Gateway, Member, load_credentials
from kbootd.manifests import etcd as etcd_manifest
from kbootd.manifests import pod
from kbootd.manifests.phase import ETCD_DATA_DIR_MODE, MANIFEST_DIR_MODE, MANIFEST_MODE
from kbootd.retry import DEFAULT_BACKOFF
from kbootd.retry import retry as retry_loop

PHASE = "etcd"
ETCD_POD_LABEL = "component=etcd,tier=control-plane"
CLIENT_URLS_ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"


def own(members: list[Member], peer_url: str) -> Member | None:
    """This node's member: the one whose peer URLs include ours (a name appears only once started)."""
    mine = [m for m in members if peer_url in m.peer_urls]
    if len(mine) > 1:  # etcd refuses duplicate peer URLs; this would be a corrupt answer
        raise EtcdError(f"etcd lists {len(mine)} members with peer URL {peer_url}")
    return mine[0] if mine else None


def check_health(gw: Gateway, peer_url: str) -> list[Member]:
    """Every started member other than ours answers and knows a leader (kubeadm's CheckClusterHealth
    before it adds a member): adding one to a cluster that lost a member could cost it its quorum."""
    members = gw.members()
    for m in members:
        if peer_url in m.peer_urls or not m.started:
            continue
        try:
            status = gw.status(m.client_urls[0])
        except SecurityError:
            raise
        except KbootdError as e:
            raise EtcdUnavailable(f"etcd member {m.name!r} ({m.client_urls[0]}) is not healthy: {e}") from None
        if not status.get("leader") or str(status.get("leader")) == "0":
            raise EtcdUnavailable(f"etcd member {m.name!r} ({m.client_urls[0]}) has no leader")
    return members


def find_or_add(gw: Gateway, peer_url: str) -> tuple[Member, list[Member], bool]:
    """(our member, all members, whether this call added it)."""
    members = gw.members()
    me = own(members, peer_url)
    if me is not None:
        return me, members, False
    try:
        me, members = gw.add_learner(peer_url)
    except EtcdError as e:
        if "already exists" in e.detail:
            # Added concurrently, or by our own attempt whose answer was lost: read it back.
            raise EtcdUnavailable(f"etcd: a member with peer URL {peer_url} appeared meanwhile", detail=e.detail) from None
        raise
    if own(members, peer_url) is None:
        members = [*members, me]
    return me, members, True


def initial_cluster(members: list[Member], me: Member, name: str) -> str:
    """--initial-cluster: name=peerURL for every member (each of its peer URLs), ours under our name.

    etcd matches the existing cluster by peer URLs; a member that has not started has no name yet,
    so it is listed under its ID (etcd only needs the names unique). Sorted, so a retry that lists
    the members in another order writes the same manifest.
    """
    out = []
    for m in members:
        label = name if m.id == me.id else (m.name or f"{m.id:x}")
        out += [f"{label}={u}" for u in m.peer_urls]
    return ",".join(sorted(out))


def check_not_stale(ctx: Any, me: Member, data_dir: str) -> None:
    """A started member with our peer URL but no data here ran from another disk: starting a fresh
    data directory for it would crash-loop etcd. Say so instead."""
    if me.started and not ctx.dry_run and not ctx.host.exists(f"{data_dir}/member"):
        raise KbootdError(
            f"etcd member {me.name!r} (ID {me.id:x}) with this node's peer URL has run before, but "
            f"{data_dir} holds no member data",
            hint=f"remove the stale member first (etcdctl member remove {me.id:x}) and run the join again")


def promote(gw: Gateway, peer_url: str) -> Member:
    """Promote our learner; a member that already votes is done (a promote whose answer was lost)."""
    me = own(gw.members(), peer_url)
    if me is None:
        raise EtcdError(f"etcd no longer lists a member with peer URL {peer_url}",
                        hint="it was removed meanwhile; run the join again to add it anew")
    if not me.learner:
        return me
    try:
        gw.promote(me.id)
    except EtcdError as e:
        if "can only promote a learner member" not in e.detail:
            raise
        # Promoted meanwhile: the list says so on the next look.
        raise EtcdUnavailable(f"etcd: member {me.id:x} is being promoted", detail=e.detail) from None
    after = own(gw.members(), peer_url)
    if after is None or after.learner:
        raise EtcdUnavailable(f"etcd: member {me.id:x} is not listed as voting yet")
    return after


def endpoints_from_cluster(client: Any) -> list[str]:
    """Client URLs of the etcd members, from the etcd static Pods' annotation (as kubeadm finds them)."""
    pods = client.retry(lambda: client.list("Pod", "kube-system", label_selector=ETCD_POD_LABEL),
                        "list the etcd Pods")
    urls = []
    for p in pods:
        url = ((p.get("metadata") or {}).get("annotations") or {}).get(CLIENT_URLS_ANNOTATION)
        if url:
            urls.append(url)
    if not urls:
        raise EtcdUnavailable("no etcd Pod in kube-system carries its client URL yet "
                              f"(annotation {CLIENT_URLS_ANNOTATION})")
    return urls


def join(ctx: Any, gw: Gateway, *, retry: Callable[[Callable[[], Any], str], Any],
         start_wait: Callable[[], None] | None = None) -> Member:
    """Add (or find) this node's member, write its manifest, promote it. Returns the voting member.

    `retry(fn, what)` runs each step through kbootd.retry with the caller's deadline and reporting.
    """
    local = ctx.cfg.cluster.etcd_local
    if local is None:
        ctx.reporter.info(PHASE, "External etcd: no member to add")
        raise KbootdError("etcd membership: the cluster uses external etcd")
    peer = etcd_manifest.peer_url(ctx.data.advertise_address)
    name = ctx.data.node_name
    if ctx.dry_run:
        ctx.reporter.info(PHASE, f"[dryrun] Would add etcd member {name!r} ({peer}) as a learner through "
                                 f"{', '.join(gw.endpoints)}, write its static Pod manifest and promote it")
        return Member(0, name, (peer,), (), True)
    ctx.reporter.info(PHASE, "Checking that the etcd cluster is healthy")
    retry(lambda: check_health(gw, peer), "wait for a healthy etcd cluster")
    me, members, added = retry(lambda: find_or_add(gw, peer), f"add etcd member {peer}")
    check_not_stale(ctx, me, local.data_dir)
    if added:
        ctx.reporter.info(PHASE, "Announced new etcd member joining to the existing etcd cluster")
    else:
        state = "a learner" if me.learner else "a voting member"
        ctx.reporter.info(PHASE, f"etcd already lists this node's member (ID {me.id:x}, {state}); not adding another")
    write_manifest(ctx, initial_cluster(members, me, name))
    if start_wait is not None:
        start_wait()
    ctx.reporter.info(PHASE, "Waiting for the new etcd member to join the cluster")
    done = retry(lambda: promote(gw, peer), f"promote etcd learner {peer}")
    ctx.reporter.info(PHASE, f"etcd member {name!r} (ID {done.id:x}) is a voting member")
    return done


def write_manifest(ctx: Any, cluster: str) -> None:
    ctx.host.ensure_dir(ctx.cfg.cluster.etcd_local.data_dir, ETCD_DATA_DIR_MODE)
    ctx.host.ensure_dir(ctx.paths.manifests_dir, MANIFEST_DIR_MODE)
    ctx.reporter.info(PHASE, f'Creating static Pod manifest for "{etcd_manifest.ETCD}"')
    ctx.host.write_file(ctx.paths.manifest(etcd_manifest.ETCD),
                        pod.to_yaml(etcd_manifest.etcd_pod(ctx, initial_cluster=cluster)), MANIFEST_MODE)


def run(ctx: Any, endpoints: list[str], *, deadline: float | None = None,
        start_wait: Callable[[], None] | None = None) -> Member:
    """join() through kbootd.retry (deadline: timeouts.etcdAPICall unless given; inf waits forever),
    talking to `endpoints` with the apiserver-etcd-client certificate."""
    limit = ctx.cfg.timeouts.etcd_api_call if deadline is None else deadline

    def step(fn: Callable[[], Any], what: str) -> Any:
        return retry_loop(fn, what=what, deadline=limit, backoff=ctx.seams.backoff or DEFAULT_BACKOFF,
                          timing=ctx.seams, on_retry=lambda a, c, n: ctx.reporter.retry(PHASE, a, c, n))

    if ctx.dry_run:
        return join(ctx, Gateway(endpoints, None), retry=step)  # type: ignore[arg-type]
    with Gateway(endpoints, load_credentials(ctx, ctx.cfg.cluster.certificates_dir)) as gw:
        return join(ctx, gw, retry=step, start_wait=start_wait)
