"""The kubelet's local files (`init phase kubelet-start`, shared with join) and its service.

Three files steer the kubelet, as kubeadm v1.32 lays them out:
  * the systemd drop-in (today's form of the spec's 10-kubeadm.conf): fixed flags and
    where the rest comes from;
  * /var/lib/kubelet/config.yaml: the KubeletConfiguration, the same for every node
    (join downloads it from the kubelet-config ConfigMap that init uploads);
  * /var/lib/kubelet/kubeadm-flags.env: the per-node flags (CRI socket, name, pause image).
KUBELET_EXTRA_ARGS in /etc/default/kubelet or /etc/sysconfig/kubelet stays the user's:
kbootd never writes it, the drop-in reads it.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from kbootd.config.model import ClusterConfig, ExtraArgs, InitConfig
from kbootd.config.validate import service_ip, version_minor
from kbootd.config.yamlsrc import load_one
from kbootd.errors import ValidationError
from kbootd.images import images_for

PHASE = "kubelet-start"
API = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
DEFAULT_MANIFESTS_DIR = "/etc/kubernetes/manifests"
ENV_VAR = "KUBELET_KUBEADM_ARGS"
# Where packages put the kubelet; the first present one goes into ExecStart.
KUBELET_BINARIES = ("/usr/bin/kubelet", "/usr/local/bin/kubelet")
# systemd-resolved's real upstream list; the kubelet must not hand pods the 127.0.0.53 stub.
RESOLVED_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
ETC_RESOLV_CONF = "/etc/resolv.conf"
# Drop-in directories systemd reads for kubelet.service, highest priority first.
DROPIN_DIRS = (
    "/etc/systemd/system/kubelet.service.d",
    "/run/systemd/system/kubelet.service.d",
    "/usr/local/lib/systemd/system/kubelet.service.d",
    "/usr/lib/systemd/system/kubelet.service.d",
    "/lib/systemd/system/kubelet.service.d",
)
# The kubelet dropped --pod-infra-container-image in v1.35 (kubeadm stopped writing it then).
POD_INFRA_FLAG_LAST_MINOR = 34

# Flags the spec's drop-ins used that today's kubelet refuses ("unknown flag"), and why.
REMOVED_FLAGS: dict[str, str] = {
    "require-kubeconfig": "removed in v1.10; --kubeconfig (with --bootstrap-kubeconfig) is enough",
    "allow-privileged": "removed in v1.15; Pod Security admission governs privileged pods",
    "network-plugin": "removed in v1.24 with dockershim; the container runtime runs CNI",
    "cni-conf-dir": "removed in v1.24 with dockershim; configure CNI in the container runtime",
    "cni-bin-dir": "removed in v1.24 with dockershim; configure CNI in the container runtime",
    "cni-cache-dir": "removed in v1.24 with dockershim",
    "network-plugin-mtu": "removed in v1.24 with dockershim",
    "docker-endpoint": "removed in v1.24 with dockershim",
    "cadvisor-port": "removed in v1.12; cAdvisor no longer listens on a port of its own",
    "container-runtime": "removed in v1.27; only remote (CRI) runtimes exist, set by --container-runtime-endpoint",
    "experimental-dockershim": "removed in v1.24 with dockershim",
}

Warn = Callable[[str], None]


# --- KubeletConfiguration --------------------------------------------------------------

def pod_infra_image(cluster: ClusterConfig, warn: Warn | None = None) -> str | None:
    """The pause image for --pod-infra-container-image, or None where the kubelet lacks the flag."""

    if version_minor(cluster.kubernetes_version) > POD_INFRA_FLAG_LAST_MINOR:
        return None
    return images_for(cluster, warn).pause


def kubelet_configuration(cfg: InitConfig, *, manifests_dir: str = DEFAULT_MANIFESTS_DIR,
                          warn: Warn | None = None) -> dict[str, Any]:
    """The cluster-wide KubeletConfiguration (config.yaml and the kubelet-config ConfigMap).

    kubeadm's defaults with cfg.kubelet_overrides merged on top; like kubeadm, a value that
    departs from the recommended one is kept with a warning, except rotateCertificates.
    """
    c = cfg.cluster
    dns_ip = service_ip(c.networking.service_subnet, 10)
    recommended: dict[str, Any] = {
        "staticPodPath": manifests_dir,  # the spec's --pod-manifest-path
        "clusterDNS": [dns_ip],  # the spec's --cluster-dns (tenth service address)
        "clusterDomain": c.networking.dns_domain,  # the spec's --cluster-domain
        # The spec's --client-ca-file and --authorization-mode=Webhook.
        "authentication.x509.clientCAFile": f"{c.certificates_dir}/ca.crt",
        "authentication.anonymous.enabled": False,
        "authentication.webhook.enabled": True,
        "authorization.mode": "Webhook",
        # kubeadm's wait-control-plane polls http://127.0.0.1:10248/healthz.
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
    }
    base: dict[str, Any] = {
        "apiVersion": API,
        "kind": KIND,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": recommended["authentication.x509.clientCAFile"]},
        },
        "authorization": {"mode": "Webhook",
                          "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd",
        "clusterDNS": [dns_ip],
        "clusterDomain": c.networking.dns_domain,
        # Per node, in kubeadm-flags.env (--container-runtime-endpoint); empty here as kubeadm writes it.
        "containerRuntimeEndpoint": "",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "logging": {"flushFrequency": 0, "options": {"json": {"infoBufferSize": "0"},
                                                     "text": {"infoBufferSize": "0"}},
                    "verbosity": 0},
        "rotateCertificates": True,
        "staticPodPath": manifests_dir,
        # The spec's --cadvisor-port=0 needs no field: the kubelet lost cAdvisor's own port in
        # v1.12, so "not listening on 0.0.0.0:4194" is simply the default today.
    }
    # kubeadm v1.32 serializes these unset fields as zero values; the kubelet defaults zeros,
    # so they are written as-is to match kubeadm's file.
    for key in ("cpuManagerReconcilePeriod", "evictionPressureTransitionPeriod", "fileCheckFrequency",
                "httpCheckFrequency", "imageMaximumGCAge", "imageMinimumGCAge",
                "nodeStatusReportFrequency", "nodeStatusUpdateFrequency", "runtimeRequestTimeout",
                "shutdownGracePeriod", "shutdownGracePeriodCriticalPods",
                "streamingConnectionIdleTimeout", "syncFrequency", "volumeStatsAggPeriod"):
        base[key] = "0s"
    base["crashLoopBackOff"] = {}
    base["memorySwap"] = {}

    overrides = dict(cfg.kubelet_overrides or {})
    _check_kind(overrides, "KubeletConfiguration document beside the kubeadm configuration")
    doc = deep_merge(base, overrides)
    if warn:
        for path, want in recommended.items():
            got = _get(doc, path)
            if got != want:
                warn(f'The recommended value for "{path}" in "{KIND}" is: {_show(want)}; '
                     f"the provided value is: {_show(got)}")
        if doc.get("readOnlyPort", 0) not in (0, None):
            warn(f'The recommended value for "readOnlyPort" in "{KIND}" is: 0; '
                 f"the provided value is: {doc['readOnlyPort']}")
        if overrides.get("rotateCertificates") is False:
            warn(f'"rotateCertificates" in "{KIND}" is always true: kubeadm relies on client '
                 "certificate rotation; ignoring false")
    doc["rotateCertificates"] = True
    return doc


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Maps merge key by key; anything else (lists included) in `top` replaces."""
    out = copy.deepcopy(dict(base))
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _show(v: Any) -> str:
    """Values as kubeadm's warning prints them (Go's %v)."""
    if isinstance(v, list):
        return "[" + " ".join(map(str, v)) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _check_kind(doc: Mapping[str, Any], where: str) -> None:
    if not doc:
        return
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if (api, kind) != (API, KIND):
        raise ValidationError(f"{where}: apiVersion/kind is {api}/{kind}; expected {API}/{KIND}")


