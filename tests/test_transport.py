"""kbootd.transport against real servers on 127.0.0.1: deadlines (slow-drip headers and bodies),
the body cap, refused redirects, TLS from memory, client certificates via a sealed memfd, and
the transient/security classification."""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kbootd import transport
from kbootd.errors import SecurityError, TransientError
from kbootd.transport import TLS, RedirectRefused, ResponseTooLarge, Session


def _cert(cn: str, key, issuer_cn: str, signer, *, ca: bool) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class PKI:
    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_pem = _cert("test-ca", self.ca_key, "test-ca", self.ca_key, ca=True)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_pem = _cert("server", self.server_key, "test-ca", self.ca_key, ca=False)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client_pem = _cert("kubernetes-admin", self.client_key, "test-ca", self.ca_key, ca=False)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


Behaviour = Callable[[socket.socket, bytes], None]  # (connection, request head) -> answer


class RawServer:
    """A TLS (or plain) server whose answers are scripted at the byte level."""

    def __init__(self, behaviour: Behaviour, pki: PKI | None, tmp: Path, *, client_certs: bool = False) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.peers: list[str | None] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ctx = None
        if pki is not None:
            (tmp / "srv.pem").write_bytes(pki.server_pem + _key_pem(pki.server_key))
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tmp / "srv.pem")
            if client_certs:
                self.ctx.load_verify_locations(cadata=pki.ca_pem.decode())
                self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            if self.ctx is not None:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                cert = conn.getpeercert()
                self.peers.append(dict(x[0] for x in cert["subject"])["commonName"] if cert else None)
            while not self.stop.is_set():
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.behaviour(conn, head)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def serve(tmp_path):
    servers: list[RawServer] = []

    def make(behaviour: Behaviour, pki: PKI | None = None, **kw) -> RawServer:
        s = RawServer(behaviour, pki, tmp_path, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def ok(body: bytes = b"ok", extra: bytes = b"") -> Behaviour:
    def answer(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body)
    return answer


def drip(prefix: bytes, byte: bytes, every: float) -> Behaviour:
    """Sends prefix, then one byte every `every` seconds, forever: each read is quick, the whole never ends."""
    def answer(conn: socket.socket, head: bytes) -> None:
        conn.sendall(prefix)
        while True:
            time.sleep(every)
            conn.sendall(byte)
    return answer


# --- deadlines ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix,byte", [
    (b"HTTP/1.1 200 OK\r\n", b"X"),  # headers that never end
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x"),  # a body that never ends
], ids=["headers", "body"])
def test_a_dripping_server_cannot_outlast_the_request_deadline(serve, pki, prefix, byte):
    srv = serve(drip(prefix, byte, 0.05), pki)
    start = time.monotonic()
    with pytest.raises(TransientError, match="no complete answer within 0.8 s"):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), timeout=0.8)
    assert time.monotonic() - start < 1.5  # each byte came within 0.05 s: only a total deadline ends it


def test_until_bounds_a_request_with_a_longer_timeout(serve, pki):
    srv = serve(drip(b"HTTP/1.1 200 OK\r\n", b"X", 0.05), pki)
    start = time.monotonic()
    with pytest.raises(TransientError):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), timeout=30, until=time.monotonic() + 0.5)
    assert time.monotonic() - start < 1.2


def test_a_server_that_never_answers_times_out(serve):
    srv = serve(lambda conn, head: time.sleep(5))
    with pytest.raises(TransientError, match="no complete answer"):
        transport.request(srv.url + "/healthz", timeout=0.3, cleartext=True)


def test_a_deadline_already_passed_sends_nothing(serve, pki):
    srv = serve(ok(), pki)
    with pytest.raises(TransientError):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), until=time.monotonic() - 1)
    assert srv.connections == 0


# --- size, redirects, plain HTTP ------------------------------------------------------------------------

def test_the_body_cap_stops_reading(serve, pki):
    srv = serve(ok(b"a" * 300_000), pki)
    with pytest.raises(ResponseTooLarge, match="larger than 100000 bytes"):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), max_body=100_000)
    assert transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), max_body=300_000).body == b"a" * 300_000


