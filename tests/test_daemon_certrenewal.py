"""The supervisor's certificate pass (kbootd.daemon.certrenewal) on a PKI made by kbootd's init
in a temp root, with a clock seam: clusters made "a year ago" are renewed, static Pod restarts
are requested in order, a kill at every write converges, CAs and keys never change."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509

from kbootd import hostio, kubeconfigfile, staticpods
from kbootd.daemon.certrenewal import CertWatch, Settings
from kbootd.daemon.journal import MESSAGE_IDS, Journal
from kbootd.errors import KbootdError
from kbootd.hostio import CommandResult, Host
from kbootd.paths import Paths
from kbootd.pki import certs as c
from kbootd.pki import inventory, keys
from tests.conftest import tree_snapshot
from tests.keycache import cached_keys
from tests.pkitools import CAS, KUBECONFIGS, PAIRS, PKI, Crash, crash_at_write, make_pki

ORDER = list(inventory.RESTART_ORDER)


@pytest.fixture(autouse=True)
def _fast_keys():
    with cached_keys():
        yield


class Run:
    """One supervisor pass's world: a Host on the root, a journal that keeps records, restarts logged."""

    def __init__(self, root, now: datetime, log: list | None = None, role: str = "control-plane") -> None:
        self.records: list[dict[str, str]] = []
        self.log = log if log is not None else []
        self.host = Host(Paths.rooted(root), say=lambda text: None)
        self.statuses: list[str] = []

        def restart(host, comp):
            self.log.append(("restart", comp))
            return staticpods.restart(host, comp)

        self.watch = CertWatch(self.host, Journal(sink=self.records.append), role=role, now=lambda: now,
                               status=self.statuses.append, restart=restart)

    def events(self, kind: str) -> list[dict[str, str]]:
        return [r for r in self.records if r["KBOOTD_EVENT"] == kind]


def not_afters(root) -> dict[str, datetime]:
    host = Host(Paths.rooted(root))
    layout = inventory.Layout(host)
    return {e.name: e.not_after for e in inventory.survey(layout)[0]}


def frozen(root) -> dict[str, tuple[int, bytes]]:
    """What renewal must never change: the CAs, every private key, kubelet.conf."""
    snap = tree_snapshot(root)
    keep = {f"{PKI}/{b}.{x}" for b in CAS for x in ("crt", "key")} | {f"{PKI}/{b}.key" for b in PAIRS}
    keep |= {f"{PKI}/sa.key", f"{PKI}/sa.pub", "etc/kubernetes/kubelet.conf"}
    out = {k: snap[k] for k in keep}
    for kc in KUBECONFIGS:
        out[kc] = (0, kubeconfigfile.parse(snap[f"etc/kubernetes/{kc}"][1], kc).client_key_pem or b"")
    return out


def test_a_cluster_made_a_year_ago_is_renewed_and_its_pods_restarted_in_order(root):
    make_pki(root, age=timedelta(days=360))  # 5 days left
    keep = frozen(root)
    now = datetime.now(timezone.utc)
    run = Run(root, now)
    summary = run.watch.run()
    assert sorted(summary.renewed) == sorted(inventory.LEAF_BY_NAME)
    assert [r["KBOOTD_CERT"] for r in run.events("cert-renewed")] == list(inventory.LEAF_BY_NAME)
    assert all(r["MESSAGE_ID"] == MESSAGE_IDS["cert-renewed"] for r in run.events("cert-renewed"))
    # one component at a time, in order, each requested once (recorded: the root is not /)
    assert [r["KBOOTD_COMPONENT"] for r in run.events("cert-restart")] == ORDER
    ps = [a.target for a in run.host.actions if a.kind == "run"]
    assert [t.split("^")[1].split("$")[0] for t in ps] == ORDER
    assert all(t.startswith("crictl ps --quiet --state running --name '^") for t in ps)
    for name, na in not_afters(root).items():
        assert abs(na - (now + timedelta(hours=8760))) < timedelta(seconds=2), name
    assert frozen(root) == keep
    assert not (root / "var/lib/kbootd/cert-renewal.json").exists()
    assert summary.describe(now).startswith("certs: next expiry ")
    assert any("restarting kube-apiserver (2/4)" in s for s in run.statuses)
    # idempotent: the next pass renews and restarts nothing
    again = Run(root, now)
    snap = tree_snapshot(root)
    assert again.watch.run().renewed == []
    assert again.events("cert-renewed") == again.events("cert-restart") == []
    assert tree_snapshot(root) == snap


