"""join's discovery: find the cluster and decide to trust its CA (the node trusting the control plane).

Three ways, as kubeadm (cmd/kubeadm/app/discovery/{token,file,https}):

* token + CA pin (the default). Fetch kube-public/cluster-info anonymously over TLS that
  is not verified yet (clusterinfo.py); it must carry `jws-kubeconfig-<token id>`, a
  detached JWS the bootstrap signer made over `data.kubeconfig` with the token *secret*.
  A verifying signature proves the content comes from someone who knows the token. The
  kubeconfig must hold one cluster; its CA bundle must match a --discovery-token-ca-cert-hash
  (any certificate of the bundle against any pin: kubeadm's pubkeypin.Set.CheckAny, so a
  pin of an intermediate passes only if that intermediate is *in* the cluster-info bundle;
  the server's own chain is never consulted). Then cluster-info is fetched again over TLS
  verified against that CA (through kbootd.apiclient) and must be byte-identical. Each
  attempt tries every endpoint in order; the first that succeeds wins.
* token without a pin (--discovery-token-unsafe-skip-ca-verification): the same, minus the
  pin, with the spec's warning. kbootd still makes the verified second fetch (kubeadm
  skips it): it costs one request and catches a server that is not the one the token vouched for.
* file: a local kubeconfig with one cluster (read through ctx.host) or an https:// URL
  fetched with the host's CA bundle (requests' default verification; REQUESTS_CA_BUNDLE
  is honoured); http:// is refused. As kubeadm, the server in the file is then contacted
  over TLS verified against the file's CA (anonymous 403 on cluster-info is fine).

Trust failures raise SecurityError/DiscoveryError (exit 4) at once; everything that may
clear up by waiting (nothing listening, HTTP 5xx, 403/404 before init, no signature for
this token id yet) is retried by kbootd.retry until timeouts.discovery.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbootd import jws
from kbootd.errors import (
    DiscoveryError,
    KbootdError,
    SecurityError,
    TransientError,
    ValidationError,
)
from kbootd.join import clusterinfo
from kbootd.retry import DEFAULT_BACKOFF, REAL_TIME, Backoff, RetryHook, Timing, retry
from kbootd.token import BootstrapToken

PHASE = "discovery"
JWS_PREFIX = "jws-kubeconfig-"
KUBECONFIG_KEY = "kubeconfig"
# ctx.store keys: the product, and the knobs tests, the bench and the daemon may set.
STORE_CLUSTER = "join.cluster"
STORE_BACKOFF = "join.backoff"
STORE_TIMING = "join.timing"
STORE_CA_BUNDLE = "join.ca_bundle"  # requests' `verify` for https discovery; default: the host's bundle
REQUEST_TIMEOUT = 10.0

UNSAFE_WARNING = (
    "--discovery-token-unsafe-skip-ca-verification: the cluster CA is trusted because the token signed "
    "it, without checking its public key against a pin. If an attacker steals a bootstrap token via "
    "some vulnerability, they can use that token (along with network-level access) to impersonate the "
    "control plane to this and other bootstrapping nodes. Pin the CA with "
    "--discovery-token-ca-cert-hash sha256:<hex> (printed by `kbootd init`) to rule this out")

Fetch = Callable[[str], dict[str, Any]]  # endpoint -> cluster-info data
VerifiedFetch = Callable[[str, bytes], dict[str, Any]]  # endpoint, CA bundle -> cluster-info data


@dataclass(frozen=True)
class DiscoveredCluster:
    """What discovery hands to kubelet-start: where the API server is and which CA to trust."""

    server: str
    ca_pem: bytes = field(repr=False)
    via: str  # "token", "file" or "https"
    endpoint: str | None = None  # the endpoint that answered (token discovery)
    ca_pins: tuple[str, ...] = ()  # pins of the bundle's certificates, for messages
    # Credentials carried by a discovery file (kubeadm accepts a client certificate there).
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


# --- validating what was served --------------------------------------------------------------------

def _ca_certs(ca_pem: bytes, where: str) -> list[Any]:
    from kbootd.pki.certs import load_cert_chain_pem

    try:
        return load_cert_chain_pem(ca_pem, f"{where}: certificate-authority-data")
    except ValidationError as e:
        raise DiscoveryError(str(e)) from None


def parse_cluster_kubeconfig(text: str, where: str) -> tuple[Any, list[Any]]:
    """(kbootd.kubeconfig.Kubeconfig, CA certificates) of a kubeconfig with exactly one cluster.

    Anything malformed is a DiscoveryError (exit 4): this is the root of trust being read.
    """
    import yaml

    from kbootd.kubeconfig import parse_kubeconfig

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise DiscoveryError(f"{where}: malformed kubeconfig (not valid YAML)") from None
    clusters = doc.get("clusters") if isinstance(doc, dict) else None
    if not isinstance(clusters, list) or len(clusters) != 1:
        n = len(clusters) if isinstance(clusters, list) else 0
        raise DiscoveryError(f"{where}: malformed kubeconfig: expected exactly one cluster, found {n}")
    try:
        kc = parse_kubeconfig(text, where)
    except ValidationError as e:
        raise DiscoveryError(f"malformed kubeconfig: {e}") from None
    if kc.insecure:
        raise SecurityError(f"{where}: the cluster sets insecure-skip-tls-verify; refusing a root of trust "
                            "that turns verification off")
    if kc.ca_pem is None:
        raise DiscoveryError(f"{where}: malformed kubeconfig: the cluster has no certificate-authority-data")
    return kc, _ca_certs(kc.ca_pem, where)


def check_pins(ca_certs: list[Any], pins: tuple[str, ...], where: str) -> None:
    """Any certificate of the bundle against any pin passes (kubeadm's CheckAny)."""
    from kbootd.pin import matches, pin_of

    found = False
    for cert in ca_certs:
        found |= matches(cert, pins)  # no early exit: each comparison is constant-time anyway
    if not found:
        actual = ", ".join(pin_of(c) for c in ca_certs)
        raise SecurityError(
            f"{where}: the cluster CA matches none of the pinned public keys: the CA's pin is {actual}, "
            f"--discovery-token-ca-cert-hash gave {', '.join(pins)}",
            hint="check the pin printed by `kbootd init` (or `kbootd token create --print-join-command`) on "
                 "the control plane; a different pin means this is not that cluster's CA")


@dataclass(frozen=True)
class TrustedInfo:
    kubeconfig: str  # exactly as served and signed
    server: str
    ca_pem: bytes
    ca_pins: tuple[str, ...]


def signed_kubeconfig(data: dict[str, Any], token: BootstrapToken, where: str) -> str:
    """data.kubeconfig, exactly as served, once its JWS for this token verifies.

    A missing signature is transient (the signer adds it within moments of the token's
    Secret appearing); one that does not verify is final.
    """
    kubeconfig = data.get(KUBECONFIG_KEY)
    signature = data.get(JWS_PREFIX + token.id)
    if not signature:
        raise TransientError(
            f"cluster-info has no signature for token id {token.id!r} yet (the token does not exist yet, "
            "has expired, or lacks the signing usage)",
            hint=f"on the control plane, `kbootd token list` should show {token.id}; create one with "
                 "`kbootd token create`")
    if not isinstance(kubeconfig, str) or not kubeconfig:
        raise DiscoveryError(f"{where}: cluster-info has no {KUBECONFIG_KEY} key: this API server is not "
                             "set up for token discovery")
    if not isinstance(signature, str) or not jws.verify(kubeconfig, signature, token.id, token.secret):
        raise SecurityError(
            f"{where}: the JWS signature of cluster-info for token id {token.id!r} does not verify with this "
            "token's secret: either the token is wrong or the content was tampered with; refusing to trust "
            "this API server")
    return kubeconfig


def validate_cluster_info(data: dict[str, Any], token: BootstrapToken, pins: tuple[str, ...],
                          where: str) -> TrustedInfo:
    """The JWS for this token, then the kubeconfig, then (when pins are given) the CA."""
    from kbootd.pin import pin_of

    kubeconfig = signed_kubeconfig(data, token, where)
    kc, certs = parse_cluster_kubeconfig(kubeconfig, f"{where}: cluster-info")
    if pins:
        check_pins(certs, pins, f"{where}: cluster-info")
    return TrustedInfo(kubeconfig, kc.server, kc.ca_pem or b"", tuple(pin_of(c) for c in certs))


# --- the verified fetch (through kbootd.apiclient) ---------------------------------------------------

def fetch_verified(endpoint: str, ca_pem: bytes, *, timeout: float = REQUEST_TIMEOUT,
                   cert_pem: bytes | None = None, key_pem: bytes | None = None,
                   token: str | None = None) -> dict[str, Any] | None:
    """cluster-info's data over TLS verified against ca_pem; None when access is forbidden (403).

    TLS that does not verify is a SecurityError (final); other failures are transient.
    """
    from kbootd import apiclient

    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    kc = apiclient.KubeConfig(path="cluster-info", server=server, cluster={}, ca_pem=ca_pem,
                              cert_pem=cert_pem, key_pem=key_pem, token=token)
    transport = apiclient.KubernetesTransport(kc, request_timeout=timeout)
    try:
        cm = apiclient.Client(transport, timeout=0).get("ConfigMap", "cluster-info", "kube-public")
    except apiclient.APIError as e:
        if e.forbidden:
            return None
        raise TransientError(str(e)) from None
    finally:
        transport.close()
    if cm is None:
        raise TransientError("cluster-info does not exist yet (HTTP 404)")
    return {str(k): v for k, v in (cm.get("data") or {}).items()}


_warm_lock = threading.Lock()


def warm_up() -> None:
    """Import the kubernetes client now, while waiting, not when the control plane has just appeared.

    Under a lock: the kubernetes package does not survive being imported by several threads at
    once (a partially initialised kubernetes.client), which a process running several joins would do.
    """
    with _warm_lock:
        from kubernetes.client import rest  # noqa: F401

        from kbootd import apiclient  # noqa: F401


# --- token discovery --------------------------------------------------------------------------------

def _verified_or_transient(endpoint: str, ca_pem: bytes) -> dict[str, Any]:
    data = fetch_verified(endpoint, ca_pem)
    if data is None:
        raise TransientError("cluster-info is forbidden over verified TLS (HTTP 403)")
    return data


def token_attempt(endpoints: tuple[str, ...], token: BootstrapToken, pins: tuple[str, ...], *,
                  fetch: Fetch, verified_fetch: VerifiedFetch,
                  say: Callable[[str], None] = lambda _m: None) -> DiscoveredCluster:
    """One attempt: every endpoint in order, the first that yields trusted cluster-info wins."""
    causes: list[str] = []
    hint: str | None = None
    for ep in endpoints:
        url = f"https://{ep}"
        try:
            info = validate_cluster_info(fetch(ep), token, pins, url)
            say(f'Requesting info from "{ep}" again to validate TLS against the pinned public key'
                if pins else f'Requesting info from "{ep}" again over TLS verified against the signed CA')
            try:
                second = verified_fetch(ep, info.ca_pem)
            except SecurityError as e:
                raise SecurityError(
                    f"{url}: the second fetch of cluster-info, over TLS verified against the CA the token "
                    f"vouched for, failed: the server's TLS identity changed between the two fetches "
                    f"(a man in the middle?) or its certificate does not cover {ep}: {e}") from None
            if second.get(KUBECONFIG_KEY) != info.kubeconfig:
                raise SecurityError(f"{url}: the cluster-info served over verified TLS differs from the first, "
                                    "unverified copy; refusing to trust this API server")
            return DiscoveredCluster(server=info.server, ca_pem=info.ca_pem, via="token", endpoint=ep,
                                     ca_pins=info.ca_pins)
        except TransientError as e:
            causes.append(f"{url}: {e}")
            hint = e.hint
    raise TransientError("waiting for " + "; ".join(causes), hint=hint if len(causes) == 1 else None)


def discover_token(endpoints: tuple[str, ...], token: BootstrapToken, pins: tuple[str, ...], *,
                   unsafe: bool, deadline: float, backoff: Backoff = DEFAULT_BACKOFF,
                   timing: Timing = REAL_TIME, on_retry: RetryHook | None = None,
                   fetch: Fetch | None = None, verified_fetch: VerifiedFetch | None = None,
                   say: Callable[[str], None] = lambda _m: None) -> DiscoveredCluster:
    from kbootd.pin import parse_pin

    if not endpoints:
        raise ValidationError("token discovery needs at least one API server endpoint (host:port)")
    pins = tuple(parse_pin(p, f"--discovery-token-ca-cert-hash #{i + 1}") for i, p in enumerate(pins))
    if not pins and not unsafe:
        raise ValidationError("token discovery needs --discovery-token-ca-cert-hash, or "
                              "--discovery-token-unsafe-skip-ca-verification")
    if fetch is None:
        fetch = clusterinfo.fetch_unverified
    if verified_fetch is None:
        warm_up()
        verified_fetch = _verified_or_transient
    say(f"Created cluster-info discovery client, requesting info from {', '.join(map(repr, endpoints))}")
    return retry(lambda: token_attempt(endpoints, token, pins, fetch=fetch, verified_fetch=verified_fetch, say=say),
                 what="discovery", deadline=deadline, backoff=backoff, timing=timing, on_retry=on_retry)


# --- file and HTTPS discovery -----------------------------------------------------------------------

def fetch_https(url: str, *, verify: bool | str = True, timeout: float = REQUEST_TIMEOUT) -> str:
    """The discovery file at an https:// URL, verified with the host's CA bundle (or `verify`)."""
    import requests

    try:
        r = requests.get(url, timeout=(timeout, timeout), verify=verify)
    except requests.exceptions.SSLError as e:
        text = str(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "hostname" in text.lower():
            raise SecurityError(f"{url}: TLS verification with the host's CA bundle failed; refusing the "
                                "discovery file", hint="the server's certificate must chain to a CA this host "
                                                       "trusts (or set REQUESTS_CA_BUNDLE)") from None
        raise TransientError(f"{url}: TLS handshake failed") from None
    except requests.exceptions.RequestException as e:
        reason = "connection refused" if "refused" in str(e).lower() else type(e).__name__
        raise TransientError(f"waiting for {url}: {reason}") from None
    final = [h.url for h in r.history] + [r.url]
    if any(not str(u).startswith("https://") for u in final):
        raise SecurityError(f"{url}: redirected to a plain-HTTP URL; refusing the discovery file")
    if r.status_code == 404 or r.status_code == 429 or r.status_code >= 500:
        raise TransientError(f"waiting for {url}: HTTP {r.status_code}")
    if r.status_code != 200:
        raise DiscoveryError(f"{url}: HTTP {r.status_code}; expected the discovery kubeconfig")
    return r.text


def _read_local(ctx: Any, path: str) -> str:
    text = ctx.host.read_text(path)
    if text is None:
        raise DiscoveryError(f"--discovery-file {path}: no such file")
    return text


def _file_ref(ctx: Any, ref: str | None, base: str, what: str) -> bytes | None:
    if not ref:
        return None
    if base.startswith("https://"):
        raise DiscoveryError(f"{base}: {what} refers to a file ({ref}); a downloaded discovery file must embed "
                             "its data")
    path = ref if ref.startswith("/") else f"{base.rsplit('/', 1)[0] or '/'}/{ref}"
    data = ctx.host.read_bytes(path)
    if data is None:
        raise DiscoveryError(f"{base}: {what} file {path} does not exist")
    return data


def discovered_from_file(ctx: Any, text: str, where: str, via: str) -> DiscoveredCluster:
    """Parse a discovery kubeconfig; file references (CA, client cert/key) are read through ctx.host."""
    import yaml

    from kbootd.kubeconfig import parse_kubeconfig
    from kbootd.pin import pin_of

    try:
        kc = parse_kubeconfig(text, where)
    except ValidationError as e:
        raise DiscoveryError(f"malformed kubeconfig: {e}") from None
    doc = yaml.safe_load(text)
    clusters = doc.get("clusters") or []
    if len(clusters) != 1:
        raise DiscoveryError(f"{where}: malformed kubeconfig: expected exactly one cluster, found {len(clusters)}")
    if kc.insecure:
        raise SecurityError(f"{where}: the cluster sets insecure-skip-tls-verify; refusing a root of trust "
                            "that turns verification off")
    ca_pem = kc.ca_pem or _file_ref(ctx, kc.ca_file, where, "certificate-authority")
    if ca_pem is None:
        raise DiscoveryError(f"{where}: the cluster has no certificate-authority(-data): nothing to trust")
    certs = _ca_certs(ca_pem, where)
    cert = kc.client_cert_pem or _file_ref(ctx, kc.client_cert_file, where, "client-certificate")
    key = kc.client_key_pem or _file_ref(ctx, kc.client_key_file, where, "client-key")
    if (cert is None) != (key is None):
        raise DiscoveryError(f"{where}: user {kc.user_name!r} has a client certificate without its key, or "
                             "the other way round")
    return DiscoveredCluster(server=kc.server.rstrip("/"), ca_pem=ca_pem, via=via,
                             ca_pins=tuple(pin_of(c) for c in certs), client_cert_pem=cert, client_key_pem=key,
                             token=kc.token)


def validate_file_cluster(found: DiscoveredCluster, *, warn: Callable[[str], None],
                          say: Callable[[str], None]) -> None:
    """As kubeadm: reach the file's server over TLS verified with the file's CA (retried by the caller)."""
    say(f'Created cluster-info discovery client, requesting info from "{found.server}"')
    try:
        data = fetch_verified(found.server, found.ca_pem, cert_pem=found.client_cert_pem,
                              key_pem=found.client_key_pem, token=found.token)
    except SecurityError as e:
        raise SecurityError(f"{found.server}: the API server's TLS certificate does not verify against the CA "
                            f"in the discovery file: {e}") from None
    except TransientError as e:
        raise TransientError(f"waiting for {found.server}: {e}") from None
    if data is None:
        say("Could not access the cluster-info ConfigMap for refreshing the cluster-info information, but the "
            "TLS cert is valid so proceeding...")
        return
    try:
        import yaml

        refreshed = yaml.safe_load(data.get(KUBECONFIG_KEY) or "")
        server = ((refreshed or {}).get("clusters") or [{}])[0].get("cluster", {}).get("server")
    except (yaml.YAMLError, AttributeError, IndexError):
        server = None
    if server and server.rstrip("/") != found.server:
        warn(f'the API server endpoint "{found.server}" in use is different from the endpoint "{server}" '
             "in the cluster-info ConfigMap")


def discover_file(ctx: Any, location: str, *, deadline: float, backoff: Backoff, timing: Timing,
                  on_retry: RetryHook | None) -> DiscoveredCluster:
    warn = lambda m: ctx.reporter.warn(PHASE, m)  # noqa: E731
    say = lambda m: ctx.reporter.info(PHASE, m)  # noqa: E731
    if location.lower().startswith("http://"):
        raise SecurityError(f"--discovery-file {location}: refusing a plain-HTTP discovery URL: the cluster CA "
                            "must come over HTTPS (or from a local file)")
    remote = location.lower().startswith("https://")
    if remote:
        warm_up()
        verify = ctx.store.get(STORE_CA_BUNDLE, True)

        def attempt() -> DiscoveredCluster:
            found = discovered_from_file(ctx, fetch_https(location, verify=verify), location, "https")
            validate_file_cluster(found, warn=warn, say=say)
            return found
    else:
        found_local = discovered_from_file(ctx, _read_local(ctx, location), location, "file")
        warm_up()

        def attempt() -> DiscoveredCluster:
            validate_file_cluster(found_local, warn=warn, say=say)
            return found_local

    return retry(attempt, what="discovery", deadline=deadline, backoff=backoff, timing=timing, on_retry=on_retry)


# --- the phase's entry ------------------------------------------------------------------------------

def discover(ctx: Any) -> DiscoveredCluster:
    """Run the configured discovery with its deadline; returns the trusted cluster."""
    cfg = ctx.join
    if cfg is None:
        raise KbootdError("discovery needs a join configuration")
    backoff = ctx.store.get(STORE_BACKOFF) or DEFAULT_BACKOFF
    timing = ctx.store.get(STORE_TIMING) or REAL_TIME
    deadline = cfg.timeouts.discovery

    def on_retry(attempt: int, cause: str, next_in: float) -> None:
        ctx.reporter.retry(PHASE, attempt, cause, next_in)

    if cfg.discovery_file:
        return discover_file(ctx, cfg.discovery_file, deadline=deadline, backoff=backoff, timing=timing,
                             on_retry=on_retry)
    if cfg.discovery_token is None:
        raise ValidationError("join needs discovery: --token (or --discovery-token) with an API server "
                              "endpoint, or --discovery-file")
    if not cfg.ca_cert_hashes and cfg.unsafe_skip_ca_verification:
        ctx.reporter.warn(PHASE, UNSAFE_WARNING)
    found = discover_token(cfg.api_server_endpoints, cfg.discovery_token, cfg.ca_cert_hashes,
                           unsafe=cfg.unsafe_skip_ca_verification, deadline=deadline, backoff=backoff,
                           timing=timing, on_retry=on_retry, say=lambda m: ctx.reporter.info(PHASE, m))
    if not cfg.ca_cert_hashes:
        ctx.reporter.info(PHASE, f"The cluster CA's public-key pin is {', '.join(found.ca_pins)}; pass it as "
                                 "--discovery-token-ca-cert-hash next time")
    return found

