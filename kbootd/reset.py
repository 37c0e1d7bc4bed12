"""`kbootd reset`: revert what init or join did on this host (the spec's `kubeadm reset`).

Phases: preflight (confirmation), remove-node (opt-in: delete this Node through the API),
cleanup-node (stop the kubelet, remove Pod sandboxes through the CRI, unmount kubelet
volumes, delete kubeadm's and kbootd's files). What reset cannot clean safely (CNI
configuration, iptables/IPVS rules, $HOME/.kube/config) is printed with the command to do it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from kbootd import apiclient, transport
from kbootd.errors import KbootdError

KUBECONFIG_FILES = ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                    "controller-manager.conf", "scheduler.conf")
# Host paths kubeadm reset removes besides /etc/kubernetes: kubelet state and runtime dirs.
EXTRA_DIRS = ("/var/lib/dockershim", "/var/run/kubernetes")


@dataclass(frozen=True)
class ResetOptions:
    cert_dir: str = "/etc/kubernetes/pki"
    cri_socket: str | None = None
    force: bool = False
    remove_node: bool = False
    kubeconfig: str | None = None
    node_name: str | None = None
    # etcd's gRPC gateway on this control plane (kubeadm talks to the local member).
    etcd_endpoint: str = "https://127.0.0.1:2379"


def _opts(ctx) -> ResetOptions:
    return ctx.reset or ResetOptions()


def preflight(ctx) -> None:
    rep = ctx.reporter
    rep.warn("reset", "Changes made to this host by 'kbootd init' or 'kbootd join' will be reverted.")
    if _opts(ctx).force or ctx.dry_run:
        return
    if not sys.stdin.isatty():
        raise KbootdError("reset: refusing to reset without confirmation; pass --force (-f) to proceed")
    answer = input("[reset] Are you sure you want to proceed? [y/N]: ")
    if answer.strip().lower() not in ("y", "yes"):
        raise KbootdError("reset: aborted by the operator")


def skip_remove_node(ctx) -> str | None:
    return None if _opts(ctx).remove_node else "pass --remove-node to delete this node's Node object"


def remove_node(ctx) -> None:
    """Delete this host's Node object through the API (off by default, as kubeadm)."""

    opts = _opts(ctx)
    name = opts.node_name or ctx.data.node_name
    kubeconfig = opts.kubeconfig or ctx.paths.admin_conf
    if not ctx.host.exists(kubeconfig):
        ctx.reporter.warn("reset", f"cannot remove Node {name}: {kubeconfig} not found")
        return
    client = apiclient.client_for(ctx, kubeconfig)
    if client.delete("nodes", name):
        ctx.reporter.info("reset", f"Deleted Node {name!r}")
    else:
        ctx.reporter.info("reset", f"Node {name!r} was not registered")


def skip_remove_etcd_member(ctx) -> str | None:
    if not _opts(ctx).remove_node:
        return "pass --remove-node to remove this node's etcd member"
    if not ctx.host.exists(ctx.paths.manifest("etcd")):
        return "no local etcd on this node"
    return None


def remove_etcd_member(ctx) -> None:
    """Remove this node's member from the etcd cluster (not the last one: that would lose the data).

    Talks to etcd's v3 JSON gateway with the apiserver-etcd-client certificate, as kubeadm
    reset does through its etcd client.
    """

    opts = _opts(ctx)
    name = opts.node_name or ctx.data.node_name
    if ctx.dry_run:
        ctx.reporter.info("reset", f"[dryrun] Would remove etcd member {name!r} through {opts.etcd_endpoint}")
        return
    with _etcd_session(ctx, opts.cert_dir, opts.etcd_endpoint) as session:
        members = _etcd_call(session, "member/list").get("members", [])
        if not isinstance(members, list):
            raise KbootdError(f"reset: etcd at {opts.etcd_endpoint} answered member/list without a member list")
        mine = [m for m in members if isinstance(m, dict) and m.get("name") == name]
        if not mine:
            ctx.reporter.info("reset", f"etcd has no member named {name!r}; nothing to remove")
            return
        if len(members) == 1:
            ctx.reporter.warn("reset", f"{name!r} is the only etcd member; it is not removed (that would "
                                       "destroy the cluster's data with it)")
            return
        _etcd_call(session, "member/remove", {"ID": mine[0].get("ID")})
    ctx.reporter.info("reset", f"Removed etcd member {name!r} (ID {mine[0].get('ID')})")


ETCD_TIMEOUT = 10.0


