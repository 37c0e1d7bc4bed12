"""The join phase functions (declared in kbootd.join.PHASES); each is fn(ctx) -> None.

discovery            trust the control plane (discovery.py): ctx.data.cluster
kubelet-start        bootstrap-kubelet.conf, ca.crt, the cluster's kubelet and kubeadm configs,
                     the runtime and the kubelet's files, then (re)start the kubelet
wait-tls-bootstrap   wait for the kubelet's certificate and Node, annotate its CRI socket,
                     remove the bootstrap credential, print kubeadm's summary
"""

from __future__ import annotations

from typing import Any

from kbootd import cri, kubelet
from kbootd.config import v1beta4
from kbootd.config.model import ClusterConfig
from kbootd.config.yamlsrc import Fields, load_documents, load_one
from kbootd.errors import KbootdError, ValidationError
from kbootd.images import images_for
from kbootd.join import clients, discovery, tlsbootstrap
from kbootd.join.discovery import DiscoveredCluster
from kbootd.pki import certs as c
from kbootd.retry import Backoff, retry

KUBELET_PHASE = "kubelet-start"
NAMESPACE = "kube-system"
CA_CERT_MODE = 0o644
BOOTSTRAP_CONF_MODE = 0o600
JOINED = """
This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The Kubelet was informed of the new secure connection details.

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.
"""


def _cluster(ctx: Any) -> DiscoveredCluster:
    """The discovered cluster; discovered again when this process did not run discovery.

    That happens with `kbootd join phase kubelet-start` and when the daemon resumes an
    interrupted join (done phases are skipped). Discovery only reads.
    """
    if ctx.data.known("cluster") is None:
        ctx.reporter.info(discovery.PHASE, "No discovered cluster in this run: discovering it again")
    return ctx.data.cluster


# --- discovery ---------------------------------------------------------------------------------------

def discovery_phase(ctx: Any) -> None:
    ctx.data.cluster  # noqa: B018 - derived (discovered) on first use


def discover(ctx: Any) -> DiscoveredCluster:
    """Discovery and its report; what ctx.data.cluster is derived from."""
    found = discovery.discover(ctx)
    how = {"token": "signature and contents are valid"
                    + (" and TLS certificate validates against pinned roots" if ctx.join.ca_cert_hashes else ""),
           "file": "was read from the discovery file and the API server's TLS certificate validates against it",
           "https": "was downloaded over HTTPS and the API server's TLS certificate validates against it"}[found.via]
    ctx.reporter.info(discovery.PHASE, f'Cluster info {how}, will use API Server "{found.server}"')
    return found


# --- kubelet-start -----------------------------------------------------------------------------------

def _is_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _is_this_node(ctx: Any, cluster: DiscoveredCluster, name: str) -> bool:
    """A re-run of join on the node that already joined: kubelet.conf holds this node's cluster identity."""

    try:
        kc = tlsbootstrap.kubelet_kubeconfig(ctx)
        cert = c.load_cert_pem(kc.cert_pem, ctx.paths.kubelet_conf)
        cas = c.load_cert_chain_pem(cluster.ca_pem, "cluster CA")
    except KbootdError:
        return False
    return c.common_name(cert) == f"system:node:{name}" and any(c.signed_by(cert, ca) for ca in cas)


def check_node_name(ctx: Any, client: Any, cluster: DiscoveredCluster, name: str) -> None:
    """kubeadm refuses to join over a Ready Node of the same name (bootstrap tokens may get nodes, fixture 26)."""
    ctx.reporter.info(KUBELET_PHASE, f'Checking for an existing Node in the cluster with name "{name}" and '
                                     'status "Ready"')
    node = client.retry(lambda: client.get("Node", name), f'get node "{name}"')
    if node is None or not _is_ready(node):
        return
    if _is_this_node(ctx, cluster, name):
        ctx.reporter.info(KUBELET_PHASE, f'Node "{name}" is Ready and this host holds its credentials '
                                         f"({ctx.paths.kubelet_conf}): continuing a join that already happened")
        return
    raise KbootdError(f'a Node with name "{name}" and status "Ready" already exists in the cluster. You must '
                      "delete the existing Node or change the name of this new joining Node",
                      hint=f"kubectl delete node {name} on the control plane, or join with --node-name")


