"""Shared by the tests/test_join_*.py files (no tests here): a control plane made by kbootd's own
init cluster phases on the in-repo test API server, join contexts, and small network helpers.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbootd.cluster import admin_client, bootstraptoken, uploadconfig, write_all
from kbootd.config.model import (
    BootstrapTokenSpec,
    InitConfig,
    JoinConfig,
    NodeRegistration,
    Timeouts,
)
from kbootd.context import Context, Seams, make_context
from kbootd.join.retry import Backoff
from kbootd.kubelet import kubelet_configuration, render_yaml
from kbootd.pin import pin_of
from kbootd.report import ConsoleReporter
from kbootd.token import BootstrapToken
from tests.apiserver import TestAPIServer
from tests.preflight_fakes import FakeFacts, healthy_root

TOKEN = "abcdef.0123456789abcdef"
SECRET = TOKEN.split(".")[1]
WRONG_SECRET_TOKEN = "abcdef.0000000000000000"
SOCKET = "unix:///run/containerd/containerd.sock"
NODE = "worker-1"
FAST = Backoff(first=0.02, cap=0.2)


class RawReporter(ConsoleReporter):
    """Keeps every line *before* redaction, so tests can prove a secret was never even formatted."""

    def __init__(self, verbosity: int = 1) -> None:
        super().__init__(verbosity, io.StringIO(), io.StringIO())
        self.raw: list[str] = []
        self.retries: list[tuple[str, int, str, float]] = []
        self._lock = threading.Lock()

    def _print(self, text: str, err: bool = False) -> None:
        with self._lock:
            self.raw.append(text)
            super()._print(text, err)

    def retry(self, phase: str, attempt: int, cause: str, next_in: float) -> None:
        with self._lock:
            self.retries.append((phase, attempt, cause, next_in))
        super().retry(phase, attempt, cause, next_in)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.raw)

    def causes(self) -> list[str]:
        with self._lock:
            return [c for *_, c, _ in self.retries]


def init_control_plane(srv: TestAPIServer, cp_root: Path, *, token: str | None = TOKEN,
                       auto_approve: bool = True) -> Context:
    """kubeadm-init's cluster objects, written by kbootd's own init phases (upload-config, bootstrap-token)."""
    kdir = cp_root / "etc/kubernetes"
    kdir.mkdir(parents=True, exist_ok=True)
    srv.write_kubeconfig(kdir / "admin.conf", "admin")
    srv.write_kubeconfig(kdir / "super-admin.conf", "super-admin")
    specs = (BootstrapTokenSpec(token=BootstrapToken.parse(token)),) if token else ()
    cfg = InitConfig(bootstrap_tokens=specs)
    ctx = make_context(root=str(cp_root), init=cfg, reporter=ConsoleReporter(0, io.StringIO(), io.StringIO()))
    client = admin_client(ctx)
    write_all(client, uploadconfig.kubeadm_config_objects(cfg))
    write_all(client, uploadconfig.kubelet_config_objects(render_yaml(kubelet_configuration(cfg))))
    bootstraptoken.bootstrap_token(ctx)
    if not auto_approve:
        client.delete("ClusterRoleBinding", "kubeadm:node-autoapprove-bootstrap")
    return ctx


def wait_signed(srv: TestAPIServer, token_id: str = "abcdef", timeout: float = 5.0) -> None:
    srv.wait_for(lambda: f"jws-kubeconfig-{token_id}" in
                 ((srv.store.get("configmaps", "cluster-info", "kube-public") or {}).get("data") or {}), timeout)


def join_config(endpoints: tuple[str, ...] = (), *, token: str | None = TOKEN, pins: tuple[str, ...] = (),
                unsafe: bool = False, discovery_file: str | None = None, discovery: float = 10.0,
                tls_bootstrap: float = 10.0, tls_token: str | None = None, node: str = NODE) -> JoinConfig:
    tok = BootstrapToken.parse(token) if token else None
    return JoinConfig(node=NodeRegistration(name=node, cri_socket=SOCKET),
                      discovery_token=None if discovery_file else tok,
                      tls_bootstrap_token=BootstrapToken.parse(tls_token) if tls_token else tok,
                      api_server_endpoints=endpoints, ca_cert_hashes=pins, unsafe_skip_ca_verification=unsafe,
                      discovery_file=discovery_file,
                      timeouts=Timeouts(discovery=discovery, tls_bootstrap=tls_bootstrap, kubernetes_api_call=10))


def pinned(srv: TestAPIServer, **kw: Any) -> JoinConfig:
    return join_config((srv.server_address,), pins=(pin_of(srv.ca_pem),), **kw)


def join_context(root: Path, cfg: JoinConfig, *, dry_run: bool = False, reporter: RawReporter | None = None,
                 backoff: Backoff = FAST) -> Context:
    healthy_root(root)
    return make_context(root=str(root), reporter=reporter or RawReporter(), join=cfg, dry_run=dry_run,
                        ignore_preflight_errors=("all",), seams=Seams(backoff=backoff, preflight_facts=FakeFacts()))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Background:
    """Run fn in a thread; result() re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:
            self.error = e

    def result(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("background call did not finish")
        if self.error is not None:
            raise self.error
        return self.value

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


class SwitchingProxy:
    """A TCP proxy on 127.0.0.1: the first `first` connections go to one port, later ones to another.

    TLS passes through untouched, so the client talks to whichever server it is sent to: the
    man in the middle who lets the first fetch through and answers the second himself.
    """

    def __init__(self, first_port: int, then_port: int, first: int = 1) -> None:
        self.targets = (first_port, then_port)
        self.first = first
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            target = self.targets[0] if self.connections < self.first else self.targets[1]
            self.connections += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
