"""The kbootd document: validate each source, merge them (later wins), and build InitConfig/JoinConfig.

    apiVersion: kbootd.io/v1alpha1
    kind: KbootdConfiguration
    role: worker                      # control-plane (alias master) or worker (alias node)
    token: abcdef.0123456789abcdef    # bootstrap token: created by init, used by join
    endpoint: 10.0.0.10:6443          # or endpoints: [...]; host:port or https://host:port
    caCertHashes: [sha256:...]        # or caCertHash: sha256:...; pins of the cluster CA
    unsafeSkipCAVerification: false
    nodeName: node-3
    kubeadm: |                        # an embedded kubeadm v1beta4/v1alpha1 configuration
      apiVersion: kubeadm.k8s.io/v1beta4
      ...
    kubeadmConfigFile: /etc/kbootd/kubeadm.yaml   # or a path to one (not both)
    controlPlaneJoin: true            # role control-plane only: join the existing control plane
                                      # (never an election: exactly one control plane has it unset)
    certificateKey: <64 hex digits>   # with controlPlaneJoin: decrypts kubeadm-certs (else pre-shared)
    supervise:
      interval: 30s
      renewBefore: 90d                # renew leaf certificates this long before they expire
      caWarnBefore: 365d              # warn when a CA has less than this left

Document fields override the same settings of the embedded kubeadm configuration. Every
value remembers where it came from, so an error names the file (and line) to fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kbootd.config import v1alpha1, v1beta4
from kbootd.config import validate as v
from kbootd.config.load import check_init, check_join, load_file
from kbootd.config.model import (
    BootstrapTokenSpec,
    InitConfig,
    JoinConfig,
    JoinControlPlane,
    NodeRegistration,
)
from kbootd.config.yamlsrc import MAX_INPUT_BYTES, load_data
from kbootd.daemon import certrenewal
from kbootd.daemon.inputs import Gathered, Source, gather
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.redact import redact
from kbootd.token import BootstrapToken, holds_token
from kbootd.tokenshape import TOKEN_FORMAT

API_VERSION = "kbootd.io/v1alpha1"
KIND = "KbootdConfiguration"
DEFAULT_SUPERVISE_INTERVAL = 30.0
ROLES = {"control-plane": "control-plane", "master": "control-plane", "worker": "worker", "node": "worker"}
ENGINE_ROLE = {"control-plane": "init", "worker": "join"}
KNOWN = ("apiVersion", "kind", "role", "token", "endpoint", "endpoints", "caCertHash", "caCertHashes",
         "unsafeSkipCAVerification", "nodeName", "kubeadm", "kubeadmConfigFile", "supervise",
         "controlPlaneJoin", "certificateKey")
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Document:
    role: str | None = None
    token: BootstrapToken | None = None
    endpoints: tuple[str, ...] = ()
    ca_cert_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    node_name: str | None = None
    kubeadm: str | None = None  # embedded configuration text
    kubeadm_file: str | None = None
    supervise_interval: float = DEFAULT_SUPERVISE_INTERVAL
    control_plane_join: bool = False
    certificate_key: str | None = None  # a secret: only from a root-only file
    renew_before: float = certrenewal.DEFAULT_RENEW_BEFORE
    ca_warn_before: float = certrenewal.DEFAULT_CA_WARN_BEFORE
    origin: dict[str, str] = field(default_factory=dict)  # field -> where its value came from
    looked: str = ""  # every place kbootd looked, for "not found" errors

    @property
    def engine_role(self) -> str:
        if self.role == "control-plane" and self.control_plane_join:
            return "join"
        return ENGINE_ROLE[self.role or "worker"]

    def summary(self) -> str:
        """One line for the log: no secret, the token by its id only."""
        parts = [f"role {self.role or '(none)'}"]
        if self.token:
            parts.append(f"token id {self.token.id}")
        if self.endpoints:
            parts.append("endpoint " + ", ".join(self.endpoints))
        if self.ca_cert_hashes:
            parts.append(f"{len(self.ca_cert_hashes)} CA pin(s)")
        if self.unsafe_skip_ca_verification:
            parts.append("CA pinning skipped (unsafe)")
        if self.node_name:
            parts.append(f"node name {self.node_name}")
        if self.kubeadm or self.kubeadm_file:
            parts.append(f"kubeadm configuration from {self.origin.get('kubeadm') or self.kubeadm_file}")
        if self.control_plane_join:
            parts.append("joins the existing control plane" + (" (certificate key given)" if self.certificate_key
                                                              else " (pre-shared certificates)"))
        return ", ".join(parts)


DEFAULTS = Source("built-in defaults", "", {"supervise": {"interval": "30s"}})


# --- one source ------------------------------------------------------------------------

def _str(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValidationError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value).strip()


def _list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]  # metadata can only hold strings
    if isinstance(value, list):
        return [_str(x, where) for x in value]
    raise ValidationError(f"{where}: expected a list of strings, got {type(value).__name__}")


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValidationError(f"{where}: expected true or false, got {value!r}")


def role(value: Any, where: str) -> str:
    r = ROLES.get(_str(value, where).lower())
    if r is None:
        raise ValidationError(f"{where}: {value!r} is not a role; expected control-plane (alias master) "
                              "or worker (alias node)")
    return r


def endpoint(value: Any, where: str) -> str:
    text = _str(value, where)
    if text.startswith("http://"):
        raise ValidationError(f"{where}: {text!r}: the API server is reached over HTTPS only; "
                              "give host:port or https://host:port")
    if text.startswith("https://"):
        text = text[len("https://"):].rstrip("/")
    return v.endpoint(text, where)


def _kubeadm(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        import yaml

        docs = value if isinstance(value, list) else [value]
        return yaml.safe_dump_all(docs, sort_keys=False)
    raise ValidationError(f"{where}: expected a kubeadm configuration (YAML text or a mapping)")


# Keys that carry a bootstrap token, or decide whom kbootd trusts, in a kbootd document or
# an embedded kubeadm configuration (v1beta4 and v1alpha1 spellings).
_TOKEN_KEYS = frozenset({"token", "tlsBootstrapToken", "discoveryToken"})
_TRUST_KEYS = frozenset({"caCertHash", "caCertHashes", "unsafeSkipCAVerification", "endpoint", "endpoints",
                         "apiServerEndpoint", "discoveryTokenAPIServers", "discoveryTokenCACertHashes",
                         "discoveryTokenUnsafeSkipCAVerification", "discoveryFile", "kubeConfigPath", "file"})


def sensitive_values(data: Any, depth: int = 0) -> tuple[bool, bool]:
    """(provides a token, provides a trust setting), decided on parsed values.

    Parsed, not raw text: `token: "abcdef\\x2e0123..."` is a token whatever its escaping,
    and a string shaped like a token under any key counts as one.
    """
    token = trust = False
    if depth > 64:
        return token, trust
    if isinstance(data, dict):
        for k, val in data.items():
            if val in (None, "", [], {}, False):
                continue
            token |= k in _TOKEN_KEYS
            trust |= k in _TRUST_KEYS
            t, u = sensitive_values(val, depth + 1)
            token, trust = token or t, trust or u
    elif isinstance(data, list):
        for item in data:
            t, u = sensitive_values(item, depth + 1)
            token, trust = token or t, trust or u
    elif isinstance(data, str):
        token = holds_token(data)
    return token, trust



def _check_private(src: Source, host: Host, *, token: bool, trust: bool) -> None:
    """A token may only come from a file no one but root can read; a token or any trust setting
    (pins, unsafeSkipCAVerification, endpoints, discovery file) only from a root-owned file that
    no one else can write (whoever can write it can point the node at their own cluster).
    Exit 3 like any bad input the operator fixes on this machine (the file's mode), not 4,
    which says the cluster's identity could not be verified (a pin, a signature)."""
    if src.mode is None or not (token or trust):
        return
    root_owned = not host.paths.is_host or src.uid in (0, None)
    if token and (src.mode & 0o077 or not root_owned):
        raise ValidationError(
            f"{src.path}: holds a bootstrap token but is readable by others than root "
            f"(mode {src.mode:04o}); kbootd refuses to use it: make it root-owned with mode 0600 "
            "(cloud-init write_files: permissions: '0600')")
    if src.mode & 0o022 or not root_owned:
        owner = "" if root_owned else f", owner uid {src.uid}"
        raise ValidationError(
            f"{src.path}: gives trust settings (CA pins, endpoint, unsafeSkipCAVerification or a token) "
            f"but can be written by others than root (mode {src.mode:04o}{owner}); kbootd refuses to use "
            "it: make it root-owned and not group- or world-writable (e.g. mode 0600)")


def _embedded_sensitive(text: str | None, where: str) -> tuple[bool, bool]:
    if not text:
        return False, False
    return sensitive_values(load_data(text, where))


def parse_source(src: Source, host: Host) -> dict[str, tuple[Any, str]]:
    """Validated fields of one source: field -> (value, where)."""
    data = src.data
    if src.header or "apiVersion" in data or "kind" in data:
        api, kind = data.get("apiVersion"), data.get("kind")
        if api != API_VERSION or kind != KIND:
            raise ValidationError(f"{src.at('apiVersion')}: expected apiVersion: {API_VERSION} and kind: "
                                  f"{KIND}, got {api!r}/{kind!r}")
    unknown = [k for k in data if k not in KNOWN]
    if unknown:
        raise ValidationError(f"{src.at(unknown[0])}: unknown field {unknown[0]!r}; known fields: "
                              + ", ".join(k for k in KNOWN if k not in ("apiVersion", "kind")))
    out: dict[str, tuple[Any, str]] = {}

    def put(name: str, value: Any, key: str) -> None:
        out[name] = (value, src.at(key))

    for key, value in data.items():
        at = src.at(key)
        if key == "role":
            put("role", role(value, at), key)
        elif key == "token":
            put("token", BootstrapToken.parse(_str(value, at), source=at), key)
        elif key in ("endpoint", "endpoints"):
            if "endpoint" in data and "endpoints" in data:
                raise ValidationError(f"{at}: give endpoint or endpoints, not both")
            eps = tuple(dict.fromkeys(endpoint(e, at) for e in _list(value, at)))
            if not eps:
                raise ValidationError(f"{at}: expected at least one host:port")
            put("endpoints", eps, key)
        elif key in ("caCertHash", "caCertHashes"):
            if "caCertHash" in data and "caCertHashes" in data:
                raise ValidationError(f"{at}: give caCertHash or caCertHashes, not both")
            put("caCertHashes", tuple(v.ca_hash(h, at) for h in _list(value, at)), key)
        elif key == "unsafeSkipCAVerification":
            put("unsafeSkipCAVerification", _bool(value, at), key)
        elif key == "nodeName":
            put("nodeName", v.node_name(_str(value, at), at), key)
        elif key == "kubeadm":
            if "kubeadmConfigFile" in data:
                raise ValidationError(f"{at}: give kubeadm or kubeadmConfigFile, not both")
            put("kubeadm", _kubeadm(value, at), key)
        elif key == "kubeadmConfigFile":
            path = _str(value, at)
            if not path.startswith("/"):
                raise ValidationError(f"{at}: {path!r}: expected an absolute path")
            put("kubeadmConfigFile", path, key)
        elif key == "controlPlaneJoin":
            put("controlPlaneJoin", _bool(value, at), key)
        elif key == "certificateKey":
            put("certificateKey", v.certificate_key(_str(value, at), at), key)
        elif key == "supervise":
            if not isinstance(value, dict) or set(value) - {"interval", "renewBefore", "caWarnBefore"}:
                raise ValidationError(f"{at}: expected a mapping with interval, renewBefore and/or caWarnBefore "
                                      "(e.g. interval: 30s, renewBefore: 90d)")
            for name in ("renewBefore", "caWarnBefore"):
                if name in value:
                    put(name, certrenewal.parse_window(value[name], f"{at}.{name}"), key)
            if "interval" in value:
                secs = parse_duration(value["interval"], what=f"{at}.interval")
                if secs < 1:
                    raise ValidationError(f"{at}.interval: must be at least 1s, got {value['interval']!r}")
                put("superviseInterval", secs, key)
    # Decided on what was parsed: the document's own fields and any embedded kubeadm config.
    token = "token" in out
    trust = any(k in out for k in ("endpoints", "caCertHashes")) or bool(
        out.get("unsafeSkipCAVerification", (False,))[0])
    if "kubeadm" in out:
        t, u = _embedded_sensitive(out["kubeadm"][0], out["kubeadm"][1])
        token, trust = token or t, trust or u
    _check_private(src, host, token=token, trust=trust)
    return out


# --- merging -----------------------------------------------------------------------------

def merge(gathered: Gathered, host: Host) -> Document:
    """Defaults, then every source in order; a later source's field replaces an earlier one's."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for src in [DEFAULTS, *gathered.sources]:
        fields = parse_source(src, host)
        if "kubeadm" in fields or "kubeadmConfigFile" in fields:
            # One embedded configuration at a time: the later source's choice wins whole.
            for k in ("kubeadm", "kubeadmConfigFile"):
                values.pop(k, None)
                origin.pop(k, None)
        for name, (value, where) in fields.items():
            values[name] = value
            origin[name] = where
    return Document(
        role=values.get("role"), token=values.get("token"), endpoints=values.get("endpoints", ()),
        ca_cert_hashes=values.get("caCertHashes", ()),
        unsafe_skip_ca_verification=values.get("unsafeSkipCAVerification", False),
        node_name=values.get("nodeName"), kubeadm=values.get("kubeadm"),
        kubeadm_file=values.get("kubeadmConfigFile"),
        supervise_interval=values.get("superviseInterval", DEFAULT_SUPERVISE_INTERVAL),
        control_plane_join=values.get("controlPlaneJoin", False), certificate_key=values.get("certificateKey"),
        renew_before=values.get("renewBefore", certrenewal.DEFAULT_RENEW_BEFORE),
        ca_warn_before=values.get("caWarnBefore", certrenewal.DEFAULT_CA_WARN_BEFORE),
        origin=origin, looked=gathered.looked_text(),
    )


def load(host: Host) -> tuple[Document, Gathered]:
    g = gather(host)
    return merge(g, host), g


# --- to InitConfig / JoinConfig -------------------------------------------------------------

def _missing(what: str, key: str, expected: str, doc: Document, meta_key: str) -> ValidationError:
    return ValidationError(
        f"no {what}: kbootd looked for `{key}` in {doc.looked}, and for metadata {meta_key}; "
        f"expected {expected}")


def _embedded(doc: Document, host: Host) -> tuple[str, str] | None:
    """(text, where) of the kubeadm configuration, embedded or from kubeadmConfigFile."""
    if doc.kubeadm is not None:
        return doc.kubeadm, doc.origin.get("kubeadm", "kubeadm")
    if doc.kubeadm_file:
        raw = host.read_bytes(doc.kubeadm_file, limit=MAX_INPUT_BYTES)
        if raw is None:
            raise ValidationError(f"{doc.origin.get('kubeadmConfigFile')}: {doc.kubeadm_file}: no such file")
        text = raw.decode("utf-8", errors="replace")
        st = os.stat(host.paths.at(doc.kubeadm_file))
        token, trust = _embedded_sensitive(text, doc.kubeadm_file)
        src = Source(doc.kubeadm_file, doc.kubeadm_file, {}, holds_secret=token or holds_token(text),
                     mode=st.st_mode & 0o7777, uid=st.st_uid)
        _check_private(src, host, token=token, trust=trust)
        return text, doc.kubeadm_file
    return None


def _inject_join(text: str, doc: Document, where: str) -> str:
    """Put the document's discovery settings into the embedded JoinConfiguration before it is checked."""
    import yaml


    docs = load_data(text, where)
    tok = doc.token.full if doc.token else None

    def section(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        """parent[key] as a mapping to fill in; anything else is the operator's to fix."""
        val = parent.get(key) or {}
        if not isinstance(val, dict):
            raise ValidationError(f"{where}: JoinConfiguration.{path}: expected a mapping, got "
                                  f"{type(val).__name__}")
        parent[key] = val
        return val

    for d in docs:
        if not isinstance(d, dict):
            continue
        if d.get("kind") == "JoinConfiguration" and d.get("apiVersion") in (v1beta4.API, "kubeadm.k8s.io/v1beta3"):
            disc = section(d, "discovery", "discovery")
            if tok or doc.endpoints or doc.ca_cert_hashes or doc.unsafe_skip_ca_verification:
                bt = section(disc, "bootstrapToken", "discovery.bootstrapToken")
                if tok:
                    bt["token"] = tok
                    disc["tlsBootstrapToken"] = tok
                if doc.endpoints:
                    bt["apiServerEndpoint"] = doc.endpoints[0]
                if doc.ca_cert_hashes:
                    bt["caCertHashes"] = list(doc.ca_cert_hashes)
                if doc.unsafe_skip_ca_verification:
                    bt["unsafeSkipCAVerification"] = True
            if doc.node_name:
                section(d, "nodeRegistration", "nodeRegistration")["name"] = doc.node_name
        elif (d.get("apiVersion"), d.get("kind")) == (v1alpha1.API, "NodeConfiguration"):
            if tok:
                # The document's token is the one for both jobs, as `token` is in kubeadm.
                d["token"] = d["tlsBootstrapToken"] = tok
                if "discoveryFile" not in d:
                    d["discoveryToken"] = tok
            if doc.endpoints:
                d["discoveryTokenAPIServers"] = list(doc.endpoints)
            if doc.ca_cert_hashes:
                d["discoveryTokenCACertHashes"] = list(doc.ca_cert_hashes)
            if doc.unsafe_skip_ca_verification:
                d["discoveryTokenUnsafeSkipCAVerification"] = True
            if doc.node_name:
                d["nodeName"] = doc.node_name
    return yaml.safe_dump_all(docs, sort_keys=False)


def init_config(doc: Document, host: Host, warn: Warn) -> InitConfig:
    emb = _embedded(doc, host)
    cfg = load_file(emb[1], "init", warn, text=emb[0]) if emb else InitConfig(source="kbootd document")
    if doc.token:
        specs = cfg.bootstrap_tokens or (BootstrapTokenSpec(),)
        cfg = replace(cfg, bootstrap_tokens=(replace(specs[0], token=doc.token), *specs[1:]))
    if doc.node_name:
        cfg = replace(cfg, node=replace(cfg.node, name=doc.node_name))
    if doc.endpoints:
        if len(doc.endpoints) > 1:
            warn(f"{doc.origin['endpoints']}: a control plane uses the first endpoint, "
                 f"{doc.endpoints[0]}, as its controlPlaneEndpoint")
        cfg = replace(cfg, cluster=replace(cfg.cluster, control_plane_endpoint=doc.endpoints[0]))
    if doc.certificate_key:
        # The first control plane uploads the shared certificates with the key the others were given.
        cfg = replace(cfg, certificate_key=doc.certificate_key, upload_certs=True)
    check_init(cfg, doc.origin.get("kubeadm") or "kbootd document")
    return cfg


def join_config(doc: Document, host: Host, warn: Warn) -> JoinConfig:
    emb = _embedded(doc, host)
    if emb:
        text, where = emb
        cfg = load_file(where, "join", warn, text=_inject_join(text, doc, where))
        if len(doc.endpoints) > 1:
            cfg = replace(cfg, api_server_endpoints=doc.endpoints)
    else:
        if doc.token is None:
            raise _missing("bootstrap token for this worker", "token", f"a token of the form {TOKEN_FORMAT}", doc, "kbootd-token")
        if not doc.endpoints:
            raise _missing("API server endpoint for this worker", "endpoint", "host:port of the API "
                           "server, e.g. 10.0.0.10:6443", doc, "kbootd-endpoint")
        if not doc.ca_cert_hashes and not doc.unsafe_skip_ca_verification:
            raise _missing("CA pin for this worker", "caCertHashes", "sha256:<64 hex digits> "
                           "(`kbootd ca generate` prints one), or unsafeSkipCAVerification: true",
                           doc, "kbootd-ca-cert-hash")
        cfg = JoinConfig(
            node=NodeRegistration(name=doc.node_name), discovery_token=doc.token,
            tls_bootstrap_token=doc.token, api_server_endpoints=doc.endpoints,
            ca_cert_hashes=doc.ca_cert_hashes,
            unsafe_skip_ca_verification=doc.unsafe_skip_ca_verification,
            source=doc.origin.get("token", "kbootd document"),
        )
        check_join(cfg, "kbootd document")
    if doc.control_plane_join:
        cp = cfg.control_plane or JoinControlPlane()
        cfg = replace(cfg, control_plane=replace(cp, certificate_key=doc.certificate_key or cp.certificate_key))
    # The daemon waits for its control plane without a deadline; join's discovery retries forever, and a
    # joining control plane waits as long for the shared certificates and a healthy etcd.
    forever = {"discovery": math.inf}
    if cfg.control_plane is not None:
        forever["etcd_api_call"] = math.inf
    return replace(cfg, timeouts=replace(cfg.timeouts, **forever))


def build(doc: Document, host: Host, warn: Warn) -> InitConfig | JoinConfig:
    if doc.role is None:
        raise _missing("role for this node", "role", "control-plane (alias master) or worker "
                       "(alias node)", doc, "kbootd-role")
    if doc.control_plane_join and doc.role != "control-plane":
        raise ValidationError(f"{doc.origin.get('controlPlaneJoin')}: controlPlaneJoin is for role control-plane; "
                              f"this node's role is {doc.role} ({doc.origin.get('role')})")
    if doc.certificate_key and doc.role != "control-plane":
        raise ValidationError(f"{doc.origin.get('certificateKey')}: certificateKey is for control planes only")
    if doc.role == "control-plane" and not doc.control_plane_join:
        return init_config(doc, host, warn)
    return join_config(doc, host, warn)


def fingerprint(doc: Document, host: Host) -> str:
    """Identifies the inputs across restarts. Holds the token id, never the secret."""

    emb = None
    if doc.kubeadm is not None:
        emb = doc.kubeadm
    elif doc.kubeadm_file:
        emb = (host.read_text(doc.kubeadm_file) or "")
    material = {
        "role": doc.role,
        "token_id": doc.token.id if doc.token else None,
        "endpoints": list(doc.endpoints),
        "ca_cert_hashes": list(doc.ca_cert_hashes),
        "unsafe": doc.unsafe_skip_ca_verification,
        "node_name": doc.node_name,
        # Redacted first: an embedded InitConfiguration may list bootstrap tokens.
        "kubeadm": hashlib.sha256(redact(emb).encode()).hexdigest() if emb is not None else None,
    }
    if doc.control_plane_join or doc.certificate_key:  # only then, so older fingerprints stay the same
        material["control_plane_join"] = doc.control_plane_join
        material["certificate_key"] = hashlib.sha256((doc.certificate_key or "").encode()).hexdigest()
    return "sha256:" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