def _etcd_session(ctx, cert_dir: str, endpoint: str):
    """A kbootd.transport session to etcd's gateway with the apiserver-etcd-client certificate."""

    pem = {}
    for name, src in (("ca", f"{cert_dir}/etcd/ca.crt"), ("crt", f"{cert_dir}/apiserver-etcd-client.crt"),
                      ("key", f"{cert_dir}/apiserver-etcd-client.key")):
        data = ctx.host.read_bytes(src)
        if data is None:
            raise KbootdError(f"reset: cannot reach etcd: {src} is missing")
        pem[name] = data
    # The key stays in memory: the transport hands it to OpenSSL through a sealed memfd.
    return transport.Session(endpoint, transport.TLS(ca_pem=pem["ca"], cert_pem=pem["crt"], key_pem=pem["key"]),
                             timeout=ETCD_TIMEOUT, max_body=1 << 20)


def _etcd_call(session, call: str, body: dict | None = None) -> dict:
    try:
        r = session.request("POST", f"/v3/cluster/{call}", json.dumps(body or {}).encode(),
                            {"Content-Type": "application/json"})
    except KbootdError as e:  # transient (refused, timed out) or security (TLS): neither is worth a retry here
        raise KbootdError(f"reset: etcd at {session.origin} did not answer {call}: {e}") from None
    if r.status != 200:
        raise KbootdError(f"reset: etcd {call} failed: HTTP {r.status}: {r.text()[:200]}")
    try:
        doc = json.loads(r.body)
    except (ValueError, RecursionError):
        raise KbootdError(f"reset: etcd {call}: the answer is not JSON") from None
    return doc if isinstance(doc, dict) else {}


def _cri_socket(ctx) -> str | None:
    try:
        return ctx.data.cri_socket
    except KbootdError as e:
        ctx.reporter.warn("reset", f"cannot find the container runtime: {e}")
        return None


def _kubelet_mounts(ctx) -> list[str]:
    text = ctx.host.read_text("/proc/mounts") or ""
    base = ctx.paths.kubelet_dir.rstrip("/") + "/"
    mounts = [f[1] for f in (line.split() for line in text.splitlines()) if len(f) > 1 and f[1].startswith(base)]
    return sorted(mounts, key=len, reverse=True)  # children before parents


def cleanup_node(ctx) -> None:
    rep, host, paths = ctx.reporter, ctx.host, ctx.paths
    opts = _opts(ctx)
    # A kbootd daemon mid-run would write its state back; a supervising one exits by itself.
    host.systemctl("stop", "kbootd", check=False)
    rep.info("reset", "Stopping the kubelet service")
    host.systemctl("stop", "kubelet", check=False)
    for m in _kubelet_mounts(ctx):
        host.run(["umount", m], check=False)
    sock = _cri_socket(ctx)
    if sock:
        rep.info("reset", f"Removing all Pod sandboxes through {sock}")
        res = host.run(["crictl", "--runtime-endpoint", sock, "pods", "--quiet"], check=False)
        for pod in (res.stdout.split() if res.ran and res.returncode == 0 else []):
            host.run(["crictl", "--runtime-endpoint", sock, "stopp", pod], check=False)
            host.run(["crictl", "--runtime-endpoint", sock, "rmp", pod], check=False)
    # As kubeadm: empty these directories but keep them (packages may own them).
    dirs = [paths.manifests_dir, paths.kubelet_dir, opts.cert_dir]
    if host.exists(paths.manifest("etcd")):
        dirs.insert(0, paths.etcd_data_dir)
    cleared = [d for d in dirs if _clear_dir(host, d)]
    rep.info("reset", "Deleted contents of directories: [" + " ".join(cleared) + "]")
    files = [paths.kubeconfig(f) for f in KUBECONFIG_FILES] + list(EXTRA_DIRS)
    # kbootd's own drop-ins and state, so init or join can run again.
    files += [paths.kubelet_dropin, paths.containerd_dropin, paths.crio_dropin, paths.crictl_yaml,
              paths.state_dir, paths.status_file]
    deleted = [f for f in files if host.remove(f)]
    rep.info("reset", "Deleted files: [" + " ".join(deleted) + "]")
    host.systemctl("daemon-reload", check=False)
    rep.out(
        "\nThe reset process does not clean CNI configuration. To do so, you must remove "
        f"{paths.cni_conf_dir}\n"
        "\nThe reset process does not reset or clean up iptables rules or IPVS tables.\n"
        "If you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n"
        "  iptables -F && iptables -t nat -F && iptables -t mangle -F && iptables -X\n"
        "\nIf your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\n"
        "to reset your system's IPVS tables.\n"
        "\nThe reset process does not clean your kubeconfig files and you must remove them manually.\n"
        "Please, check the contents of the $HOME/.kube/config file.")


def _clear_dir(host, path: str) -> bool:
    names = host.listdir(path)
    for n in names:
        host.remove(f"{path.rstrip('/')}/{n}")
    return bool(names)
