"""The order of init and join: one declaration each. Implementations are imported when run."""

from __future__ import annotations

from kbootd.workflow import Phase

_M = "kbootd.manifests.phase"
_P = "kbootd.pki.phase"
_K = "kbootd.kubeconfig"
_ETCD = f"{_P}:local_etcd_only"


def _cert(name: str, summary: str, etcd: bool = False) -> Phase:
    return Phase(name, summary, run=f"{_P}:{name.replace('-', '_')}", run_if=_ETCD if etcd else None)


def _kubeconfig(name: str, summary: str) -> Phase:
    return Phase(name, summary, run=f"{_K}:{name.replace('-', '_')}")

# cri runs first: it loads br_netfilter and sets ip_forward, which preflight then checks,
# so a fresh machine needs no manual preparation (k3s does the same).
INIT: tuple[Phase, ...] = (
    Phase("cri", "Configure the container runtime (crictl, containerd/CRI-O, kernel modules, sysctls)",
          run="kbootd.cri:configure"),
    Phase("preflight", "Run pre-flight checks", run="kbootd.preflight:run_init"),
    Phase("certs", "Certificate generation", run=f"{_P}:certs", children=(
        _cert("ca", "Generate the self-signed Kubernetes CA to provision identities for other components"),
        _cert("apiserver", "Generate the certificate for serving the Kubernetes API"),
        _cert("apiserver-kubelet-client", "Generate the certificate for the API server to connect to kubelet"),
        _cert("front-proxy-ca", "Generate the self-signed CA to provision identities for front proxy"),
        _cert("front-proxy-client", "Generate the certificate for the front proxy client"),
        _cert("etcd-ca", "Generate the self-signed CA to provision identities for etcd", etcd=True),
        _cert("etcd-server", "Generate the certificate for serving etcd", etcd=True),
        _cert("etcd-peer", "Generate the certificate for etcd nodes to communicate with each other", etcd=True),
        _cert("etcd-healthcheck-client", "Generate the certificate for liveness probes to healthcheck etcd",
              etcd=True),
        _cert("apiserver-etcd-client", "Generate the certificate the apiserver uses to access etcd", etcd=True),
        _cert("sa", "Generate a private key for signing service account tokens along with its public key"),
    )),
    Phase("kubeconfig", "Generate all kubeconfig files", run=f"{_K}:kubeconfig", children=(
        _kubeconfig("admin", "Generate a kubeconfig file for the admin to use and for kubeadm itself"),
        _kubeconfig("super-admin", "Generate a kubeconfig file for the super-admin"),
        _kubeconfig("kubelet", "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping"),
        _kubeconfig("controller-manager", "Generate a kubeconfig file for the controller manager to use"),
        _kubeconfig("scheduler", "Generate a kubeconfig file for the scheduler to use"),
    )),
    Phase("etcd", "Generate the static Pod manifest for the local etcd", run_if=f"{_M}:skip_if_external_etcd",
          children=(Phase("local", "Generate the static Pod manifest for a local, single-node etcd",
                          run=f"{_M}:etcd_local"),)),
    Phase("control-plane", "Generate the static Pod manifests for the control plane", run=f"{_M}:control_plane",
          children=(
              Phase("apiserver", "Generate the kube-apiserver static Pod manifest", run=f"{_M}:apiserver"),
              Phase("controller-manager", "Generate the kube-controller-manager static Pod manifest",
                    run=f"{_M}:controller_manager"),
              Phase("scheduler", "Generate the kube-scheduler static Pod manifest", run=f"{_M}:scheduler"),
          )),
    Phase("kubelet-start", "Write the kubelet settings and (re)start the kubelet", run="kbootd.kubelet:start"),
    # The cluster half: everything below talks to the API server.
    Phase("wait-control-plane", "Wait for the kubelet to boot the control plane and the API server to answer",
          run="kbootd.cluster.waitcp:wait_control_plane"),
    Phase("upload-config", "Upload the kubeadm and kubelet configurations to ConfigMaps", children=(
        Phase("kubeadm", "Upload the kubeadm ClusterConfiguration to the kubeadm-config ConfigMap",
              run="kbootd.cluster.uploadconfig:upload_kubeadm"),
        Phase("kubelet", "Upload the kubelet configuration to the kubelet-config ConfigMap",
              run="kbootd.cluster.uploadconfig:upload_kubelet"),
    )),
    Phase("mark-control-plane", "Label and taint the node as a control plane",
          run="kbootd.cluster.markcp:mark_control_plane"),
    Phase("bootstrap-token", "Create bootstrap tokens, the cluster-info ConfigMap and the RBAC for joining nodes",
          run="kbootd.cluster.bootstraptoken:bootstrap_token"),
    Phase("addon", "Install the required add-ons", children=(
        Phase("coredns", "Install the CoreDNS add-on", run="kbootd.cluster.addons:coredns",
              run_if="kbootd.cluster.addons:dns_skip_reason"),
        Phase("kube-proxy", "Install the kube-proxy add-on", run="kbootd.cluster.addons:kube_proxy",
              run_if="kbootd.cluster.addons:proxy_skip_reason"),
    )),
)

# The init phases that touch only this machine (no API server needed).
INIT_LOCAL = tuple(p.name for p in INIT[: [p.name for p in INIT].index("wait-control-plane")])

_J = "kbootd.join.phases"

JOIN: tuple[Phase, ...] = (
    # As in init, cri runs first: it loads br_netfilter and sets ip_forward, which preflight
    # checks, so a fresh worker needs no manual preparation. kubelet-start re-applies it with
    # the cluster's pause image and cgroup driver (no change, no runtime restart).
    Phase("cri", "Configure the container runtime (crictl, containerd/CRI-O, kernel modules, sysctls)",
          run="kbootd.cri:configure"),
    Phase("preflight", "Run join pre-flight checks", run="kbootd.preflight:run_join"),
    Phase("discovery", "Discover the cluster and trust its CA (bootstrap token and CA pin, or a discovery file)",
          run=f"{_J}:discovery_phase"),
    Phase("kubelet-start", "Write the bootstrap kubeconfig and the cluster's kubelet settings, (re)start the kubelet",
          run=f"{_J}:kubelet_start"),
    Phase("wait-tls-bootstrap", "Wait for the kubelet's TLS bootstrap and Node, then record its CRI socket",
          run=f"{_J}:wait_tls_bootstrap"),
)

RESET: tuple[Phase, ...] = (
    Phase("preflight", "Run reset pre-flight checks", run="kbootd.reset:preflight"),
    Phase("remove-etcd-member", "Remove this node's local etcd member from the cluster (with --remove-node)",
          run="kbootd.reset:remove_etcd_member", run_if="kbootd.reset:skip_remove_etcd_member"),
    Phase("remove-node", "Delete this node's Node object (with --remove-node)", run="kbootd.reset:remove_node",
          run_if="kbootd.reset:skip_remove_node"),
    Phase("cleanup-node", "Stop the kubelet, remove Pods and delete kubeadm's and kbootd's files",
          run="kbootd.reset:cleanup_node"),
)

WORKFLOWS = {"init": INIT, "join": JOIN, "reset": RESET}
