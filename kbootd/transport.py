"""kbootd's one HTTP(S) client: every request to an API server, a kubelet, etcd or a discovery URL.

    session = Session("https://10.0.0.10:6443", TLS(ca_pem=ca, cert_pem=crt, key_pem=key))
    r = session.request("GET", "/healthz", timeout=10)      # Response(status, headers, body)

What it guarantees, whoever calls it:

* a **total deadline per request**: connecting, the TLS handshake, sending, the headers and
  the body together; every socket operation waits at most for what is left, so a server
  that drips one byte a second cannot stretch a request past its deadline. A caller with
  an overall deadline passes it as `until` (a time.monotonic() value): the request then
  ends at min(now + timeout, until).
* a **body size cap** (`max_body`), checked while reading;
* **no redirects**: a 3xx answer is a SecurityError and nothing is fetched from its
  Location (so a redirect to http:// can never cause a cleartext request);
* TLS from memory: CA certificates from PEM bytes (or a bundle file, or the host's store);
  client certificates are handed to OpenSSL through a *sealed* memfd, read once and
  closed, never a file on disk;
* **errors classified once**: TransientError (refused, reset, timed out, TLS handshake
  failures; HTTP statuses are left to the caller), SecurityError (certificate verification
  failed, a redirect, a plain-HTTP URL not asked for) or ValidationError (CA or client
  credentials that do not load). Messages never carry credentials.
* no proxies from the environment: kbootd talks to its own cluster.

`ssl` and `http.client` are imported lazily: the CLI's light commands import this module's
callers without paying for TLS.
"""

from __future__ import annotations

import fcntl
import io
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kbootd.errors import SecurityError, TransientError, ValidationError

if TYPE_CHECKING:
    import socket
    import ssl

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 32 << 20  # big enough for a list of every Secret of a large cluster
USER_AGENT = "kbootd"


class ResponseTooLarge(TransientError):
    """The answer is larger than the caller's cap; nothing more was read."""


class DeadlineReached(TransientError):
    """The caller's overall deadline (`until`), not the request's own timeout, ended the request.

    Retry loops prefer the cause before it when they report why they gave up: the last
    attempt may start just before the deadline and say nothing about the server.
    """

    deadline_reached = True


class RedirectRefused(SecurityError):
    """The server answered with a redirect; kbootd follows none."""


def warm_up() -> None:
    """Import what a request needs (ssl, http.client) ahead of the first request."""
    import http.client  # noqa: F401
    import ssl  # noqa: F401


# --- TLS ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TLS:
    """How to set up TLS for one server. Key material stays in memory."""

    ca_pem: bytes | None = field(default=None, repr=False)  # trust exactly these CAs
    ca_file: str | None = None  # or a CA bundle on disk (an explicit discovery bundle)
    system_ca: bool = False  # or the host's CA store (HTTPS discovery files)
    cert_pem: bytes | None = field(default=None, repr=False)  # client certificate (chain)
    key_pem: bytes | None = field(default=None, repr=False)
    verify: bool = True  # False: only the first, not-yet-trusted cluster-info fetch
    server_name: str | None = None  # kubeconfig's tls-server-name: SNI and the name checked

    def __post_init__(self) -> None:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if self.verify and not (self.ca_pem or self.ca_file or self.system_ca):
            raise ValueError("verified TLS needs a CA: ca_pem, ca_file or system_ca")


