"""The supervisor's certificate pass: renew leaves before they expire, restart what uses them.

On a control plane, every `every` seconds (and at start):
1. a leaf certificate or kubeconfig (kubeadm's eleven) within `renew_before` of its expiry is
   renewed (kbootd.pki.renew: same subject, SANs, usages, CA and key; one atomic write);
2. the static Pods that read a renewed file are restarted one at a time, in
   inventory.RESTART_ORDER (etcd, kube-apiserver, kube-controller-manager, kube-scheduler);
3. a CA within `ca_warn_before` of its expiry is warned about (what to do; never done here),
   as is a leaf that cannot be renewed (External CA mode).
On every node, the kubelet's client certificate is checked: the kubelet rotates it itself
(rotateCertificates: true) by 90 % of its lifetime; one older than that did not rotate.

Crash-safe and idempotent: before the first certificate is written, the intent (what to
renew, which components to restart) goes to /var/lib/kbootd/cert-renewal.json (atomic);
each restart done is struck from it, and the file is removed when none is left. A pass
after a kill renews what is still due (what was renewed is no longer due) and restarts
what the intent still lists, so every kill point converges (restarts at least once).

Light: dates come from kbootd.pki.derdates; `cryptography` is imported only to renew.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kbootd import staticpods
from kbootd.daemon.journal import ERR, INFO, WARNING, Journal
from kbootd.duration import parse_duration
from kbootd.errors import KbootdError, ValidationError
from kbootd.hostio import Host
from kbootd.pki import derdates, inventory
from kbootd.pki.expiry import short_human_duration
from kbootd.pki.inventory import Expiry, Layout

PHASE = "certs"
DAY = 86400.0
DEFAULT_RENEW_BEFORE = 90 * DAY
DEFAULT_CA_WARN_BEFORE = 365 * DAY
DEFAULT_EVERY = 3600.0  # the files change once a year; an hour's delay costs nothing
REPEAT_WARNING = DAY  # a standing warning is logged again once a day
KUBELET_ROTATE_BY = 0.9  # the kubelet rotates between 70 % and 90 % of the lifetime (jittered)
INTENT_MODE = 0o600


@dataclass
class Settings:
    renew_before: float = DEFAULT_RENEW_BEFORE
    ca_warn_before: float = DEFAULT_CA_WARN_BEFORE
    every: float = DEFAULT_EVERY
    validity: float = inventory.DEFAULT_VALIDITY_SECONDS


@dataclass
class Summary:
    """What the last pass found, for STATUS and status.json."""

    nearest: Expiry | None = None
    renewed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self, now: datetime) -> str:
        if self.nearest is None or self.nearest.not_after is None:
            return ""
        return f"certs: next expiry {self.nearest.name} in {short_human_duration(self.nearest.residual_seconds(now))}"

    def as_status(self, now: datetime) -> dict[str, Any]:
        n = self.nearest
        return {"nearest": n.name if n else None,
                "expires": n.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if n and n.not_after else None,
                "residual": short_human_duration(n.residual_seconds(now)) if n and n.not_after else None,
                "warnings": list(self.warnings)}


def _nearest(items: list[Expiry]) -> Expiry | None:
    present = [e for e in items if not e.missing and e.not_after is not None]
    return min(present, key=lambda e: e.not_after) if present else None  # type: ignore[arg-type,return-value]


class CertWatch:
    def __init__(self, host: Host, journal: Journal, *, role: str, now: Callable[[], datetime],
                 settings: Settings | None = None, layout: Layout | None = None,
                 status: Callable[[str], None] | None = None,
                 restart: Callable[[Host, str], str] | None = None) -> None:
        self.host = host
        self.journal = journal
        self.role = role
        self.now = now
        self.settings = settings or Settings()
        self.layout = layout or Layout(host, kubeconfig_dir=host.paths.kubernetes_dir)
        self.status = status or (lambda text: None)
        self.restart = restart or staticpods.restart
        self.last_run: datetime | None = None
        self._warned: dict[str, datetime] = {}
        self.summary = Summary()

    @property
    def intent_path(self) -> str:
        return f"{self.host.paths.state_dir}/cert-renewal.json"

    # --- the pass -----------------------------------------------------------------------------
    def due(self) -> bool:
        return self.last_run is None or (self.now() - self.last_run).total_seconds() >= self.settings.every

    def maybe_run(self) -> Summary | None:
        return self.run() if self.due() else None

    def run(self) -> Summary:
        """One pass. Failures are logged and retried next pass: the supervisor keeps running."""
        now = self.now()
        self.last_run = now
        summary = Summary()
        try:
            if self.role == "control-plane" and self.host.exists(self.layout.crt("ca")):
                summary = self._control_plane(now)
            self._kubelet(now, summary)
        except (KbootdError, OSError, ValueError) as err:
            self.journal.log("cert-failed", f"certificate check failed: {err}; trying again in "
                             f"{self.settings.every:.0f} s", phase=PHASE, priority=ERR)
        self.summary = summary
        return summary

    def _control_plane(self, now: datetime) -> Summary:
        leaves, cas = inventory.survey(self.layout)
        renewed: list[str] = []
        intent = self._read_intent()
        due = [e for e in leaves if not e.missing and e.residual_seconds(now) < self.settings.renew_before]
        renewable = [e for e in due if not e.external]
        for e in due:
            if e.external:
                self._warn(f"external:{e.name}", now,
                           f"{e.name} ({e.where}) expires {_when(e, now)} and cannot be renewed here: its CA "
                           f"{e.ca} has no key on this host (External CA mode); renew it with your CA and "
                           "restart what uses it")
        if renewable or intent is not None:
            restart = list((intent or {}).get("restart") or [])
            for e in renewable:
                for comp in inventory.LEAF_BY_NAME[e.name].components:
                    if comp not in restart:
                        restart.append(comp)
            restart = [c for c in inventory.RESTART_ORDER if c in restart]
            if renewable:
                self._write_intent({"renew": [e.name for e in renewable], "restart": restart})
                renewed = self._renew(renewable, now)
            self._restart_all(restart)
            leaves, cas = inventory.survey(self.layout)
        for ca in cas:
            if not ca.missing and ca.residual_seconds(now) < self.settings.ca_warn_before:
                self._warn(f"ca:{ca.name}", now,
                           f"the {ca.name} certificate authority ({ca.where}) expires {_when(ca, now)}; kbootd never "
                           "renews a CA: plan a CA rotation (kubeadm's 'Manual rotation of CA certificates': a new "
                           "CA beside the old one in every trust bundle, re-sign every certificate and kubeconfig, "
                           "restart every component, then drop the old CA) before that date")
        return Summary(nearest=_nearest(leaves + cas), renewed=renewed,
                       warnings=[k for k in self._warned if k.startswith(("ca:", "external:"))])

    def _renew(self, due: list[Expiry], now: datetime) -> list[str]:
        # kbootd.pki.renew imports cryptography: paid only when something is due (lean supervisor).
        from kbootd.pki import renew as r

        renewed: list[str] = []
        for i, e in enumerate(due, 1):
            leaf = inventory.LEAF_BY_NAME[e.name]
            self.status(f"certs: renewing {e.name} ({i}/{len(due)}), it expires {_when(e, now)}")
            try:
                out = r.renew(self.layout, leaf, validity=timedelta(seconds=self.settings.validity), now=now)
            except KbootdError as err:
                self.journal.log("cert-failed", f"renewing {e.name} ({e.where}) failed: {err}; trying again in "
                                 f"{self.settings.every:.0f} s", phase=PHASE, priority=ERR, cert=e.name)
                continue
            if out.result == r.RENEWED:
                renewed.append(e.name)
                assert out.not_after is not None
                self.journal.log("cert-renewed", f"renewed {e.name} ({e.where}): it was valid until {_when(e, now)}, "
                                 f"now valid until {out.not_after:%Y-%m-%d %H:%M} UTC", phase=PHASE,
                                 priority=INFO, cert=e.name, not_after=f"{out.not_after:%Y-%m-%dT%H:%M:%SZ}")
        return renewed

    def _restart_all(self, restart: list[str]) -> None:
        pending = list(restart)
        for i, comp in enumerate(restart, 1):
            self.status(f"certs: restarting {comp} ({i}/{len(restart)}) to load renewed certificates")
            try:
                what = self.restart(self.host, comp)
            except KbootdError as err:
                self.journal.log("cert-failed", f"restarting {comp} failed: {err}; trying again in "
                                 f"{self.settings.every:.0f} s", phase=PHASE, priority=ERR, component=comp)
                return  # one component at a time: the rest wait for the next pass
            self.journal.log("cert-restart", f"{comp}: {what}", phase=PHASE, priority=INFO, component=comp)
            pending.remove(comp)
            if pending:
                self._write_intent({"renew": [], "restart": pending})
        self.host.remove(self.intent_path)

    def _kubelet(self, now: datetime, summary: Summary) -> None:
        path = f"{self.host.paths.kubelet_pki_dir}/kubelet-client-current.pem"
        pem = self.host.read_bytes(path)
        if pem is None:
            return  # not bootstrapped yet, or the kubelet.conf embeds its credentials
        try:
            start, end = derdates.validity(pem, path)
        except KbootdError as err:
            self._warn("kubelet", now, f"{path}: {err}")
            summary.warnings.append("kubelet")
            return
        lifetime = (end - start).total_seconds()
        left = (end - now).total_seconds()
        if left < (1 - KUBELET_ROTATE_BY) * lifetime:
            state = "expired" if left <= 0 else f"expires {end:%Y-%m-%d %H:%M} UTC ({short_human_duration(left)} left)"
            self._warn("kubelet", now,
                       f"the kubelet did not rotate its client certificate ({path} {state}): check "
                       "rotateCertificates: true in /var/lib/kubelet/config.yaml, the kubelet's log, and pending "
                       "CSRs (kubectl get csr; kube-controller-manager approves and signs them)")
            summary.warnings.append("kubelet")
        else:
            self._warned.pop("kubelet", None)
        entry = Expiry("kubelet-client", None, False, False, end, path)
        if summary.nearest is None or (summary.nearest.not_after and end < summary.nearest.not_after):
            summary.nearest = entry

    # --- helpers --------------------------------------------------------------------------------
    def _warn(self, key: str, now: datetime, message: str) -> None:
        last = self._warned.get(key)
        if last is None or (now - last).total_seconds() >= REPEAT_WARNING:
            self._warned[key] = now
            self.journal.log("cert-expiring", message, phase=PHASE, priority=WARNING)

    def _read_intent(self) -> dict[str, Any] | None:
        text = self.host.read_text(self.intent_path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Atomic writes cannot leave half a file; anything else: restart everything to be safe.
            return {"renew": [], "restart": list(inventory.RESTART_ORDER)}
        return data

    def _write_intent(self, data: dict[str, Any]) -> None:
        self.host.ensure_dir(self.host.paths.state_dir, 0o700)
        self.host.write_file(self.intent_path, json.dumps(data, sort_keys=True) + "\n", INTENT_MODE, show=False)


def _when(e: Expiry, now: datetime) -> str:
    assert e.not_after is not None
    left = e.residual_seconds(now)
    rel = f"in {short_human_duration(left)}" if left >= 0 else f"{short_human_duration(-left)} ago"
    return f"{e.not_after:%Y-%m-%d %H:%M} UTC ({rel})"


# --- settings (kbootd.yaml's supervise block) and `kbootd status` ----------------------------

def parse_window(value: Any, what: str) -> float:
    """Seconds in `90d` (days) or a Go duration (`2160h`); at least one hour."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if text.endswith("d") and text[:-1].isdigit():
        seconds = int(text[:-1]) * DAY
    else:
        seconds = parse_duration(value, what=what)
    if seconds < 3600:
        raise ValidationError(f"{what}: must be at least 1h (e.g. 90d or 2160h), got {value!r}")
    return seconds