def test_chunked_bodies_are_capped_too(serve, pki):
    def chunked(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(50):
            conn.sendall(b"1000\r\n" + b"b" * 0x1000 + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
    srv = serve(chunked, pki)
    with pytest.raises(ResponseTooLarge):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem), max_body=10_000)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_redirects_are_refused_and_never_followed(serve, pki, scheme):
    target = serve(ok(b"secret stuff"), pki if scheme == "https" else None)
    srv = serve(ok(b"", b"Location: %s/elsewhere\r\n" % target.url.encode()), pki)
    srv.behaviour = lambda conn, head: conn.sendall(
        b"HTTP/1.1 302 Found\r\nLocation: " + target.url.encode() + b"/elsewhere\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(RedirectRefused, match="follows no redirect") as e:
        transport.request(srv.url + "/discovery.yaml", TLS(system_ca=True, ca_pem=pki.ca_pem))
    assert isinstance(e.value, SecurityError)
    assert target.connections == 0  # nothing, and certainly nothing in cleartext, went to the Location


def test_plain_http_needs_an_explicit_cleartext(serve):
    srv = serve(ok())
    with pytest.raises(SecurityError, match="plain-HTTP"):
        transport.request(srv.url + "/healthz")
    assert srv.connections == 0
    assert transport.request(srv.url + "/healthz", cleartext=True).text() == "ok"


# --- TLS -----------------------------------------------------------------------------------------------

def test_the_wrong_ca_is_a_security_error(serve, pki):
    srv = serve(ok(), pki)
    other = PKI()
    with pytest.raises(SecurityError, match="TLS verification of the server at"):
        transport.request(srv.url + "/x", TLS(ca_pem=other.ca_pem))


def test_tls_server_name_is_the_name_checked(serve, pki):
    srv = serve(ok(), pki)
    with pytest.raises(SecurityError, match="TLS verification"):
        transport.request(srv.url + "/x", TLS(ca_pem=pki.ca_pem, server_name="kubernetes.default"))


def test_unverified_tls_is_only_what_was_asked(serve, pki):
    srv = serve(ok(b"{}"), pki)
    assert transport.request(srv.url + "/x", TLS(verify=False)).status == 200
    with pytest.raises(ValueError):
        TLS()  # verified TLS without any CA is a programming error, not a silent default


def test_refused_and_reset_are_transient(serve, pki):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TransientError, match="connection refused"):
        transport.request(f"https://127.0.0.1:{port}/x", TLS(ca_pem=pki.ca_pem))
    srv = serve(lambda conn, head: conn.close())
    srv.ctx = None
    with pytest.raises(TransientError):
        transport.request(srv.url + "/x", cleartext=True)


def test_a_server_that_never_finishes_the_tls_handshake_is_transient_and_bounded(serve, pki):
    srv = serve(ok())  # speaks no TLS: waits for an HTTP request that never comes
    start = time.monotonic()
    with pytest.raises(TransientError, match="TLS handshake failed|no complete answer"):
        transport.request(srv.url.replace("http://", "https://") + "/x", TLS(ca_pem=pki.ca_pem), timeout=1)
    assert time.monotonic() - start < 2


def test_credentials_that_do_not_load_are_invalid_input(pki):
    from kbootd.errors import ValidationError

    with pytest.raises(ValidationError, match="TLS credentials do not load"):
        Session("https://127.0.0.1:1", TLS(ca_pem=b"not a certificate"))
    with pytest.raises(ValidationError, match="TLS credentials do not load"):
        Session("https://127.0.0.1:1", TLS(ca_pem=pki.ca_pem, cert_pem=pki.client_pem, key_pem=b"garbage"))


def test_client_certificate_from_memory(serve, pki):
    srv = serve(ok(), pki, client_certs=True)
    tls = TLS(ca_pem=pki.ca_pem, cert_pem=pki.client_pem, key_pem=_key_pem(pki.client_key))
    before = set(os.listdir("/proc/self/fd"))
    with Session(srv.url, tls) as s:
        assert s.request("GET", "/x").status == 200
    assert srv.peers == ["kubernetes-admin"]
    # The memfds that carried the key to OpenSSL are gone once the context is built.
    leftover = []
    for fd in set(os.listdir("/proc/self/fd")) - before:
        try:  # other threads (the test server's) open and close descriptors meanwhile
            leftover.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass
    assert not any("kbootd-" in link for link in leftover)


def test_sealed_memfd_cannot_be_changed():
    with transport.sealed_memfd("key", b"KEY MATERIAL") as path:
        assert path.startswith("/proc/self/fd/")
        fd = int(path.rsplit("/", 1)[1])
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        want = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        assert seals & want == want
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
        with open(path, "rb") as f:
            assert f.read() == b"KEY MATERIAL"
        assert "memfd:kbootd-key" in os.readlink(path)
    assert not os.path.exists(path) or "kbootd-key" not in os.readlink(path)


# --- keep-alive --------------------------------------------------------------------------------------

def test_a_session_reuses_its_connection_and_reconnects_when_dropped(serve, pki):
    srv = serve(ok(), pki)
    with Session(srv.url, TLS(ca_pem=pki.ca_pem)) as s:
        for _ in range(3):
            assert s.request("GET", "/x").body == b"ok"
        assert srv.connections == 1
        # A server that closes after each answer: the next request connects again.
        srv.behaviour = ok(b"bye", b"Connection: close\r\n")
        assert s.request("GET", "/x").body == b"bye"
        assert s.request("GET", "/x").body == b"bye"
        assert srv.connections == 2
