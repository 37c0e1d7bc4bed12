"""kubeadm's strict decoding of the documents beside its own (VerifyUnmarshalStrict): duplicate
keys anywhere and unknown top-level fields of KubeletConfiguration / KubeProxyConfiguration.

kubeadm reports these as warnings on init/join and as errors in `config validate`; the caller
decides which. kbootd's own kubeadm types already refuse unknown fields while loading.
"""

from __future__ import annotations

from typing import Any

# Top-level fields of kubelet.config.k8s.io/v1beta1 KubeletConfiguration (Kubernetes v1.32).
KUBELET_FIELDS = frozenset("""
apiVersion kind enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency httpCheckFrequency
staticPodURL staticPodURLHeader address port readOnlyPort tlsCertFile tlsPrivateKeyFile tlsCipherSuites
tlsMinVersion rotateCertificates serverTLSBootstrap authentication authorization registryPullQPS
registryBurst eventRecordQPS eventBurst enableDebuggingHandlers enableContentionProfiling healthzPort
healthzBindAddress oomScoreAdj clusterDomain clusterDNS streamingConnectionIdleTimeout
nodeStatusUpdateFrequency nodeStatusReportFrequency nodeLeaseDurationSeconds imageMinimumGCAge
imageMaximumGCAge imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod
kubeletCgroups systemCgroups cgroupRoot cgroupsPerQOS cgroupDriver cpuManagerPolicy
cpuManagerPolicyOptions cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy
topologyManagerScope topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode maxPods
podCIDR podPidsLimit resolvConf runOnce cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles
contentType kubeAPIQPS kubeAPIBurst serializeImagePulls maxParallelImagePulls evictionHard evictionSoft
evictionSoftGracePeriod evictionPressureTransitionPeriod evictionMaxPodGracePeriod evictionMinimumReclaim
podsPerCore enableControllerAttachDetach protectKernelDefaults makeIPTablesUtilChains
iptablesMasqueradeBit iptablesDropBit featureGates failSwapOn memorySwap containerLogMaxSize
containerLogMaxFiles containerLogMaxWorkers containerLogMonitorInterval
configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved reservedSystemCPUs
showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable
allowedUnsafeSysctls volumePluginDir providerID kernelMemcgNotification logging enableSystemLogHandler
enableSystemLogQuery shutdownGracePeriod shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority
reservedMemory enableProfilingHandler enableDebugFlagsHandler seccompDefault memoryThrottlingFactor
registerWithTaints registerNode tracing localStorageCapacityIsolation containerRuntimeEndpoint
imageServiceEndpoint failCgroupV1 singleProcessOOMKill crashLoopBackOff userNamespaces
""".split())
# Top-level fields of kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration (Kubernetes v1.32).
KUBE_PROXY_FIELDS = frozenset("""
apiVersion kind featureGates clientConnection hostnameOverride bindAddress healthzBindAddress
metricsBindAddress bindAddressHardFail enableProfiling showHiddenMetricsForVersion mode iptables ipvs
nftables winkernel detectLocalMode detectLocal clusterCIDR nodePortAddresses oomScoreAdj conntrack
configSyncPeriod portRange logging windowsRunAsService
""".split())
KNOWN_FIELDS = {"KubeletConfiguration": KUBELET_FIELDS, "KubeProxyConfiguration": KUBE_PROXY_FIELDS}


def problems(text: str, source: str) -> list[str]:
    """Each duplicate key (any document) and unknown component-config field, as file:line: message."""
    import yaml

    out: list[str] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return out  # the loader reports malformed YAML with its line
    for node in nodes:
        if node is None:
            continue
        _duplicates(node, (), source, out)
        if isinstance(node, yaml.MappingNode):
            top = {k.value: (k, val) for k, val in node.value if isinstance(k, yaml.ScalarNode)}
            kind = top.get("kind", (None, None))[1]
            known = KNOWN_FIELDS.get(kind.value) if isinstance(kind, yaml.ScalarNode) else None
            if known is None:
                continue
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value not in known:
                    out.append(f"{source}:{k.start_mark.line + 1}: {kind.value}: unknown field {k.value!r}")
    return out


def _duplicates(node: Any, path: tuple[str, ...], source: str, out: list[str]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, val in node.value:
            key = str(getattr(k, "value", ""))
            line = k.start_mark.line + 1
            if key in seen:
                name = ".".join(path + (key,))
                out.append(f"{source}:{line}: duplicate key {name!r} (first at line {seen[key]}); "
                           "the last one would win")
            else:
                seen[key] = line
            _duplicates(val, path + (key,), source, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, path + (f"[{i}]",), source, out)