def test_the_clock_seam_decides_what_is_due(root):
    make_pki(root)
    real = datetime.now(timezone.utc)
    early = Run(root, real + timedelta(days=270))  # 95 days left: outside the 90-day window
    assert early.watch.run().renewed == []
    late = Run(root, real + timedelta(days=280))  # 85 days left
    assert len(late.watch.run().renewed) == 11
    for na in not_afters(root).values():
        assert na > real + timedelta(days=280 + 364)
    narrow = Settings(renew_before=30 * 86400)
    make_pki(root)  # (reuses the valid files: nothing to do)
    r = Run(root, real + timedelta(days=280 + 300))
    r.watch.settings = narrow
    assert r.watch.run().renewed == []  # 84 days left of the renewed ones: outside a 30-day window


def test_expired_certificates_are_renewed_too(root):
    make_pki(root, age=timedelta(days=400))
    run = Run(root, datetime.now(timezone.utc))
    assert len(run.watch.run().renewed) == 11
    assert "ago" in run.events("cert-renewed")[0]["MESSAGE"]


def _files_of(comp: str) -> set[str]:
    out = set()
    for leaf in inventory.LEAVES:
        if comp in leaf.components:
            out.add(f"/etc/kubernetes/pki/{leaf.base}.crt" if leaf.base else f"/etc/kubernetes/{leaf.kubeconfig}")
    return out


@pytest.mark.parametrize("before_rename", [False, True])
def test_a_kill_at_every_write_converges(root, before_rename, monkeypatch):
    make_pki(root, age=timedelta(days=360))
    pristine = tree_snapshot(root)
    keep = frozen(root)
    now = datetime.now(timezone.utc)
    log: list = []
    real = hostio._atomic_write

    def logged(path, data, mode):
        real(path, data, mode)
        log.append(("write", "/" + str(path.relative_to(root))))

    monkeypatch.setattr(hostio, "_atomic_write", logged)
    n = 0
    while True:
        log.clear()
        with crash_at_write(n, before_rename=before_rename):
            try:
                Run(root, now, log).watch.run()
                crashed = False
            except Crash:
                crashed = True
        if crashed:
            for p in root.rglob(".*kbootd-tmp*"):
                p.unlink()  # a new process never reuses the dead one's temp name
        # after the kill: every pair still matches
        for base in PAIRS:
            cert = x509.load_pem_x509_certificate((root / PKI / f"{base}.crt").read_bytes())
            assert c.key_matches(cert, keys.load_private_key_pem((root / PKI / f"{base}.key").read_bytes(), base))
        resume = Run(root, now, log)
        resume.watch.run()
        # converged: nothing due, no intent left, nothing that must not change changed
        assert all(na > now + timedelta(days=364) for na in not_afters(root).values()), n
        assert not (root / "var/lib/kbootd/cert-renewal.json").exists()
        assert frozen(root) == keep
        # every component restarted after the last write of a file it reads, and the
        # restarts of each pass go in order, one at a time
        for comp in ORDER:
            last_write = max(i for i, (k, v) in enumerate(log) if k == "write" and v in _files_of(comp))
            assert ("restart", comp) in log[last_write:], (n, comp, log)
        comps = [r["KBOOTD_COMPONENT"] for r in resume.events("cert-restart")]
        assert comps == sorted(comps, key=ORDER.index) and len(set(comps)) == len(comps)
        if not crashed:
            assert comps == []  # the clean run already did everything
            break
        n += 1
        for rel, (_mode, data) in pristine.items():
            if not rel.endswith("/"):
                (root / rel).write_bytes(data)
        (root / "var/lib/kbootd/cert-renewal.json").unlink(missing_ok=True)
    # the intent, 11 certificates, 3 strikes of the intent (the last restart removes it): all kill points
    assert n == 1 + 11 + 3


