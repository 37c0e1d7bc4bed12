"""Certificate renewal under a real SIGKILL (tests/crashkit.py: a forked run killed right after
each write of the I/O layer, or just before each rename): `kbootd certs renew all` and the
supervisor's pass on a cluster made "a year ago". After every kill each key still matches its
certificate, no CA or key changed, and the next run completes the renewal and cleans up."""

from __future__ import annotations

import contextlib
import io
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kbootd import kubeconfigfile
from kbootd.cli.main import main
from kbootd.daemon.certrenewal import CertWatch
from kbootd.daemon.journal import Journal
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.pki import certs as c
from kbootd.pki import inventory, keys
from tests.crashkit import keys_and_cas, killed_after
from tests.keycache import cached_keys
from tests.pkitools import KUBECONFIGS, PAIRS, PKI, make_pki

RENEWED_WRITES = 11  # one per certificate (the .crt, or the kubeconfig embedding it)


@pytest.fixture(scope="module")
def old_cluster(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("old") / "root"
    root.mkdir()
    with cached_keys():
        make_pki(root, age=timedelta(days=360))
    return root


def fresh(old: Path, tmp: Path, n: int) -> Path:
    root = tmp / f"r{n}"
    shutil.copytree(old, root, symlinks=True)
    return root


def pairs_match(root: Path) -> None:
    for base in PAIRS:
        cert = c.load_cert_pem((root / PKI / f"{base}.crt").read_bytes(), base)
        assert c.key_matches(cert, keys.load_private_key_pem((root / PKI / f"{base}.key").read_bytes(), base)), base
    for kc in KUBECONFIGS:
        k = kubeconfigfile.parse((root / "etc/kubernetes" / kc).read_bytes(), kc)
        assert c.key_matches(c.load_cert_pem(k.client_cert_pem, kc), keys.load_private_key_pem(k.client_key_pem, kc))


def all_renewed(root: Path, now: datetime) -> bool:
    leaves, _ = inventory.survey(inventory.Layout(Host(Paths.rooted(root))))
    return all(e.not_after is not None and e.not_after > now + timedelta(days=364) for e in leaves)


def renew_all(root: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(["certs", "renew", "all", "--root", str(root)])


def supervisor_pass(root: Path) -> None:
    host = Host(Paths.rooted(root), say=lambda text: None)
    CertWatch(host, Journal(sink=lambda f: None), role="control-plane",
              now=lambda: datetime.now(timezone.utc)).run()


@pytest.mark.parametrize("before_rename", [False, True], ids=["after-write", "before-rename"])
@pytest.mark.parametrize("runner", ["cli", "supervisor"])
def test_a_real_kill_at_every_write_converges(old_cluster: Path, tmp_path: Path, before_rename: bool,
                                              runner: str) -> None:
    run = renew_all if runner == "cli" else supervisor_pass
    frozen = keys_and_cas(old_cluster)
    kills = 0
    for n in range(1, 40):
        root = fresh(old_cluster, tmp_path, n)
        if not killed_after(n, lambda root=root: run(root), before_rename=before_rename):
            break
        kills += 1
        pairs_match(root)  # a kill at any write: every key still has its own certificate
        assert keys_and_cas(root) == frozen, n
        run(root)
        now = datetime.now(timezone.utc)
        assert all_renewed(root, now), f"not converged after a kill at write {n}"
        pairs_match(root)
        assert keys_and_cas(root) == frozen, n
        assert not [p for p in root.rglob("*.kbootd-tmp-*")], n
        assert not (root / "var/lib/kbootd/cert-renewal.json").exists(), n
    # the CLI: one write per certificate; the supervisor: its intent, the certificates, 3 strikes
    assert kills == (RENEWED_WRITES if runner == "cli" else 1 + RENEWED_WRITES + 3)