def nearest_on_disk(host: Host, now: datetime, cert_dir: str = "/etc/kubernetes/pki") -> dict[str, Any] | None:
    """The nearest expiry among this node's certificates (leaves, CAs, the kubelet's client
    certificate), read from disk for `kbootd status`. None when there are none."""
    layout = Layout(host, cert_dir=cert_dir, kubeconfig_dir=host.paths.kubernetes_dir)
    try:
        items: list[Expiry] = []
        if host.exists(layout.crt("ca")):
            leaves, cas = inventory.survey(layout)
            items += leaves + cas
        path = f"{host.paths.kubelet_pki_dir}/kubelet-client-current.pem"
        pem = host.read_bytes(path)
        if pem is not None:
            items.append(Expiry("kubelet-client", None, False, False, derdates.not_after(pem, path), path))
    except (KbootdError, OSError) as err:
        return {"error": str(err)}
    nearest = _nearest(items)
    return None if nearest is None else Summary(nearest=nearest).as_status(now)


def status_line(certs: dict[str, Any]) -> str | None:
    """`certificates: nearest expiry apiserver on 2027-12-02 20:05 UTC (364d)` for `kbootd status`."""
    if certs.get("error"):
        return f"certificates: cannot read: {certs['error']}"
    if not certs.get("nearest"):
        return None
    expires = str(certs.get("expires") or "")  # 2027-12-02T20:05:47Z
    line = (f"certificates: nearest expiry {certs['nearest']} on {expires[:10]} {expires[11:16]} UTC "
            f"({certs.get('residual')})")
    if certs.get("warnings"):
        line += f"; warnings: {', '.join(certs['warnings'])}"
    return line
