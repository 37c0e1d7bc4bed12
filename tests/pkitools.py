"""Test helpers for certificate lifecycle tests: a control plane's PKI made in a temp root by
kbootd's own init (certs and kubeconfig phases), optionally "some days ago", and a crash
injected at the N-th file write.

    make_pki(root, age=timedelta(days=300))   # certificates issued 300 days ago
    with crash_at_write(3): ...               # the 4th write dies (before or after its rename)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kbootd import hostio, workflow
from kbootd.config.load import load_file
from kbootd.context import make_context
from kbootd.phases import INIT
from kbootd.pki import certs as c
from kbootd.report import RecordingReporter

CFG_TEXT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10}
nodeRegistration: {name: cp-1, criSocket: unix:///run/containerd/containerd.sock}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer: {certSANs: [api.example.test, 192.0.2.7]}
networking: {podSubnet: 10.244.0.0/16}
"""
PKI = "etc/kubernetes/pki"
PAIRS = ("apiserver", "apiserver-kubelet-client", "front-proxy-client", "apiserver-etcd-client",
         "etcd/server", "etcd/peer", "etcd/healthcheck-client")
CAS = ("ca", "front-proxy-ca", "etcd/ca")
KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf")


def cfg():
    return load_file("kubeadm.yaml", "init", print, text=CFG_TEXT)


def make_pki(root: Path, age: timedelta = timedelta(0), monkeypatch=None) -> None:
    """The certs and kubeconfig phases of init, run as if `age` ago."""
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg(), ignore_preflight_errors=("all",))
    saved = c.utcnow
    c.utcnow = lambda: datetime.now(timezone.utc) - age  # type: ignore[assignment]
    try:
        for name in ("certs", "kubeconfig"):
            workflow.run(INIT, ctx, only=name)
    finally:
        c.utcnow = saved  # type: ignore[assignment]


class Crash(BaseException):
    """A kill: BaseException so no `except Exception` in the code under test swallows it."""


@contextmanager
def crash_at_write(n: int, *, before_rename: bool = False) -> Iterator[list[str]]:
    """The n-th (0-based) atomic write dies: after its rename (the file is new, nothing after
    it happened), or before it (a temp file is left, the file is old). Yields the paths written."""
    real = hostio._atomic_write
    written: list[str] = []

    def write(path: Path, data: bytes, mode: int) -> None:
        if len(written) == n:
            written.append(str(path))
            if before_rename:
                tmp = path.with_name(f".{path.name}.kbootd-tmp-99999")
                tmp.write_bytes(data[: len(data) // 2])  # a kill in mid-write leaves a partial temp file
                raise Crash(str(path))
            real(path, data, mode)
            raise Crash(str(path))
        written.append(str(path))
        real(path, data, mode)

    hostio._atomic_write = write  # type: ignore[assignment]
    try:
        yield written
    finally:
        hostio._atomic_write = real  # type: ignore[assignment]
