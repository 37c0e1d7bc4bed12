"""The order of init, join and reset: one declaration each.

The certs and kubeconfig sub-phases are made from their tables (pki/certlist.py and
kubeconfig.py), as kubeadm builds its cert sub-phases from its cert list, so each
certificate and kubeconfig file is declared once.
"""

from __future__ import annotations

from functools import partial

from kbootd import cri, kubeconfig, kubelet, preflight, reset
from kbootd.cluster import addons, bootstraptoken, markcp, uploadconfig, waitcp
from kbootd.join import phases as join
from kbootd.manifests import phase as manifests
from kbootd.pki import certlist
from kbootd.pki import phase as pki
from kbootd.workflow import Phase

CRI_SUMMARY = "Configure the container runtime (crictl, containerd/CRI-O, kernel modules, sysctls)"


def _cert_phases() -> tuple[Phase, ...]:
    certs = tuple(Phase(s.name, s.summary, run=partial(pki.ensure_cert, spec=s),
                        skip_if=pki.local_etcd_only if s.local_etcd_only else None)
                  for s in certlist.CERTS)
    return (*certs, Phase(certlist.SA_NAME, certlist.SA_SUMMARY, run=pki.ensure_sa))


def _kubeconfig_phases() -> tuple[Phase, ...]:
    return tuple(Phase(k.name, k.summary, run=partial(kubeconfig.ensure, spec=k)) for k in kubeconfig.KUBECONFIGS)


# cri runs first: it loads br_netfilter and sets ip_forward, which preflight then checks,
# so a fresh machine needs no manual preparation (k3s does the same).
INIT: tuple[Phase, ...] = (
    Phase("cri", CRI_SUMMARY, run=cri.configure),
    Phase("preflight", "Run pre-flight checks", run=preflight.run_init),
    Phase("certs", "Certificate generation", run=pki.certs, children=_cert_phases()),
    Phase("kubeconfig", "Generate all kubeconfig files", run=kubeconfig.kubeconfig, children=_kubeconfig_phases()),
    Phase("etcd", "Generate the static Pod manifest for the local etcd", skip_if=manifests.skip_if_external_etcd,
          children=(Phase("local", "Generate the static Pod manifest for a local, single-node etcd",
                          run=manifests.etcd_local),)),
    Phase("control-plane", "Generate the static Pod manifests for the control plane", run=manifests.control_plane,
          children=(
              Phase("apiserver", "Generate the kube-apiserver static Pod manifest", run=manifests.apiserver),
              Phase("controller-manager", "Generate the kube-controller-manager static Pod manifest",
                    run=manifests.controller_manager),
              Phase("scheduler", "Generate the kube-scheduler static Pod manifest", run=manifests.scheduler),
          )),
    Phase("kubelet-start", "Write the kubelet settings and (re)start the kubelet", run=kubelet.start),
    # The cluster half: everything below talks to the API server.
    Phase("wait-control-plane", "Wait for the kubelet to boot the control plane and the API server to answer",
          run=waitcp.wait_control_plane),
    Phase("upload-config", "Upload the kubeadm and kubelet configurations to ConfigMaps", children=(
        Phase("kubeadm", "Upload the kubeadm ClusterConfiguration to the kubeadm-config ConfigMap",
              run=uploadconfig.upload_kubeadm),
        Phase("kubelet", "Upload the kubelet configuration to the kubelet-config ConfigMap",
              run=uploadconfig.upload_kubelet),
    )),
    Phase("mark-control-plane", "Label and taint the node as a control plane", run=markcp.mark_control_plane),
    Phase("bootstrap-token", "Create bootstrap tokens, the cluster-info ConfigMap and the RBAC for joining nodes",
          run=bootstraptoken.bootstrap_token),
    Phase("addon", "Install the required add-ons", children=(
        Phase("coredns", "Install the CoreDNS add-on", run=addons.coredns, skip_if=addons.dns_skip_reason),
        Phase("kube-proxy", "Install the kube-proxy add-on", run=addons.kube_proxy, skip_if=addons.proxy_skip_reason),
    )),
)

# The init phases that touch only this machine (no API server needed).
INIT_LOCAL = tuple(p.name for p in INIT[: [p.name for p in INIT].index("wait-control-plane")])

JOIN: tuple[Phase, ...] = (
    # Trust first: discovery only reads (cluster-info over the network, or the discovery
    # file), so a wrong pin or token stops join before anything on the host changed, as
    # kubeadm join never touches the runtime. Then cri (loads br_netfilter, sets ip_forward),
    # then preflight, which checks those among the rest, so a fresh worker needs no manual
    # preparation and preflight never reports what cri is about to fix. kubelet-start
    # re-applies cri with the cluster's pause image and cgroup driver (no change, no restart).
    Phase("discovery", "Discover the cluster and trust its CA (bootstrap token and CA pin, or a discovery file)",
          run=join.discovery_phase),
    Phase("cri", CRI_SUMMARY, run=cri.configure),
    Phase("preflight", "Run join pre-flight checks", run=preflight.run_join),
    Phase("kubelet-start", "Write the bootstrap kubeconfig and the cluster's kubelet settings, (re)start the kubelet",
          run=join.kubelet_start),
    Phase("wait-tls-bootstrap", "Wait for the kubelet's TLS bootstrap and Node, then record its CRI socket",
          run=join.wait_tls_bootstrap),
)

RESET: tuple[Phase, ...] = (
    Phase("preflight", "Run reset pre-flight checks", run=reset.preflight),
    Phase("remove-etcd-member", "Remove this node's local etcd member from the cluster (with --remove-node)",
          run=reset.remove_etcd_member, skip_if=reset.skip_remove_etcd_member),
    Phase("remove-node", "Delete this node's Node object (with --remove-node)", run=reset.remove_node,
          skip_if=reset.skip_remove_node),
    Phase("cleanup-node", "Stop the kubelet, remove Pods and delete kubeadm's and kbootd's files",
          run=reset.cleanup_node),
)

WORKFLOWS = {"init": INIT, "join": JOIN, "reset": RESET}
