"""addon/coredns and addon/kube-proxy: the objects kubeadm v1.32 creates, field for field.

Templates follow kubeadm's (cmd/kubeadm/app/phases/addons); they are compared with a
real kubeadm's dry-run output in tests/test_cluster_objects.py.
"""

from __future__ import annotations

import copy
from typing import Any

from kbootd import apiclient, kyaml
from kbootd.apiclient import APIError
from kbootd.cluster import admin_client, write_all
from kbootd.cluster.bootstraptoken import cluster_role, cluster_role_binding
from kbootd.cluster.uploadconfig import (
    BOOTSTRAP_GROUP,
    config_map,
    get_one_configmap_role,
    group,
    role_binding,
)
from kbootd.config.validate import service_ip
from kbootd.errors import KbootdError
from kbootd.images import images_for
from kbootd.node import control_plane_url

NAMESPACE = "kube-system"
CONTROL_PLANE_TAINT_KEY = "node-role.kubernetes.io/control-plane"


def _sa(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NAMESPACE}}


def _sa_subject(name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}


# --- CoreDNS -----------------------------------------------------------------------------------

COREFILE = """.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success {domain}
       disable denial {domain}
    }}
    loop
    reload
    loadbalance
}}
"""


def coredns_deployment(image: str) -> dict[str, Any]:
    labels = {"k8s-app": "kube-dns"}
    container = {
        "args": ["-conf", "/etc/coredns/Corefile"],
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": {"failureThreshold": 5, "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                          "initialDelaySeconds": 60, "successThreshold": 1, "timeoutSeconds": 5},
        "name": "coredns",
        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"mountPath": "/etc/coredns", "name": "config-volume", "readOnly": True}],
    }
    anti_affinity = {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "podAffinityTerm": {"labelSelector": {"matchExpressions": [
            {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
            "topologyKey": "kubernetes.io/hostname"},
        "weight": 100}]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"labels": dict(labels), "name": "coredns", "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "affinity": {"podAntiAffinity": anti_affinity},
                    "containers": [container],
                    "dnsPolicy": "Default",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"effect": "NoSchedule", "key": CONTROL_PLANE_TAINT_KEY}],
                    "volumes": [{"configMap": {"items": [{"key": "Corefile", "path": "Corefile"}],
                                               "name": "coredns"}, "name": "config-volume"}],
                },
            },
        },
    }


def kube_dns_service(cluster_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                       "kubernetes.io/name": "CoreDNS"},
            "name": "kube-dns", "namespace": NAMESPACE,
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                      {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
            "selector": {"k8s-app": "kube-dns"},
        },
    }


def coredns_objects(cfg: Any) -> list[dict[str, Any]]:
    c = cfg.cluster
    domain = c.networking.dns_domain
    return [
        config_map("coredns", NAMESPACE, {"Corefile": COREFILE.format(domain=domain)}),
        cluster_role("system:coredns", [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ]),
        cluster_role_binding("system:coredns", "system:coredns", [_sa_subject("coredns")]),
        _sa("coredns"),
        coredns_deployment(images_for(c).coredns),
        kube_dns_service(service_ip(c.networking.service_subnet, 10)),
    ]


# --- kube-proxy ----------------------------------------------------------------------------------

KUBE_PROXY_KUBECONFIG_PATH = "/var/lib/kube-proxy/kubeconfig.conf"

# KubeProxyConfiguration as kubeadm serializes it: every field, zero unless kubeadm sets it.
_KUBE_PROXY_BASE: dict[str, Any] = {
    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
    "bindAddress": "0.0.0.0",
    "bindAddressHardFail": False,
    "clientConnection": {"acceptContentTypes": "", "burst": 0, "contentType": "",
                         "kubeconfig": KUBE_PROXY_KUBECONFIG_PATH, "qps": 0},
    "clusterCIDR": "",
    "configSyncPeriod": "0s",
    "conntrack": {"maxPerCore": None, "min": None, "tcpBeLiberal": False, "tcpCloseWaitTimeout": None,
                  "tcpEstablishedTimeout": None, "udpStreamTimeout": "0s", "udpTimeout": "0s"},
    "detectLocal": {"bridgeInterface": "", "interfaceNamePrefix": ""},
    "detectLocalMode": "",
    "enableProfiling": False,
    "healthzBindAddress": "",
    "hostnameOverride": "",
    "iptables": {"localhostNodePorts": None, "masqueradeAll": False, "masqueradeBit": None,
                 "minSyncPeriod": "0s", "syncPeriod": "0s"},
    "ipvs": {"excludeCIDRs": None, "minSyncPeriod": "0s", "scheduler": "", "strictARP": False,
             "syncPeriod": "0s", "tcpFinTimeout": "0s", "tcpTimeout": "0s", "udpTimeout": "0s"},
    "kind": "KubeProxyConfiguration",
    "logging": {"flushFrequency": 0, "options": {"json": {"infoBufferSize": "0"}, "text": {"infoBufferSize": "0"}},
                "verbosity": 0},
    "metricsBindAddress": "",
    "mode": "",
    "nftables": {"masqueradeAll": False, "masqueradeBit": None, "minSyncPeriod": "0s", "syncPeriod": "0s"},
    "nodePortAddresses": None,
    "oomScoreAdj": None,
    "portRange": "",
    "showHiddenMetricsForVersion": "",
    "winkernel": {"enableDSR": False, "forwardHealthCheckVip": False, "networkName": "",
                  "rootHnsEndpointName": "", "sourceVip": ""},
}