def test_a_ca_near_its_end_is_warned_about_never_renewed(root):
    make_pki(root)
    keep = frozen(root)
    later = datetime.now(timezone.utc) + timedelta(days=3650 - 100)
    run = Run(root, later)
    run.watch.run()
    warns = [r for r in run.events("cert-expiring")]
    assert len(warns) == 3 and all(r["MESSAGE_ID"] == MESSAGE_IDS["cert-expiring"] for r in warns)
    assert "kbootd never renews a CA" in warns[0]["MESSAGE"] and "rotation" in warns[0]["MESSAGE"]
    assert frozen(root) == keep
    # a standing warning is repeated once a day, not every pass
    run.watch.run()
    assert len(run.events("cert-expiring")) == 3


def test_external_ca_leaves_are_reported_and_skipped(root):
    make_pki(root, age=timedelta(days=360))
    (root / PKI / "ca.key").unlink()
    before = (root / PKI / "apiserver.crt").read_bytes()
    run = Run(root, datetime.now(timezone.utc))
    summary = run.watch.run()
    assert sorted(summary.renewed) == ["apiserver-etcd-client", "etcd-healthcheck-client", "etcd-peer",
                                       "etcd-server", "front-proxy-client"]
    assert (root / PKI / "apiserver.crt").read_bytes() == before
    ext = [r["MESSAGE"] for r in run.events("cert-expiring")]
    assert any("apiserver " in m and "External CA mode" in m for m in ext)
    assert [r["KBOOTD_COMPONENT"] for r in run.events("cert-restart")] == ["etcd", "kube-apiserver"]


def _kubelet_cert(root, start: datetime, end: datetime) -> None:
    key = keys.new_private_key("ECDSA-P256")
    ca = c.new_self_signed_ca(key, "kubernetes", timedelta(days=3650), now=start)
    cert = c.sign_certificate(key.public_key(), ca, key, common_name="system:node:w1", usages=(c.CLIENT_AUTH,),
                              validity=end - start, now=start)
    p = root / "var/lib/kubelet/pki/kubelet-client-current.pem"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(c.encode_cert_pem(cert) + keys.encode_private_key_pem(key))


def test_worker_reports_a_kubelet_client_certificate_that_was_not_rotated(root):
    now = datetime.now(timezone.utc)
    _kubelet_cert(root, now - timedelta(days=5), now + timedelta(days=360))
    run = Run(root, now, role="worker")
    s = run.watch.run()
    assert run.events("cert-expiring") == [] and s.nearest is not None and s.nearest.name == "kubelet-client"
    _kubelet_cert(root, now - timedelta(days=340), now + timedelta(days=25))
    run = Run(root, now, role="worker")
    run.watch.run()
    (warn,) = run.events("cert-expiring")
    assert "did not rotate" in warn["MESSAGE"] and "rotateCertificates" in warn["MESSAGE"]
    assert run.events("cert-renewed") == [] and run.host.actions == []  # a worker renews nothing itself


def test_a_damaged_file_is_a_logged_failure_not_a_dead_supervisor(root):
    make_pki(root, age=timedelta(days=360))
    (root / "etc/kubernetes/scheduler.conf").write_text("clusters: 5\n")
    run = Run(root, datetime.now(timezone.utc))
    run.watch.run()
    (fail,) = run.events("cert-failed")
    assert "scheduler.conf" in fail["MESSAGE"]


def test_the_pass_runs_every_interval(root):
    make_pki(root)
    t = [datetime.now(timezone.utc)]
    w = CertWatch(Host(Paths.rooted(root)), Journal(sink=lambda f: None), role="control-plane", now=lambda: t[0],
                  settings=Settings(every=3600))
    assert w.maybe_run() is not None
    t[0] += timedelta(minutes=59)
    assert w.maybe_run() is None
    t[0] += timedelta(minutes=1)
    assert w.maybe_run() is not None


class _FakeHost:
    def __init__(self, ps: CommandResult) -> None:
        self.ps = ps
        self.ran: list[list[str]] = []

    def run(self, argv, check=True):
        self.ran.append(list(argv))
        return self.ps if argv[1] == "ps" else CommandResult(tuple(argv), 0)