@contextmanager
def sealed_memfd(name: str, data: bytes) -> Iterator[str]:
    """A /proc/self/fd path holding data, for libraries that only take paths; never on disk.

    The memfd is sealed (no write, grow, shrink, further seals) before its path is handed
    out, and closed when the block ends.
    """

    fd = os.memfd_create(f"kbootd-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def ssl_context(tls: TLS) -> ssl.SSLContext:
    """An SSLContext for tls; ValueError/ssl.SSLError when the material does not load."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if tls.system_ca:
            ctx.load_default_certs()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        if tls.ca_file:
            ctx.load_verify_locations(cafile=tls.ca_file)
        if tls.ca_pem:
            ctx.load_verify_locations(cadata=tls.ca_pem.decode("ascii", errors="replace"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # deliberate; see kbootd.join.clusterinfo
    if tls.cert_pem is not None and tls.key_pem is not None:
        # OpenSSL reads the pair once, here; the memfds are gone when this returns.
        with sealed_memfd("cert", tls.cert_pem) as cert, sealed_memfd("key", tls.key_pem) as key:
            ctx.load_cert_chain(cert, key)
    return ctx


# --- a socket that keeps one deadline ---------------------------------------------------------------

class _Deadline:
    """The end of the current request; every blocking call gets only the time left."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.end = float("inf")
        self.budget = 0.0  # the whole request's seconds, for messages
        self.connect_end = float("inf")
        self.by_until = False  # the caller's overall deadline is the nearer one

    def start(self, timeout: float, until: float | None, connect_timeout: float | None = None) -> None:
        now = self.clock()
        self.by_until = until is not None and until < now + timeout
        self.end = min(now + timeout, until if until is not None else float("inf"))
        self.budget = max(self.end - now, 0.0)
        self.connect_end = min(self.end, now + connect_timeout) if connect_timeout is not None else self.end

    def left(self) -> float:
        left = self.end - self.clock()
        if left <= 0:
            raise TimeoutError("deadline reached")
        return left


class _TimedSocket:
    """What http.client needs of a socket (sendall, makefile, close), under a _Deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        # Closed for real once http.client closed it *and* the response stopped reading from
        # it, as socket.makefile's reference counting does (a will-close answer is read after
        # http.client has "closed" its connection).
        self._readers = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.left())
        self.sock.sendall(data)  # since 3.5 the timeout bounds the whole sendall

    def recv_into(self, buf: Any) -> int:
        self.sock.settimeout(self.deadline.left())
        return self.sock.recv_into(buf)

    def makefile(self, mode: str = "rb", *a: Any, **kw: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def release(self) -> None:
        self._readers -= 1
        self._close_if_unused()

    def dropped(self) -> bool:
        """True when the peer closed an idle kept-alive connection (readable with nothing asked)."""

        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self._closed = True
        self._close_if_unused()

    def _close_if_unused(self) -> None:
        if self._closed and self._readers <= 0:
            self.sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _TimedSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        return self._sock.recv_into(buf)

    def close(self) -> None:
        if not self.closed:
            self._sock.release()
        super().close()


# --- requests -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = field(repr=False)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def split_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of "https://host:port[/...]"; IPv6 hosts bracketed in the URL."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    if scheme not in ("https", "http") or not u.hostname:
        raise ValueError(f"{url!r} is not an https:// URL")
    try:
        port = u.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return scheme, u.hostname, port


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Session:
    """Requests to one origin over one kept-alive connection (serialised; safe across threads).

    `cleartext=True` is required for an http:// origin (only the kubelet's loopback
    health endpoint is plain HTTP); an https:// origin needs `tls`.
    """

    def __init__(self, origin: str, tls: TLS | None = None, *, context: ssl.SSLContext | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_body: int = DEFAULT_MAX_BODY,
                 cleartext: bool = False, user_agent: str = USER_AGENT,
                 clock: Callable[[], float] = time.monotonic) -> None:

        self.scheme, self.host, self.port = split_origin(origin)
        self.origin = origin.rstrip("/")
        if self.scheme == "http" and not cleartext:
            raise SecurityError(f"{origin}: refusing a plain-HTTP URL")
        if self.scheme == "https" and context is None:
            if tls is None:
                raise ValueError("an https:// origin needs TLS settings")
            try:
                context = ssl_context(tls)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise ValidationError(f"{self.origin}: the TLS credentials do not load: {_reason(e)}") from None
        self._context = context
        self._server_name = (tls.server_name if tls else None) or self.host
        self.timeout = timeout
        self.max_body = max_body
        self.user_agent = user_agent
        self._deadline = _Deadline(clock)
        self._conn: Any = None
        self._lock = threading.Lock()

    # connection handling
    def _connect(self) -> Any:
        import http.client

        d = self._deadline
        left = min(d.left(), d.connect_end - d.clock())
        if left <= 0:
            raise TimeoutError("connect deadline reached")
        raw = socket.create_connection((self.host, self.port), timeout=left)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: Any = raw
            if self._context is not None:
                # The whole handshake shares one timeout (CPython's do_handshake keeps a deadline).
                raw.settimeout(max(min(d.left(), d.connect_end - d.clock()), 0.001))
                sock = self._context.wrap_socket(raw, server_hostname=self._server_name)
        except BaseException:
            raw.close()
            raise
        conn = http.client.HTTPConnection(self.host, self.port)
        conn.sock = _TimedSocket(sock, self._deadline)  # http.client uses a socket it is given as is
        return conn

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the request
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, *, timeout: float | None = None,
                until: float | None = None, max_body: int | None = None,
                connect_timeout: float | None = None) -> Response:
        """One request; raises TransientError or SecurityError (see the module docstring).

        connect_timeout bounds the TCP connect and TLS handshake alone (so one endpoint
        that drops SYNs does not use up a whole attempt); timeout and until bound everything.
        """
        what = f"{method} {self.origin}{path.split('?')[0]}"
        with self._lock:
            self._deadline.start(self.timeout if timeout is None else timeout, until, connect_timeout)
            try:
                return self._exchange(method, path, body, headers, max_body or self.max_body)
            except BaseException as e:
                self._drop()
                raise _classify(e, what, self._deadline, self.origin) from None

    def _exchange(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None,
                  cap: int) -> Response:
        import http.client

        hdrs = {"User-Agent": self.user_agent, "Accept": "application/json", **(headers or {})}
        reused = self._conn is not None and not self._conn.sock.dropped()
        if not reused:
            self._drop()
            self._conn = self._connect()
        try:
            self._conn.request(method, path, body=body, headers=hdrs)
            resp = self._conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not (reused and method in _IDEMPOTENT):
                raise
            # The server closed the kept-alive connection as we reused it: once more, fresh.
            self._drop()
            self._conn = self._connect()
            self._conn.request(method, path, body=body, headers=hdrs)
            resp = self._conn.getresponse()
        try:
            data = resp.read(cap + 1)
        finally:
            if not resp.isclosed():
                resp.close()  # the body was not read to its end: this connection is done
                self._drop()
        if len(data) > cap:
            raise ResponseTooLarge(f"the answer is larger than {cap} bytes")
        out = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self._drop()
        if 300 <= resp.status < 400:
            where = out.headers.get("location", "")
            raise RedirectRefused(f"HTTP {resp.status} redirect to {where[:200]!r}; kbootd follows no "
                                  "redirect")
        return out


def request(url: str, tls: TLS | None = None, *, method: str = "GET", body: bytes | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
            until: float | None = None, max_body: int = DEFAULT_MAX_BODY, cleartext: bool = False,
            context: ssl.SSLContext | None = None, connect_timeout: float | None = None) -> Response:
    """One request on a fresh connection (see Session.request)."""
    u = urlsplit(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    origin = f"{u.scheme}://{u.netloc}"
    session = Session(origin, tls, context=context, timeout=timeout, max_body=max_body, cleartext=cleartext)
    try:
        return session.request(method, path, body, headers, until=until, connect_timeout=connect_timeout)
    finally:
        session.close()


# --- classifying failures, once -----------------------------------------------------------------------

def _reason(e: BaseException) -> str:
    found = getattr(e, "verify_message", None) or getattr(e, "reason", None) or getattr(e, "strerror", None)
    text = str(found or e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


def _classify(e: BaseException, what: str, deadline: _Deadline, origin: str) -> BaseException:
    import http.client
    import ssl

    if isinstance(e, (SecurityError, TransientError)):
        e.message = f"{what}: {e.message}"
        return e
    if isinstance(e, ssl.SSLCertVerificationError):
        return SecurityError(f"TLS verification of the server at {origin} failed: {_reason(e)}",
                             hint="the server's certificate does not chain to the CA kbootd trusts for it, "
                                  "or does not name the address used")
    if isinstance(e, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        if deadline.by_until:
            return DeadlineReached(f"{what}: no complete answer before the deadline")
        return TransientError(f"{what}: no complete answer within {deadline.budget:.3g} s")
    if isinstance(e, ConnectionRefusedError):
        return TransientError(f"{what}: connection refused")
    if isinstance(e, ssl.SSLError):
        return TransientError(f"{what}: TLS handshake failed: {_reason(e)}")
    if isinstance(e, http.client.HTTPException):
        return TransientError(f"{what}: bad HTTP answer ({type(e).__name__})")
    if isinstance(e, OSError):
        return TransientError(f"{what}: {_reason(e)}")
    return e