KUBE_PROXY_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token"""


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def kube_proxy_config(pod_subnet: str | None, bind_address: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """kubeadm's defaults (bind address, kubeconfig, clusterCIDR) under the user's document."""
    doc = copy.deepcopy(_KUBE_PROXY_BASE)
    doc["bindAddress"] = bind_address
    doc["clusterCIDR"] = pod_subnet or ""
    user = {k: v for k, v in (overrides or {}).items() if k not in ("apiVersion", "kind")}
    return _deep_merge(doc, user)


def kube_proxy_daemonset(image: str) -> dict[str, Any]:
    labels = {"k8s-app": "kube-proxy"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"labels": dict(labels), "name": "kube-proxy", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [{
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                    "--hostname-override=$(NODE_NAME)"],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "name": "kube-proxy",
                        "resources": {},
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                                         {"mountPath": "/run/xtables.lock", "name": "xtables-lock"},
                                         {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True}],
                    }],
                    "hostNetwork": True,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": [{"configMap": {"name": "kube-proxy"}, "name": "kube-proxy"},
                                {"hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
                                 "name": "xtables-lock"},
                                {"hostPath": {"path": "/lib/modules"}, "name": "lib-modules"}],
                },
            },
            "updateStrategy": {"type": "RollingUpdate"},
        },
    }


def kube_proxy_objects(cfg: Any, server: str, bind_address: str = "0.0.0.0") -> list[dict[str, Any]]:
    conf = kube_proxy_config(cfg.cluster.networking.pod_subnet, bind_address, cfg.kube_proxy_overrides)
    data = {"config.conf": kyaml.dump(conf).rstrip("\n"),
            "kubeconfig.conf": KUBE_PROXY_KUBECONFIG.format(server=server)}
    return [
        config_map("kube-proxy", NAMESPACE, data, signed=True, labels={"app": "kube-proxy"}),
        kube_proxy_daemonset(images_for(cfg.cluster).kube_proxy),
        _sa("kube-proxy"),
        cluster_role_binding("kubeadm:node-proxier", "system:node-proxier", [_sa_subject("kube-proxy")]),
        get_one_configmap_role("kube-proxy", NAMESPACE, "kube-proxy"),
        role_binding("kube-proxy", NAMESPACE, "kube-proxy", [group(BOOTSTRAP_GROUP)]),
    ]


def _bind_address(ctx: Any) -> str:
    """0.0.0.0, or :: when the API server advertises an IPv6 address (kubeadm's rule)."""
    try:
        return "::" if ":" in ctx.data.advertise_address else "0.0.0.0"
    except KbootdError:  # no address to judge by (e.g. under --root): the IPv4 default
        return "0.0.0.0"


# --- phases and their skip predicates --------------------------------------------------------------

def dns_skip_reason(ctx: Any) -> str | None:
    return "the DNS add-on is disabled (dns.disabled in ClusterConfiguration)" if ctx.cfg.cluster.dns_disabled else None


def proxy_skip_reason(ctx: Any) -> str | None:
    return ("the kube-proxy add-on is disabled (proxy.disabled in ClusterConfiguration)"
            if ctx.cfg.cluster.proxy_disabled else None)


def write_dns_service(client: Any, svc: dict[str, Any]) -> str:
    """kubeadm's createDNSService: create, and on AlreadyExists or Invalid update instead.

    A real API server allocates a fixed clusterIP before it checks the name, so re-creating
    kube-dns answers 422 Invalid ("provided IP is already allocated"), not 409.
    """
    name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]

    def attempt() -> str:
        try:
            client.create(svc)
            return "created"
        except APIError as e:
            if not (e.already_exists or e.status == 422):
                raise
            refused = e
        current = client.get("Service", name, ns)
        if current is None:  # the IP is another Service's: nothing of ours to update
            raise refused
        if apiclient.contains(current, svc):
            return "unchanged"
        new = copy.deepcopy(svc)
        new["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        client.update(new)
        return "updated"

    return client.retry(attempt, f'create or update Service "{ns}/{name}"')


def coredns(ctx: Any) -> None:
    client = admin_client(ctx)
    objects = coredns_objects(ctx.cfg)
    write_all(client, [o for o in objects if o["kind"] != "Service"])
    for service in (o for o in objects if o["kind"] == "Service"):
        write_dns_service(client, service)
    ctx.reporter.info("addons", "Applied essential addon: CoreDNS")


def kube_proxy(ctx: Any) -> None:
    write_all(admin_client(ctx), kube_proxy_objects(ctx.cfg, control_plane_url(ctx), _bind_address(ctx)))
    ctx.reporter.info("addons", "Applied essential addon: kube-proxy")