def test_static_pod_restart_stops_the_running_containers_on_a_real_host():
    h = _FakeHost(CommandResult(("crictl",), 0, "abc123def4567890\nfff\n"))
    assert "restarted" in staticpods.restart(h, "kube-apiserver")  # type: ignore[arg-type]
    assert h.ran[0] == ["crictl", "ps", "--quiet", "--state", "running", "--name", "^kube-apiserver$",
                        "--label", "io.kubernetes.pod.namespace=kube-system"]
    assert h.ran[1] == ["crictl", "stop", "abc123def4567890", "fff"]
    none = _FakeHost(CommandResult(("crictl",), 0, ""))
    assert "not running" in staticpods.restart(none, "etcd")  # type: ignore[arg-type]
    assert len(none.ran) == 1
    bad = _FakeHost(CommandResult(("crictl",), 1, "", "connect: no such file"))
    with pytest.raises(KbootdError, match="crictl ps for etcd failed"):
        staticpods.restart(bad, "etcd")  # type: ignore[arg-type]


def test_status_shows_the_nearest_expiry_read_from_disk(root):
    from kbootd.daemon.certrenewal import nearest_on_disk, status_line

    host = Host(Paths.rooted(root))
    now = datetime.now(timezone.utc)
    assert nearest_on_disk(host, now) is None
    make_pki(root, age=timedelta(days=100))
    (root / PKI / "etcd/peer.crt").write_bytes(c.encode_cert_pem(_short(root, days=3)))
    certs = nearest_on_disk(host, now)
    assert certs is not None and certs["nearest"] == "etcd-peer" and certs["residual"] in ("2d", "3d")
    line = status_line(certs)
    assert line is not None and line.startswith("certificates: nearest expiry etcd-peer on ")
    assert re.fullmatch(r"certificates: nearest expiry etcd-peer on \d{4}-\d\d-\d\d \d\d:\d\d UTC \([23]d\)", line)
    (root / "etc/kubernetes/admin.conf").write_text("kind: 5\n")
    assert status_line(nearest_on_disk(host, now) or {}).startswith("certificates: cannot read: ")


def _short(root, days: int) -> x509.Certificate:
    """etcd/peer again, signed by etcd-ca for its own key, valid `days` from now."""
    ca = x509.load_pem_x509_certificate((root / PKI / "etcd/ca.crt").read_bytes())
    ca_key = keys.load_private_key_pem((root / PKI / "etcd/ca.key").read_bytes(), "k")
    key = keys.load_private_key_pem((root / PKI / "etcd/peer.key").read_bytes(), "k")
    return c.sign_certificate(key.public_key(), ca, ca_key, common_name="cp-1", usages=(c.SERVER_AUTH,),
                              validity=timedelta(days=days))


def test_window_settings_take_days_or_go_durations():
    from kbootd.daemon.certrenewal import parse_window

    assert parse_window("90d", "w") == 90 * 86400
    assert parse_window("2160h", "w") == 90 * 86400
    for bad in ("10m", "soon", "-5d", True):
        with pytest.raises(KbootdError, match="w"):
            parse_window(bad, "w")


def test_the_supervisor_renews_and_shows_the_nearest_expiry_in_status(root):
    from kbootd.daemon.health import Health
    from kbootd.daemon.status import StatusBoard
    from kbootd.daemon.supervise import Supervisor

    make_pki(root, age=timedelta(days=360))
    t = [datetime.now(timezone.utc)]
    statuses: list[str] = []

    class Notifier:
        watchdog_usec = None

        def status(self, text):
            statuses.append(text)

        def watchdog(self):
            pass

    run = Run(root, t[0])
    run.watch.now = lambda: t[0]
    run.watch.status = statuses.append
    board = StatusBoard(run.host)
    sup = Supervisor(lambda: Health("active", "Ready", "ok"), Notifier(), run.watch.journal, board,
                     role="control-plane", node="cp-1", endpoint="https://10.0.0.10:6443", interval=30,
                     certs=run.watch, now=lambda: t[0])
    sup.round()
    assert len(run.events("cert-renewed")) == 11 and len(run.events("cert-restart")) == 4
    assert statuses[0].startswith("certs: renewing ")
    assert statuses[-1] == ("control-plane cp-1 initialised https://10.0.0.10:6443; kubelet active; apiserver ok; "
                            "node Ready; certs: next expiry admin.conf in 364d")
    assert board.data["certs"]["nearest"] == "admin.conf" and board.data["certs"]["residual"] == "364d"
    n = len(statuses)
    t[0] += timedelta(minutes=10)
    sup.round()  # the health line and the certificates are as they were: nothing new to say
    assert len(statuses) == n and len(run.events("cert-renewed")) == 11