def _configmap_key(ctx: Any, client: Any, name: str, key: str) -> str:
    cm = client.retry(lambda: client.get("ConfigMap", name, NAMESPACE), f'get ConfigMap "{NAMESPACE}/{name}"')
    value = (cm or {}).get("data", {}).get(key) if cm else None
    if not value:
        raise KbootdError(f'the "{name}" ConfigMap in {NAMESPACE} ' + ("has no " + key if cm else "does not exist"),
                          hint="the control plane must have run `kbootd init` (or kubeadm init) through its "
                               "upload-config phase")
    return str(value)


def cluster_configuration(text: str, warn: Any) -> Any:
    """The cluster's ClusterConfiguration (kubeadm-config), for its version and image repository."""
    where = f"{NAMESPACE}/kubeadm-config"
    try:
        docs = load_documents(text, where)
        return v1beta4.cluster(Fields.root(docs[0], "ClusterConfiguration"), warn)
    except (ValidationError, IndexError) as e:
        # A newer kubeadm may upload fields kbootd does not know: keep what join needs.
        try:  # through the one YAML reader: its limits hold on the fallback path too
            doc = load_one(text, where) if text else None
        except ValidationError:
            doc = None
        if not isinstance(doc, dict) or not doc.get("kubernetesVersion"):
            raise KbootdError(f"{where}: cannot read the ClusterConfiguration: {e}") from None
        warn(f"{where}: {e}; using only its kubernetesVersion and imageRepository")
        return ClusterConfig(kubernetes_version=str(doc["kubernetesVersion"]),
                             image_repository=str(doc.get("imageRepository") or ClusterConfig().image_repository))


def _write_ca_cert(ctx: Any, cluster: DiscoveredCluster) -> None:
    """The kubelet's clientCAFile (kubeadm writes ca.crt when absent)."""
    path = ctx.join.ca_cert_path
    have = ctx.host.read_bytes(path)
    if have is None:
        ctx.reporter.info(KUBELET_PHASE, f'Writing the cluster CA certificate to "{path}"')
        ctx.host.ensure_dir(path.rsplit("/", 1)[0] or "/", 0o755)
        ctx.host.write_file(path, cluster.ca_pem, CA_CERT_MODE)
    elif have.strip() != cluster.ca_pem.strip():
        ctx.reporter.warn(KUBELET_PHASE, f"{path} exists and is not the discovered cluster CA; leaving it as is "
                                         "(the kubelet uses it to verify clients)")


def kubelet_start(ctx: Any) -> None:
    cluster = _cluster(ctx)
    creds = clients.bootstrap_credentials(ctx, cluster)
    name = ctx.data.node_name
    say = lambda m: ctx.reporter.info(KUBELET_PHASE, m)  # noqa: E731
    warn = lambda m: ctx.reporter.warn(KUBELET_PHASE, m)  # noqa: E731
    path = ctx.paths.bootstrap_kubelet_conf
    say(f'Writing the bootstrap kubelet config file at "{path}"')
    ctx.host.ensure_dir(ctx.paths.kubernetes_dir, 0o755)
    ctx.host.write_file(path, clients.bootstrap_kubeconfig(cluster, creds), BOOTSTRAP_CONF_MODE, sensitive=True)
    try:
        _write_ca_cert(ctx, cluster)
        # Reads only, with the bootstrap credentials (also in dry-run: nothing changes on the cluster).
        client = clients.client(cluster.server, cluster.ca_pem, creds,
                                timeout=ctx.join.timeouts.kubernetes_api_call)
        try:
            check_node_name(ctx, client, cluster, name)
            say(f'Reading configuration from the "kubeadm-config" ConfigMap in namespace "{NAMESPACE}"...')
            cluster_cfg = cluster_configuration(_configmap_key(ctx, client, "kubeadm-config",
                                                               "ClusterConfiguration"), warn)
            kubelet_text = _configmap_key(ctx, client, "kubelet-config", "kubelet")
        finally:
            client.close()
        ctx.data.cluster_configuration = cluster_cfg
        doc = kubelet.parse_kubelet_configuration(kubelet_text, f"{NAMESPACE}/kubelet-config")
        if doc.get("cgroupDriver"):
            ctx.data.cluster_cgroup_driver = doc["cgroupDriver"]
        ctx.data.cluster_pause_image = _pause_image(cluster_cfg, warn)
        cri.configure(ctx)
        kubelet.setup_node(ctx, kubelet_config=kubelet_text, source=f"{NAMESPACE}/kubelet-config",
                           pause_image=kubelet.pod_infra_image(cluster_cfg, warn))
    except BaseException:
        # As kubeadm: the bootstrap credential does not outlive a failed kubelet-start on disk.
        ctx.host.remove(path)
        raise


