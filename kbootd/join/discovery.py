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
  verified against that CA (through kbootd.apiclient's transport) and must be byte-identical. Each
  attempt tries every endpoint in order; the first that succeeds wins.
* token without a pin (--discovery-token-unsafe-skip-ca-verification): the same, minus the
  pin, with the spec's warning. kbootd still makes the verified second fetch (kubeadm
  skips it): it costs one request and catches a server that is not the one the token vouched for.
* file: a local kubeconfig with one cluster (read through ctx.host) or an https:// URL
  fetched with the host's CA store (SSL_CERT_FILE and REQUESTS_CA_BUNDLE are honoured),
  at most 1 MiB, following no redirect; http:// is refused. As kubeadm, the server in the file is then contacted
  over TLS verified against the file's CA (anonymous 403 on cluster-info is fine).

Trust failures raise SecurityError/DiscoveryError (exit 4) at once; everything that may
clear up by waiting (nothing listening, HTTP 5xx, 403/404 before init, no signature for
this token id yet) is retried by kbootd.retry until timeouts.discovery, and every request
(kbootd.transport) ends by that deadline too.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbootd import apiclient, jws, kubeconfigfile, transport
from kbootd.errors import (
    DiscoveryError,
    KbootdError,
    SecurityError,
    TransientError,
    ValidationError,
)
from kbootd.join import clusterinfo
from kbootd.pin import matches, parse_pin, pin_of
from kbootd.pki.certs import load_cert_chain_pem
from kbootd.retry import DEFAULT_BACKOFF, REAL_TIME, Backoff, RetryHook, TimeSource, retry
from kbootd.token import BootstrapToken

PHASE = "discovery"
JWS_PREFIX = "jws-kubeconfig-"
KUBECONFIG_KEY = "kubeconfig"
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
    try:
        return load_cert_chain_pem(ca_pem, f"{where}: certificate-authority-data")
    except ValidationError as e:
        raise DiscoveryError(str(e)) from None


def one_cluster_kubeconfig(text: str, where: str) -> Any:
    """A discovery kubeconfig (kbootd.kubeconfigfile.Kubeconfig): exactly one cluster, valid shape and CA.

    Anything malformed is a DiscoveryError (exit 4): this is the root of trust being read.
    """

    try:
        doc = kubeconfigfile.load_document(text, where)
        clusters = doc.get("clusters")
        if clusters is None or isinstance(clusters, list) and len(clusters) != 1:
            raise DiscoveryError(f"{where}: malformed kubeconfig: expected exactly one cluster, "
                                 f"found {len(clusters or [])}")
        kc = kubeconfigfile.from_document(doc, where)
        _ = kc.ca_cert  # a CA that is not a PEM certificate is malformed too
    except ValidationError as e:
        raise DiscoveryError(f"malformed kubeconfig: {e}") from None
    return kc


def parse_cluster_kubeconfig(text: str, where: str) -> tuple[Any, list[Any]]:
    """(kbootd.kubeconfigfile.Kubeconfig, CA certificates) of a kubeconfig with exactly one cluster."""
    kc = one_cluster_kubeconfig(text, where)
    if kc.insecure:
        raise SecurityError(f"{where}: the cluster sets insecure-skip-tls-verify; refusing a root of trust "
                            "that turns verification off")
    if kc.ca_pem is None:
        raise DiscoveryError(f"{where}: malformed kubeconfig: the cluster has no certificate-authority-data")
    return kc, _ca_certs(kc.ca_pem, where)


def check_pins(ca_certs: list[Any], pins: tuple[str, ...], where: str) -> None:
    """Any certificate of the bundle against any pin passes (kubeadm's CheckAny)."""

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

    kubeconfig = signed_kubeconfig(data, token, where)
    kc, certs = parse_cluster_kubeconfig(kubeconfig, f"{where}: cluster-info")
    if pins:
        check_pins(certs, pins, f"{where}: cluster-info")
    return TrustedInfo(kubeconfig, kc.server, kc.ca_pem or b"", tuple(pin_of(c) for c in certs))


# --- the verified fetch (kbootd.transport, with the CA the token vouched for) ------------------------

