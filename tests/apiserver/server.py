"""TestAPIServer: an HTTPS kube-apiserver stand-in for tests, in-process or as a process.

    with TestAPIServer() as srv:                       # own CA, serving cert, ephemeral port
        kubeadm.seed_init(srv)                          # the objects `kubeadm init` leaves behind
        client = srv.api_client("admin")               # kubernetes.client.ApiClient over TLS
        srv.faults.fail_next(2, status=503)            # the next two requests get a 503
        srv.faults.after_write(3)                       # the 3rd write is applied, its answer lost
        srv.clock.advance(3600)                        # tokens expire, controllers notice
        srv.store.get("configmaps", "cluster-info", "kube-public")

With `cert_dir` it serves apiserver.crt/.key and trusts ca.crt from a kubeadm-layout directory.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tests.apiserver import bootstrap, discovery, pki
from tests.apiserver.admission import AdmissionChain
from tests.apiserver.auth import Authenticator, User
from tests.apiserver.clock import Clock
from tests.apiserver.controllers import ControllerManager
from tests.apiserver.handler import Handler
from tests.apiserver.health import ENDPOINTS, Health
from tests.apiserver.rbac import MASTERS, Authorizer
from tests.apiserver.store import Store

T = TypeVar("T")

# Identities as kubeadm writes them into kubeconfig files.
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("kubernetes-admin", ("kubeadm:cluster-admins",)),
    "super-admin": ("kubernetes-super-admin", (MASTERS,)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
}


def identity(who: str) -> tuple[str, tuple[str, ...]]:
    """(CN, O) for "admin", "super-admin", "node:<name>", or a CN given as is."""
    if who in IDENTITIES:
        return IDENTITIES[who]
    if who.startswith("node:"):
        return f"system:node:{who[5:]}", ("system:nodes",)
    return who, ()


@dataclass
class Fault:
    remaining: int
    method: str | None = None
    path: str | None = None
    status: int = 0
    drop: bool = False
    delay: float = 0.0
    retry_after: int | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


@dataclass
class WriteFault:
    """A write that is applied but whose answer is lost (see Faults.after_write)."""

    nth: int
    method: str | None = None
    path: str | None = None
    status: int = 0
    message: str | None = None
    seen: int = 0
    request: str = ""  # "METHOD path" of the write it hit
    fired: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


class Faults:
    """Failures for the next requests (checked before authentication, like a flaky load balancer),
    and lost answers after writes (checked once the store has applied the write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._after_write: list[WriteFault] = []
        self.writes = 0  # writes applied through HTTP (POST, PUT, PATCH, DELETE; not dry-run)

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._queue.append(fault)
        return fault

    def fail_next(self, count: int = 1, status: int = 503, *, method: str | None = None, path: str | None = None,
                  retry_after: int | None = None, message: str | None = None) -> Fault:
        """Answer the next `count` matching requests with a Status error of this code."""
        return self._add(Fault(count, method, path, status=status, retry_after=retry_after, message=message))

    def drop_next(self, count: int = 1, *, method: str | None = None, path: str | None = None) -> Fault:
        """Close the connection of the next `count` matching requests without an answer."""
        return self._add(Fault(count, method, path, drop=True))

    def delay_next(self, count: int, seconds: float, *, method: str | None = None, path: str | None = None) -> Fault:
        """Hold the next `count` matching requests for `seconds` before answering them normally."""
        return self._add(Fault(count, method, path, delay=seconds))

    def after_write(self, nth: int = 1, *, status: int = 0, method: str | None = None, path: str | None = None,
                    message: str | None = None) -> WriteFault:
        """The `nth` matching write from now on is applied, then its answer is lost.

        By default the connection is closed without an answer (the client cannot tell whether the
        write happened); with `status`, an error Status of that code is sent instead. The request is
        logged with status 0 (or that code), and `fired` is set before the client can see anything,
        so a test can turn the lost answer into a crash of the client process at that write.
        """
        if nth < 1:
            raise ValueError("nth counts from 1")
        fault = WriteFault(nth, method, path, status=status, message=message)
        with self._lock:
            self._after_write.append(fault)
        return fault

    def applied_write(self, method: str, path: str) -> WriteFault | None:
        """Called by the handler for every write the store applied: the fault that takes its answer, if any."""
        with self._lock:
            self.writes += 1
            hit = None
            for f in self._after_write:
                if f.matches(method, path):
                    f.seen += 1
                    if f.seen == f.nth and hit is None:
                        hit = f
            if hit is not None:
                self._after_write.remove(hit)
                hit.request = f"{method} {path}"
            return hit

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._after_write.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._queue) + len(self._after_write)

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self._queue:
                if f.remaining > 0 and f.matches(method, path):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._queue.remove(f)
                    return f
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One request, logged before its answer is sent (status 0: it got none), so a client that has
    its answer always finds its request in `srv.requests`."""

    method: str
    path: str
    query: str
    user: str
    status: int
    seconds: float
    verb: str


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], api: TestAPIServer, context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        self.context = context
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.context is None:
            return sock, addr
        # The handshake runs in the connection's thread (Handler.setup), not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(sock)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # handshake failures and resets are the clients' business, not test noise


class TestAPIServer:
    """An HTTPS server that answers like kube-apiserver v1.32 for the API kbootd uses."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        *,
        cert_dir: str | Path | None = None,
        bind: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        version: Mapping[str, str] | None = None,
        static_tokens: Mapping[str, User] | None = None,
        controllers: bool = True,
        token_cleaner: bool = True,
        service_cidr: str = "10.96.0.0/12",
        hosts: Iterable[str] = (),
        signing_duration: timedelta = pki.LEAF_VALIDITY,
        tls: bool = True,
    ) -> None:
        self.bind = bind
        self.requested_port = port
        self.clock = clock or Clock()
        self.version = dict(version or discovery.DEFAULT_VERSION)
        self.store = Store(self.clock, service_cidr)
        self.authenticator = Authenticator(self.store, self.clock, static_tokens)
        self.authorizer = Authorizer(self.store)
        self.admission = AdmissionChain(self.authorizer)
        self.health = Health()
        self.faults = Faults()
        self.requests: deque[RequestRecord] = deque(maxlen=10000)
        self.internal_errors: list[str] = []
        self.stopping = False
        self._tls = tls
        self._workdir = Path(tempfile.mkdtemp(prefix="kbootd-test-apiserver-"))
        self._cert_dir = Path(cert_dir) if cert_dir else None
        self._hosts = list(hosts)
        self.ca = self._load_or_make_ca()
        self.controllers = ControllerManager(self.store, self.authorizer, self.ca, token_cleaner=token_cleaner,
                                             signing_duration=signing_duration)
        self._run_controllers = controllers
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._flow_uids = {k: (str(uuid.uuid4()), str(uuid.uuid4())) for k in ("exempt", "global-default")}
        for obj in bootstrap.system_objects():
            self.store.create(obj, manager=bootstrap.MANAGER)

    # --- certificates ----------------------------------------------------------------------------

    def _load_or_make_ca(self) -> pki.CertificateAuthority:
        if self._cert_dir is not None:
            return pki.CertificateAuthority.load(self._cert_dir / "ca.crt", self._cert_dir / "ca.key")
        # TLS material follows real time (OpenSSL checks it), whatever the test clock says.
        return pki.CertificateAuthority.generate()

    def _serving_files(self) -> tuple[Path, Path]:
        if self._cert_dir is not None and (self._cert_dir / "apiserver.crt").exists():
            return self._cert_dir / "apiserver.crt", self._cert_dir / "apiserver.key"
        hosts = ["127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local", "10.96.0.1", *self._hosts]
        if self.bind not in ("0.0.0.0", "::", ""):
            hosts.append(self.bind)
        issued = self.ca.issue_serving(hosts)
        crt, key = self._workdir / "apiserver.crt", self._workdir / "apiserver.key"
        crt.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        key.chmod(0o600)
        return crt, key

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pem

    @property
    def ca_file(self) -> Path:
        path = self._workdir / "ca.crt"
        if not path.exists():
            path.write_bytes(self.ca_pem)
        return path

    def issue_client_cert(self, who: str = "admin", orgs: Iterable[str] | None = None) -> pki.Issued:
        """A client certificate from the cluster CA: "admin", "super-admin", "node:<name>" or a CN."""
        cn, default_orgs = identity(who)
        return self.ca.issue_client(cn, tuple(orgs) if orgs is not None else default_orgs)

    # --- lifecycle -------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        crt, key = self._serving_files()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(crt, key)
        ctx.load_verify_locations(cadata=self.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL  # client certs are one way to authenticate, not required
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def start(self) -> TestAPIServer:
        if self._httpd is not None:
            return self
        self.stopping = False
        context = self._ssl_context() if self._tls else None
        self._httpd = _TLSServer((self.bind, self.requested_port), self, context)
        # A restart (stop, then start) comes back on the same port, so clients keep their URL.
        self.requested_port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-apiserver", daemon=True)
        self._thread.start()
        if self._run_controllers:
            self.controllers.start()
        return self

    def stop(self) -> None:
        """Stop serving (open connections are cut); the store is kept, so start() resumes it."""
        self.stopping = True
        self.controllers.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> TestAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return self._httpd.server_address[1]

    @property
    def host(self) -> str:
        if self.bind in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.bind == "::":
            return "::1"
        return self.bind

    @property
    def server_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.server_address}"

    # --- controls --------------------------------------------------------------------------------

    def set_ready(self, ready: bool = True, checks: Iterable[str] = ("etcd",)) -> None:
        """Make /readyz and /healthz fail (HTTP 500, `[-]<check> failed`) until set ready again."""
        self.health.set_failing(("readyz", "healthz"), () if ready else checks)

    def set_live(self, live: bool = True, checks: Iterable[str] = ("etcd",)) -> None:
        self.health.set_failing(("livez",), () if live else checks)

    def set_failing_checks(self, endpoint: str, checks: Iterable[str]) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown health endpoint {endpoint!r}")
        self.health.set_failing((endpoint,), checks)

    def flow_schema_uids(self, user: User) -> tuple[str, str]:
        return self._flow_uids["exempt" if MASTERS in user.groups else "global-default"]

    def record(self, method: str, path: str, query: str, user: User | None, status: int, seconds: float,
               verb: str) -> None:
        self.requests.append(RequestRecord(method, path, query, user.name if user else "", status, seconds, verb))

    @property
    def writes(self) -> int:
        """Writes applied through HTTP so far (what `faults.after_write(nth)` counts)."""
        return self.faults.writes

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the controllers have seen the current state and have nothing left to do."""
        self.controllers.settle(timeout)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
        """Poll until predicate() is truthy; returns its value, or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)

    # --- client side helpers -------------------------------------------------------------------

    def kubeconfig(self, who: str = "admin", *, token: str | None = None, server: str | None = None) -> dict[str, Any]:
        """A kubeconfig for an identity (client cert from the CA) or for a bearer token."""
        server = server or self.url
        if token is not None:
            return pki.kubeconfig(server, self.ca_pem, who if who != "admin" else "tls-bootstrap-token-user",
                                  token=token)
        issued = self.issue_client_cert(who)
        cn, _ = identity(who)
        return pki.kubeconfig(server, self.ca_pem, cn, cert=issued.cert_pem, key=issued.key_pem)

    def write_kubeconfig(self, path: str | Path, who: str = "admin", *, token: str | None = None,
                         server: str | None = None) -> Path:
        return pki.write_kubeconfig(Path(path), self.kubeconfig(who, token=token, server=server))

    def api_client(self, who: str | None = "admin", *, token: str | None = None, user_agent: str | None = None) -> Any:
        """A kubernetes.client.ApiClient for an identity, a bearer token, or nobody (who=None)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = str(self.ca_file)
        cfg.verify_ssl = True
        if token is not None:
            cfg.api_key = {"authorization": f"Bearer {token}"}
        elif who is not None:
            issued = self.issue_client_cert(who)
            d = self._workdir / "clients" / uuid.uuid4().hex
            d.mkdir(parents=True)
            (d / "tls.crt").write_bytes(issued.cert_pem)
            (d / "tls.key").write_bytes(issued.key_pem)
            cfg.cert_file, cfg.key_file = str(d / "tls.crt"), str(d / "tls.key")
        api = client.ApiClient(cfg)
        if user_agent:
            api.user_agent = user_agent
        return api