class _KubeDumper(yaml.SafeDumper):
    """YAML the way kubeadm (sigs.k8s.io/yaml) prints it: sorted keys, double-quoted only when needed."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = None
    if data == "" or dumper.resolve(yaml.ScalarNode, data, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    elif "\n" in data:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_KubeDumper.add_representer(str, _represent_str)


def render_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.dump(dict(doc), Dumper=_KubeDumper, sort_keys=True, default_flow_style=False,
                     width=1 << 16, allow_unicode=True)


def parse_kubelet_configuration(content: str | Mapping[str, Any], where: str) -> dict[str, Any]:
    """A KubeletConfiguration from text (the ConfigMap's `kubelet` key) or a dict, checked."""
    if isinstance(content, str):
        data = load_one(content, where)
    else:
        data = copy.deepcopy(dict(content))
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: expected a {KIND} mapping, got {type(data).__name__}")
    if not data.get("apiVersion") and not data.get("kind"):
        data = {"apiVersion": API, "kind": KIND, **data}
    _check_kind(data, where)
    return data


def systemd_resolved_active(ctx: Any) -> bool:
    """True when pods would otherwise inherit systemd-resolved's 127.0.0.53 stub."""
    if ctx.paths.is_host and not ctx.dry_run:
        res = ctx.host.query(["systemctl", "is-active", "--quiet", "systemd-resolved"])
        if res is not None:
            return res.returncode == 0
    # Without systemctl (tests, other roots): the stub in /etc/resolv.conf and the real list present.
    stub = re.search(r"^\s*nameserver\s+127\.0\.0\.53\b", ctx.host.read_text(ETC_RESOLV_CONF) or "", re.M)
    return bool(stub) and ctx.host.exists(RESOLVED_RESOLV_CONF)


def write_kubelet_config(ctx: Any, content: str | Mapping[str, Any], *,
                         source: str = "KubeletConfiguration") -> bool:
    """Write config.yaml (init's own document, or the one join downloaded). True if changed.

    Like kubeadm's per-node Mutate: with systemd-resolved active, resolvConf points at its
    real upstream list unless the document already names one.
    """
    doc = parse_kubelet_configuration(content, source)
    if "resolvConf" not in doc and systemd_resolved_active(ctx):
        doc["resolvConf"] = RESOLVED_RESOLV_CONF
    path = ctx.paths.kubelet_config
    ctx.reporter.info(PHASE, f'Writing kubelet configuration to file "{path}"')
    ctx.host.ensure_dir(ctx.paths.kubelet_dir, 0o700)
    return ctx.host.write_file(path, render_yaml(doc), 0o644)


# --- kubeadm-flags.env -----------------------------------------------------------------

def host_name(ctx: Any) -> str:
    """The name the kubelet registers by default (os.Hostname, lower-cased)."""
    return ctx.data.host_name.strip().lower()


def kubelet_flags(*, cri_socket: str, node_name: str, host_name: str, pause_image: str | None,
                  extra_args: ExtraArgs = (), cloud_provider: str | None = None,
                  cloud_config: str | None = None, node_ip: str | None = None) -> list[str]:
    """The per-node flags, as kubeadm's ArgumentsToCommand orders them.

    An extra arg replaces every default of the same name; the list is sorted by name, then value.
    """
    base: list[tuple[str, str]] = [("container-runtime-endpoint", cri_socket)]
    if pause_image:
        # Pins the pause image against the kubelet's image GC (until v1.35 removed the flag).
        base.append(("pod-infra-container-image", pause_image))
    if node_name != host_name:
        base.append(("hostname-override", node_name))
    if node_ip:
        base.append(("node-ip", node_ip))
    if cloud_provider:
        if cloud_provider != "external":
            raise ValidationError(
                f"cloudProvider: {cloud_provider!r}: the in-tree cloud providers are gone from the "
                "kubelet (v1.29); the only value accepted today is \"external\", with the "
                "provider's cloud-controller-manager deployed in the cluster")
        base.append(("cloud-provider", cloud_provider))
    if cloud_config:
        # The spec's --cloud-config; the kubelet still accepts it (deprecated).
        base.append(("cloud-config", cloud_config))
    names = {k for k, _ in extra_args}
    for k, val in extra_args:
        where = f"nodeRegistration.kubeletExtraArgs[{k}]"
        if k.lstrip("-") in REMOVED_FLAGS:
            raise ValidationError(f"{where}: --{k.lstrip('-')} is not a kubelet flag any more: "
                                  f"{REMOVED_FLAGS[k.lstrip('-')]}")
        if not k or re.search(r"[\s=]", k):
            raise ValidationError(f"{where}: {k!r} is not a flag name; expected e.g. node-labels")
        if re.search(r"\s", val):
            raise ValidationError(
                f"{where}: {val!r}: a value must not contain whitespace; systemd splits "
                "$KUBELET_KUBEADM_ARGS into words at whitespace")
    args = list(extra_args) + [(k, v) for k, v in base if k not in names]
    args.sort(key=lambda kv: (kv[0], kv[1]))
    return [f"--{k}={v}" for k, v in args]


def render_flags_env(flags: Iterable[str]) -> str:
    joined = " ".join(flags).replace("\\", "\\\\").replace('"', '\\"')
    return f'{ENV_VAR}="{joined}"\n'


def write_flags_env(ctx: Any, *, cri_socket: str, pause_image: str | None,
                    extra_args: ExtraArgs | None = None, cloud_provider: str | None = None,
                    node_ip: str | None = None) -> bool:
    """Write kubeadm-flags.env for this node (init and join). True if changed."""

    cfg = ctx.init or ctx.join
    if extra_args is None:
        extra_args = cfg.node.kubelet_extra_args if cfg is not None else ()
    cloud_config = ctx.paths.cloud_config if ctx.host.exists(ctx.paths.cloud_config) else None
    flags = kubelet_flags(cri_socket=cri_socket, node_name=ctx.data.node_name, host_name=host_name(ctx),
                          pause_image=pause_image, extra_args=extra_args,
                          cloud_provider=cloud_provider, cloud_config=cloud_config, node_ip=node_ip)
    path = ctx.paths.kubelet_flags_env
    ctx.reporter.info(PHASE, f'Writing kubelet environment file with flags to file "{path}"')
    ctx.host.ensure_dir(ctx.paths.kubelet_dir, 0o700)
    return ctx.host.write_file(path, render_flags_env(flags), 0o644)


# --- the systemd drop-in ---------------------------------------------------------------

def kubelet_binary(ctx: Any) -> str:
    for b in KUBELET_BINARIES:
        if ctx.host.exists(b):
            return b
    return KUBELET_BINARIES[0]


def render_dropin(paths: Any, kubelet_bin: str = KUBELET_BINARIES[0]) -> str:
    """Today's 10-kubeadm.conf; comments say where each of the spec's v1.7 flags went."""
    defaults = "\n".join(f"EnvironmentFile=-{f}" for f in paths.kubelet_defaults_files)
    return f"""\
# Written by kbootd (kubelet-start); the form kubeadm's packages ship as 10-kubeadm.conf.
# The spec's (v1.7) flags moved into {paths.kubelet_config} (KubeletConfiguration):
#   --pod-manifest-path                     -> staticPodPath
#   --cluster-dns, --cluster-domain         -> clusterDNS, clusterDomain
#   --authorization-mode=Webhook            -> authorization.mode
#   --client-ca-file                        -> authentication.x509.clientCAFile
#   --cadvisor-port=0                       -> nothing: the port was removed in v1.12
# and these are gone from the kubelet:
#   --require-kubeconfig (v1.10), --allow-privileged (v1.15),
#   --network-plugin/--cni-conf-dir/--cni-bin-dir (v1.24: the runtime runs CNI),
#   --container-runtime=remote (v1.27: --container-runtime-endpoint in kubeadm-flags.env).
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig={paths.bootstrap_kubelet_conf} --kubeconfig={paths.kubelet_conf}"
Environment="KUBELET_CONFIG_ARGS=--config={paths.kubelet_config}"
# Written by "kbootd init" and "kbootd join": the per-node KUBELET_KUBEADM_ARGS.
EnvironmentFile=-{paths.kubelet_flags_env}
# The user's KUBELET_EXTRA_ARGS (deb: /etc/default, rpm: /etc/sysconfig); kbootd never writes these.
{defaults}
ExecStart=
ExecStart={kubelet_bin} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def write_dropin(ctx: Any) -> bool:
    path = ctx.paths.kubelet_dropin
    ctx.reporter.info(PHASE, f'Writing kubelet service drop-in to file "{path}"')
    ctx.host.ensure_dir(ctx.paths.kubelet_dropin_dir, 0o755)
    return ctx.host.write_file(path, render_dropin(ctx.paths, kubelet_binary(ctx)), 0o644)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (quotes, escapes, comments)."""
    out: dict[str, str] = {}
    for line in text.replace("\\\n", "").splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        raw = raw.strip()
        try:
            words = shlex.split(raw, posix=True) if raw else [""]
        except ValueError:
            words = [raw]
        out[key.strip()] = " ".join(words)
    return out


def effective_kubelet_argv(ctx: Any) -> list[str]:
    """The kubelet command line systemd would run, from every kubelet.service drop-in.

    Mirrors systemd: same-named drop-ins in higher-priority directories mask the others,
    files apply in name order, `ExecStart=` empty resets, EnvironmentFile= beats Environment=,
    and an unbraced $VAR splits into words.
    """
    chosen: dict[str, str] = {}
    for d in DROPIN_DIRS:
        for name in ctx.host.listdir(d):
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = f"{d}/{name}"
    env: dict[str, str] = {}
    files: list[str] = []
    exec_start = ""
    for name in sorted(chosen):
        for line in (ctx.host.read_text(chosen[name]) or "").splitlines():
            key, sep, value = line.strip().partition("=")
            if not sep or key.startswith(("#", ";")):
                continue
            if key == "Environment":
                try:
                    words = shlex.split(value)
                except ValueError:  # unbalanced quotes: systemd would ignore the line too
                    continue
                for word in words:
                    k, _, v = word.partition("=")
                    env[k] = v
            elif key == "EnvironmentFile":
                files.append(value.strip())
            elif key == "ExecStart":
                exec_start = value.strip()
    for f in files:
        optional = f.startswith("-")
        text = ctx.host.read_text(f.lstrip("-"))
        if text is None and not optional:
            return []  # systemd refuses to start the unit
        env.update(parse_env_file(text or ""))
    argv: list[str] = []
    for word in exec_start.split():
        m = re.fullmatch(r"\$(\w+)|\$\{(\w+)\}", word)
        if m and m.group(1):
            argv.extend(env.get(m.group(1), "").split())
        elif m:
            argv.append(env.get(m.group(2), ""))
        else:
            argv.append(word)
    return argv


def removed_flags(argv: Iterable[str]) -> list[str]:
    found = []
    for a in argv:
        name = a.lstrip("-").split("=", 1)[0]
        if a.startswith("--") and name in REMOVED_FLAGS:
            found.append(f"--{name}: {REMOVED_FLAGS[name]}")
    return found


# --- the service -----------------------------------------------------------------------

def restart_kubelet(ctx: Any, *, changed: bool) -> None:
    """daemon-reload, enable and (re)start, as kubeadm does; a failure is a warning, as in kubeadm."""
    if not any(ctx.host.exists(u) for u in ctx.paths.kubelet_unit_candidates):
        ctx.reporter.warn(PHASE, "Couldn't detect a kubelet service (kubelet.service); the kubelet is "
                                 "probably not installed")
    running = False
    if not changed and ctx.paths.is_host and not ctx.dry_run:
        res = ctx.host.query(["systemctl", "is-active", "--quiet", "kubelet"])
        running = res is not None and res.returncode == 0
    elif not changed:
        running = True  # nothing here can say otherwise; a re-run must not churn the kubelet
    steps: list[tuple[str, ...]] = [("enable", "kubelet")]
    if changed:
        steps.insert(0, ("daemon-reload",))
    if not running:
        ctx.reporter.info(PHASE, "Starting the kubelet")
        steps.append(("restart", "kubelet"))
    else:
        ctx.reporter.info(PHASE, "The kubelet's files are unchanged and it is running; not restarting it")
    for step in steps:
        res = ctx.host.systemctl(*step, check=False)
        if res.returncode != 0:
            ctx.reporter.warn(PHASE, f"systemctl {' '.join(step)} failed: {res.stderr.strip()[:300]}")


def setup_node(ctx: Any, *, kubelet_config: str | Mapping[str, Any], cri_socket: str | None = None,
               pause_image: str | None, cloud_provider: str | None = None,
               node_ip: str | None = None, extra_args: ExtraArgs | None = None,
               source: str = "KubeletConfiguration") -> bool:
    """Everything kubelet-start does on a node; init and join both call this. True if a file changed.

    join passes the KubeletConfiguration it downloaded and the pause image of the cluster's
    version; node name and CRI socket come from ctx (ctx.join) unless given.
    """

    socket_ = cri_socket or ctx.data.cri_socket
    changed = write_flags_env(ctx, cri_socket=socket_, pause_image=pause_image, extra_args=extra_args,
                              cloud_provider=cloud_provider, node_ip=node_ip)
    changed |= write_kubelet_config(ctx, kubelet_config, source=source)
    changed |= write_dropin(ctx)
    for problem in removed_flags(effective_kubelet_argv(ctx)):
        ctx.reporter.warn(PHASE, f"the kubelet's command line (drop-ins, KUBELET_EXTRA_ARGS) has a "
                                 f"flag it will refuse: {problem}")
    restart_kubelet(ctx, changed=changed)
    return changed


def start(ctx: Any) -> None:
    """Phase kubelet-start (init): write the kubelet's files and (re)start it."""
    cfg: InitConfig = ctx.cfg
    warn = lambda m: ctx.reporter.warn(PHASE, m)  # noqa: E731
    doc = kubelet_configuration(cfg, manifests_dir=ctx.paths.manifests_dir, warn=warn)
    setup_node(ctx, kubelet_config=doc, pause_image=pod_infra_image(cfg.cluster, warn),
               cloud_provider=cfg.cluster.cloud_provider)