def _pause_image(cluster_cfg: Any, warn: Any) -> str:
    return images_for(cluster_cfg, warn).pause


# --- wait-tls-bootstrap ------------------------------------------------------------------------------

def wait_tls_bootstrap(ctx: Any) -> None:
    phase = tlsbootstrap.PHASE
    cluster = _cluster(ctx)
    name = ctx.data.node_name
    socket = ctx.data.cri_socket
    if ctx.dry_run:
        ctx.reporter.out("[dryrun] Would wait for the kubelet to perform the TLS Bootstrap and register node "
                         f'"{name}"')
        ctx.reporter.out(f'[dryrun] Would annotate node "{name}" with kubeadm.alpha.kubernetes.io/cri-socket='
                         f"{socket} (with the kubelet's credentials)")
        ctx.reporter.out(f'[dryrun] Would remove "{ctx.paths.bootstrap_kubelet_conf}"')
        return
    creds = clients.bootstrap_credentials(ctx, cluster)
    timeouts = ctx.join.timeouts
    requestor = f"system:bootstrap:{creds.token_id}" if creds.token_id else None
    watch = tlsbootstrap.CsrWatch(
        lambda: clients.client(cluster.server, cluster.ca_pem, creds, timeout=timeouts.kubernetes_api_call),
        name, requestor, lambda m: ctx.reporter.warn(phase, m))
    clock = ctx.seams.clock
    next_look = [clock() + tlsbootstrap.CSR_FIRST_CHECK]

    def on_retry(attempt: int, cause: str, next_in: float) -> None:
        if clock() >= next_look[0]:
            next_look[0] = clock() + tlsbootstrap.CSR_CHECK_EVERY
            watch.check()
        ctx.reporter.retry(phase, attempt, f"{cause}{'; ' + watch.state if watch.state else ''}", next_in)

    ctx.reporter.info(phase, "Waiting for the kubelet to perform the TLS Bootstrap")
    try:
        client = retry(lambda: tlsbootstrap.kubelet_client(ctx, timeouts.kubernetes_api_call),
                       what="waiting for the kubelet's TLS bootstrap", deadline=timeouts.tls_bootstrap,
                       backoff=Backoff(first=0.2, cap=2.0), on_retry=on_retry, timing=ctx.seams)
    except KbootdError as e:
        if not e.hint:
            e.hint = ("the kubelet may not be running or may be unhealthy: see `systemctl status kubelet` and "
                      "`journalctl -xeu kubelet`; unapproved requests show in `kubectl get csr`")
        raise
    finally:
        # As kubeadm: the bootstrap token leaves the disk once the wait is over, either way.
        ctx.host.remove(ctx.paths.bootstrap_kubelet_conf)
    try:
        cluster_cfg = ctx.data.cluster_configuration
        if cluster_cfg is not None and cluster_cfg.gate("NodeLocalCRISocket"):
            ctx.reporter.info(phase, "NodeLocalCRISocket is on: the CRI socket lives in kubeadm-flags.env, "
                                     "not in a Node annotation")
        else:
            ctx.reporter.info(phase, f'Annotating node "{name}" with its CRI socket "{socket}"')
            tlsbootstrap.annotate_cri_socket(client, name, socket, timeouts.kubernetes_api_call)
    finally:
        client.close()
    if ctx.join.control_plane is None:  # a control plane says more once it serves (wait-control-plane)
        ctx.reporter.out(JOINED)