def fetch_verified(endpoint: str, ca_pem: bytes, *, timeout: float = REQUEST_TIMEOUT,
                   cert_pem: bytes | None = None, key_pem: bytes | None = None,
                   token: str | None = None, until: float | None = None) -> dict[str, Any] | None:
    """cluster-info's data over TLS verified against ca_pem; None when access is forbidden (403).

    TLS that does not verify (or a redirect) is a SecurityError (final); other failures are
    transient. The request ends by min(now + timeout, until).
    """

    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    kc = apiclient.KubeConfig(path="cluster-info", server=server, cluster={}, ca_pem=ca_pem,
                              cert_pem=cert_pem, key_pem=key_pem, token=token)
    api = apiclient.APITransport(kc, request_timeout=timeout)
    try:
        status, body = api.request("GET", clusterinfo.PATH, until=until)
    finally:
        api.close()
    if status == 403:
        return None
    if status == 404:
        raise TransientError("cluster-info does not exist yet (HTTP 404)")
    if status != 200:
        raise TransientError(clusterinfo._status_cause(status, body))
    try:
        cm = json.loads(body)
    except (ValueError, RecursionError):
        raise TransientError("cluster-info answer is not JSON") from None
    data = cm.get("data") if isinstance(cm, dict) else None
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


_warm_lock = threading.Lock()


def warm_up() -> None:
    """Import TLS (the ssl stack kbootd.transport loads on first use) now, while waiting, not
    when the control plane has just appeared.

    Under a lock: imports from several threads at once (a process running several joins)
    must not see a partially initialised module.
    """
    with _warm_lock:
        transport.warm_up()


def request_deadline(deadline: float) -> float | None:
    """The time.monotonic() by which every discovery request must end: the discovery deadline
    bounds each attempt too, so a server that drips bytes cannot keep join past it."""
    return None if math.isinf(deadline) else time.monotonic() + max(deadline, 0.0)


# --- token discovery --------------------------------------------------------------------------------

def _verified_or_transient(endpoint: str, ca_pem: bytes, until: float | None = None) -> dict[str, Any]:
    data = fetch_verified(endpoint, ca_pem, until=until)
    if data is None:
        raise TransientError("cluster-info is forbidden over verified TLS (HTTP 403)")
    return data


def token_attempt(endpoints: tuple[str, ...], token: BootstrapToken, pins: tuple[str, ...], *,
                  fetch: Fetch, verified_fetch: VerifiedFetch,
                  say: Callable[[str], None] = lambda _m: None) -> DiscoveredCluster:
    """One attempt: every endpoint in order, the first that yields trusted cluster-info wins."""
    causes: list[str] = []
    hint: str | None = None
    cut_short = True  # every endpoint failed only because the overall deadline came
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
            cut_short &= bool(getattr(e, "deadline_reached", False))
    err = TransientError("waiting for " + "; ".join(causes), hint=hint if len(causes) == 1 else None)
    err.deadline_reached = cut_short  # type: ignore[attr-defined]
    raise err


def discover_token(endpoints: tuple[str, ...], token: BootstrapToken, pins: tuple[str, ...], *,
                   unsafe: bool, deadline: float, backoff: Backoff = DEFAULT_BACKOFF,
                   timing: TimeSource = REAL_TIME, on_retry: RetryHook | None = None,
                   fetch: Fetch | None = None, verified_fetch: VerifiedFetch | None = None,
                   say: Callable[[str], None] = lambda _m: None) -> DiscoveredCluster:
    """Token discovery until `deadline` seconds from now; each request also ends by then."""

    if not endpoints:
        raise ValidationError("token discovery needs at least one API server endpoint (host:port)")
    pins = tuple(parse_pin(p, f"--discovery-token-ca-cert-hash #{i + 1}") for i, p in enumerate(pins))
    if not pins and not unsafe:
        raise ValidationError("token discovery needs --discovery-token-ca-cert-hash, or "
                              "--discovery-token-unsafe-skip-ca-verification")
    until = request_deadline(deadline)
    if fetch is None:
        fetch = functools.partial(clusterinfo.fetch_unverified, until=until)
    if verified_fetch is None:
        warm_up()
        verified_fetch = functools.partial(_verified_or_transient, until=until)
    say(f"Created cluster-info discovery client, requesting info from {', '.join(map(repr, endpoints))}")
    return retry(lambda: token_attempt(endpoints, token, pins, fetch=fetch, verified_fetch=verified_fetch, say=say),
                 what="discovery", deadline=deadline, backoff=backoff, timing=timing, on_retry=on_retry)


# --- file and HTTPS discovery -----------------------------------------------------------------------

MAX_FILE = 1 << 20  # a discovery kubeconfig is a few KiB


