"""What every kubeadm static Pod shares: the Pod shell, hostPath volumes, probes, flags, env, YAML.

Pods are plain dicts in the v1 API's JSON shape. Fields Go's encoder drops as empty
(omitempty) are left out here too, so the YAML matches kubeadm's byte for byte.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from kbootd import redact
from kbootd.config.model import ClusterConfig, ExtraArgs
from kbootd.errors import ValidationError

Pod = dict[str, Any]
Args = list[tuple[str, str]]

# The system-node-critical PriorityClass's value; kubeadm sets both the class and the number.
SYSTEM_NODE_CRITICAL = 2000001000
DIRECTORY_OR_CREATE = "DirectoryOrCreate"
FILE_OR_CREATE = "FileOrCreate"
FILE = "File"
CONTROL_PLANE_TIER = "control-plane"
# kubeadm's probe timings (staticpod util): liveness/readiness/startup.
PROBE_TIMEOUT_SECONDS = 15
STARTUP_PERIOD_SECONDS = 10


@dataclass(frozen=True)
class Mount:
    """One hostPath volume and its mount in the container (same name for both, as kubeadm)."""

    name: str
    host_path: str
    mount_path: str
    read_only: bool
    path_type: str | None = DIRECTORY_OR_CREATE  # None: no `type` key; "" is kept (v1beta4 allows it)

    def volume(self) -> dict[str, Any]:
        hp: dict[str, Any] = {"path": self.host_path}
        if self.path_type is not None:
            hp["type"] = self.path_type
        return {"hostPath": hp, "name": self.name}

    def volume_mount(self) -> dict[str, Any]:
        vm: dict[str, Any] = {"mountPath": self.mount_path, "name": self.name}
        if self.read_only:
            vm["readOnly"] = True
        return vm


# --- command-line flags --------------------------------------------------------------

def arg_value(args: Iterable[tuple[str, str]], name: str) -> str | None:
    """The last value given for a flag (kubeadm's GetArgValue searches from the end)."""
    found = None
    for n, v in args:
        if n == name:
            found = v
    return found


def set_arg(args: Args, name: str, value: str) -> None:
    """Replace the last occurrence of a flag, or append it (kubeadm's SetArgValues with n=1)."""
    for i in range(len(args) - 1, -1, -1):
        if args[i][0] == name:
            args[i] = (name, value)
            return
    args.append((name, value))


def command(binary: str, defaults: Args, overrides: ExtraArgs) -> list[str]:
    """kubeadm's ArgumentsToCommand: extra args replace every default of the same name.

    Repeated extra args all survive. The result is sorted by name and then by value, as
    kubeadm sorts it, so a manifest does not change with the order of the config file.
    """
    named = {n for n, _ in overrides}
    merged = list(overrides) + [(n, v) for n, v in defaults if n not in named]
    merged.sort()
    return [binary] + [f"--{n}={v}" for n, v in merged]


# --- environment ---------------------------------------------------------------------

def proxy_envs(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The *_proxy variables of kbootd's own environment, which kubeadm hands to the control plane.

    Credentials in a proxy URL are registered for redaction: the manifest needs them, the
    console and logs must not show them.
    """
    env = os.environ if environ is None else environ
    out = []
    for name, value in env.items():
        if name.lower().endswith("_proxy") and value:
            out.append((name, value))
            for part in value.split(","):
                try:
                    password = urlsplit(part.strip()).password
                except ValueError:
                    password = None
                redact.register(password)
    return out


def merge_envs(*lists: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """kubeadm's MergeKubeadmEnvVars: later lists win by name; sorted by name."""
    merged: dict[str, str] = {}
    for envs in lists:
        for name, value in envs:
            merged[name] = value
    # EnvVar.value is omitempty in Go.
    return [{"name": n, "value": merged[n]} if merged[n] else {"name": n} for n in sorted(merged)]


# --- probes ----------------------------------------------------------------------------

def probe_address(addr: str) -> str:
    """A bind address usable as probe host; "" (kubelet probes the Pod IP) for 0.0.0.0 or ::."""
    return "" if addr in ("0.0.0.0", "::") else addr


def _http_probe(host: str, path: str, port: int, scheme: str, initial_delay: int,
                failure_threshold: int, period: int) -> dict[str, Any]:
    get: dict[str, Any] = {"path": path, "port": port, "scheme": scheme}
    if host:
        get["host"] = host
    probe: dict[str, Any] = {
        "failureThreshold": failure_threshold,
        "httpGet": get,
        "periodSeconds": period,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def liveness_probe(host: str, path: str, port: int, scheme: str) -> dict[str, Any]:
    # The initial delay equals the period: skip one period before the first check.
    return _http_probe(host, path, port, scheme, 10, 8, 10)


def readiness_probe(host: str, path: str, port: int, scheme: str) -> dict[str, Any]:
    # No initial delay: readiness is what users watch while the node comes up.
    return _http_probe(host, path, port, scheme, 0, 3, 1)


def startup_probe(host: str, path: str, port: int, scheme: str, timeout_seconds: float) -> dict[str, Any]:
    # Enough failures to cover the whole control-plane health-check timeout.
    failures = math.ceil(timeout_seconds / STARTUP_PERIOD_SECONDS)
    return _http_probe(host, path, port, scheme, STARTUP_PERIOD_SECONDS, failures, STARTUP_PERIOD_SECONDS)


# --- the Pod -----------------------------------------------------------------------------

def container(*, name: str, image: str, cmd: list[str], mounts: list[dict[str, Any]],
              resources: dict[str, str], liveness: dict[str, Any], startup: dict[str, Any],
              readiness: dict[str, Any] | None = None,
              env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {
        "command": cmd,
        "image": image,
        # kubeadm pins this for static Pods whatever nodeRegistration.imagePullPolicy says.
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": liveness,
        "name": name,
        "resources": {"requests": dict(resources)},
        "startupProbe": startup,
    }
    if readiness:
        c["readinessProbe"] = readiness
    if env:
        c["env"] = env
    if mounts:
        c["volumeMounts"] = mounts
    return c


def component_pod(ctr: dict[str, Any], volumes: list[dict[str, Any]],
                  annotations: dict[str, str] | None = None) -> Pod:
    """kubeadm's ComponentPod: a host-network, system-node-critical Pod in kube-system."""
    meta: dict[str, Any] = {
        # Go serializes the zero metav1.Time as null; kept so files match kubeadm's.
        "creationTimestamp": None,
        "labels": {"component": ctr["name"], "tier": CONTROL_PLANE_TIER},
        "name": ctr["name"],
        "namespace": "kube-system",
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "containers": [ctr],
        "hostNetwork": True,
        "priority": SYSTEM_NODE_CRITICAL,
        "priorityClassName": "system-node-critical",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {}}


def sorted_mounts(mounts: Mapping[str, Mount]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and volume mounts sorted by name (kubeadm builds both from maps)."""
    ordered = [mounts[n] for n in sorted(mounts)]
    return [m.volume() for m in ordered], [m.volume_mount() for m in ordered]


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ipv6(addr: str) -> bool:
    return ":" in addr


# --- YAML ----------------------------------------------------------------------------------

class _GoYAMLDumper(yaml.SafeDumper):
    """Go's YAML encoder double-quotes the scalars it must quote; PyYAML would single-quote them."""

    def choose_scalar_style(self):  # noqa: ANN201 - PyYAML's signature
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def to_yaml(pod: Pod) -> str:
    # Sorted keys and block style as sigs.k8s.io/yaml prints; never fold long flags.
    return yaml.dump(pod, Dumper=_GoYAMLDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 20)


def check_supported(c: ClusterConfig) -> None:
    """Reject knobs the control-plane and etcd manifests would otherwise silently ignore."""
    if c.gate("RootlessControlPlane"):
        raise ValidationError(
            "featureGates.RootlessControlPlane: not supported by kbootd; the control plane runs as "
            "root as in kubeadm's default. Remove the gate or set it to false")