def fetch_https(url: str, *, verify: bool | str = True, timeout: float = REQUEST_TIMEOUT,
                until: float | None = None) -> str:
    """The discovery file at an https:// URL, verified with the host's CA store (or the bundle `verify`).

    No redirect is followed (a SecurityError, so http:// is never reached); at most MAX_FILE bytes.
    """

    bundle = verify if isinstance(verify, str) else os.environ.get("REQUESTS_CA_BUNDLE") or None
    tls = transport.TLS(ca_file=bundle, system_ca=bundle is None)
    try:
        r = transport.request(url, tls, timeout=timeout, until=until, max_body=MAX_FILE)
    except transport.ResponseTooLarge:
        raise DiscoveryError(f"{url}: the discovery file is larger than {MAX_FILE} bytes") from None
    except transport.RedirectRefused as e:
        raise SecurityError(f"{url}: refusing the discovery file: {e}") from None
    except SecurityError as e:
        raise SecurityError(f"{url}: TLS verification with the host's CA bundle failed; refusing the "
                            f"discovery file ({e})", hint="the server's certificate must chain to a CA this "
                                                          "host trusts (or set REQUESTS_CA_BUNDLE)") from None
    except TransientError as e:
        raise type(e)(f"waiting for {url}: {str(e).split(': ', 1)[-1]}") from None
    if r.status == 404 or r.status == 429 or r.status >= 500:
        raise TransientError(f"waiting for {url}: HTTP {r.status}")
    if r.status != 200:
        raise DiscoveryError(f"{url}: HTTP {r.status}; expected the discovery kubeconfig")
    return r.text()


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

    kc = one_cluster_kubeconfig(text, where)
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
                          say: Callable[[str], None], until: float | None = None) -> None:
    """As kubeadm: reach the file's server over TLS verified with the file's CA (retried by the caller)."""

    say(f'Created cluster-info discovery client, requesting info from "{found.server}"')
    try:
        data = fetch_verified(found.server, found.ca_pem, cert_pem=found.client_cert_pem,
                              key_pem=found.client_key_pem, token=found.token, until=until)
    except SecurityError as e:
        raise SecurityError(f"{found.server}: the API server's TLS certificate does not verify against the CA "
                            f"in the discovery file: {e}") from None
    except TransientError as e:
        err = TransientError(f"waiting for {found.server}: {e}", hint=e.hint)
        err.deadline_reached = getattr(e, "deadline_reached", False)  # type: ignore[attr-defined]
        raise err from None
    if data is None:
        say("Could not access the cluster-info ConfigMap for refreshing the cluster-info information, but the "
            "TLS cert is valid so proceeding...")
        return
    try:
        server: str | None = kubeconfigfile.parse(str(data.get(KUBECONFIG_KEY) or ""), "cluster-info").server
    except ValidationError:
        server = None
    if server and server.rstrip("/") != found.server:
        warn(f'the API server endpoint "{found.server}" in use is different from the endpoint "{server}" '
             "in the cluster-info ConfigMap")


def discover_file(ctx: Any, location: str, *, deadline: float, backoff: Backoff, timing: TimeSource,
                  on_retry: RetryHook | None) -> DiscoveredCluster:
    warn = lambda m: ctx.reporter.warn(PHASE, m)  # noqa: E731
    say = lambda m: ctx.reporter.info(PHASE, m)  # noqa: E731
    if location.lower().startswith("http://"):
        raise SecurityError(f"--discovery-file {location}: refusing a plain-HTTP discovery URL: the cluster CA "
                            "must come over HTTPS (or from a local file)")
    remote = location.lower().startswith("https://")
    until = request_deadline(deadline)
    if remote:
        warm_up()
        verify = ctx.seams.ca_bundle

        def attempt() -> DiscoveredCluster:
            found = discovered_from_file(ctx, fetch_https(location, verify=verify, until=until), location, "https")
            validate_file_cluster(found, warn=warn, say=say, until=until)
            return found
    else:
        found_local = discovered_from_file(ctx, _read_local(ctx, location), location, "file")
        warm_up()

        def attempt() -> DiscoveredCluster:
            validate_file_cluster(found_local, warn=warn, say=say, until=until)
            return found_local

    return retry(attempt, what="discovery", deadline=deadline, backoff=backoff, timing=timing, on_retry=on_retry)


# --- the phase's entry ------------------------------------------------------------------------------

def discover(ctx: Any) -> DiscoveredCluster:
    """Run the configured discovery with its deadline; returns the trusted cluster."""
    cfg = ctx.join
    if cfg is None:
        raise KbootdError("discovery needs a join configuration")
    backoff = ctx.seams.backoff or DEFAULT_BACKOFF
    timing = ctx.seams
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

