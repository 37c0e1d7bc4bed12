"""etcd's v3 JSON gateway (grpc-gateway), the calls kbootd needs, through kbootd.transport.

Served by etcd 3.4 and 3.5 under /v3/ (checked against Debian's etcd-server 3.4.23): POST
/v3/cluster/member/{list,add,promote,remove} and /v3/maintenance/status, JSON bodies, uint64
IDs as decimal strings, `isLearner` omitted when false. A gRPC error comes back as a non-200
status with {"error", "message", "code"}; code 9 (FailedPrecondition) is what etcd answers
while a learner is not in sync yet or another learner is pending: worth retrying.

Clients present the apiserver-etcd-client certificate (kubeadm uses the same for its etcd
client); each endpoint is tried in turn, so one member down does not stop the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kbootd import transport
from kbootd.errors import KbootdError, SecurityError, TransientError

TIMEOUT = 10.0
MAX_BODY = 1 << 20
FAILED_PRECONDITION = 9
UNAVAILABLE = 14
# Messages of FailedPrecondition that only time cures (etcd's ErrLearnerNotReady, ErrTooManyLearners,
# ErrUnhealthy): retried; other errors are final.
TRANSIENT_MESSAGES = ("in sync with leader", "too many learner", "unhealthy", "not started", "leader changed",
                      "timed out", "no leader")


class EtcdError(KbootdError):
    """etcd refused a call for a reason retrying does not cure."""

    def __init__(self, message: str, *, call: str = "", detail: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.call = call
        self.detail = detail


class EtcdUnavailable(TransientError):
    """No endpoint answered, or etcd said to try again (learner not caught up, leader election...)."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Member:
    id: int
    name: str  # empty until the member has started and published itself
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool

    @property
    def started(self) -> bool:
        return bool(self.name) and bool(self.client_urls)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Member:
        try:
            mid = int(doc.get("ID", 0))
        except (TypeError, ValueError):
            raise EtcdError(f"etcd answered a member with an invalid ID {doc.get('ID')!r}") from None
        return cls(mid, str(doc.get("name") or ""), tuple(doc.get("peerURLs") or ()),
                   tuple(doc.get("clientURLs") or ()), bool(doc.get("isLearner")))


@dataclass(frozen=True)
class Credentials:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def load_credentials(ctx: Any, cert_dir: str) -> Credentials:
    """etcd's CA and the apiserver-etcd-client pair, read through ctx.host."""
    pem = []
    for src in (f"{cert_dir}/etcd/ca.crt", f"{cert_dir}/apiserver-etcd-client.crt",
                f"{cert_dir}/apiserver-etcd-client.key"):
        data = ctx.host.read_bytes(src)
        if data is None:
            raise KbootdError(f"cannot reach etcd: {src} is missing", hint="run the certs phase first")
        pem.append(data)
    return Credentials(*pem)


class Gateway:
    """Calls to a cluster through any of its client URLs (the first that answers)."""

    def __init__(self, endpoints: list[str] | tuple[str, ...], creds: Credentials, *,
                 timeout: float = TIMEOUT) -> None:
        if not endpoints:
            raise KbootdError("etcd: no client endpoint to talk to")
        self.endpoints = list(dict.fromkeys(endpoints))
        self.creds = creds
        self.timeout = timeout
        self._sessions: dict[str, Any] = {}

    def _session(self, endpoint: str) -> Any:
        s = self._sessions.get(endpoint)
        if s is None:
            c = self.creds
            s = transport.Session(endpoint, transport.TLS(ca_pem=c.ca_pem, cert_pem=c.cert_pem, key_pem=c.key_pem),
                                  timeout=self.timeout, max_body=MAX_BODY)
            self._sessions[endpoint] = s
        return s

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one call; tries each endpoint while they are unreachable."""
        last: BaseException | None = None
        for ep in self.endpoints:
            try:
                r = self._session(ep).request("POST", f"/v3/{path}", json.dumps(body or {}).encode(),
                                              {"Content-Type": "application/json"})
            except SecurityError:
                raise
            except TransientError as e:
                last = e
                continue
            return _answer(ep, path, r.status, r.body)
        raise EtcdUnavailable(f"etcd: no endpoint answered {path} ({', '.join(self.endpoints)}): {last}")

    # the calls
    def members(self) -> list[Member]:
        doc = self.call("cluster/member/list")
        return [Member.from_json(m) for m in doc.get("members") or [] if isinstance(m, dict)]

    def add_learner(self, peer_url: str) -> tuple[Member, list[Member]]:
        doc = self.call("cluster/member/add", {"peerURLs": [peer_url], "isLearner": True})
        if not isinstance(doc.get("member"), dict):
            raise EtcdError("etcd answered member/add without the new member")
        return Member.from_json(doc["member"]), [Member.from_json(m) for m in doc.get("members") or []]

    def promote(self, member_id: int) -> None:
        self.call("cluster/member/promote", {"ID": str(member_id)})

    def remove(self, member_id: int) -> None:
        self.call("cluster/member/remove", {"ID": str(member_id)})

    def status(self, endpoint: str) -> dict[str, Any]:
        """One member's own status (its leader, raft index); from that endpoint only."""
        r = self._session(endpoint).request("POST", "/v3/maintenance/status", b"{}",
                                            {"Content-Type": "application/json"})
        return _answer(endpoint, "maintenance/status", r.status, r.body)


def _answer(endpoint: str, path: str, status: int, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError):
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    if status == 200:
        return doc
    message = str(doc.get("message") or doc.get("error") or body[:200].decode("utf-8", "replace")).strip()
    code = doc.get("code")
    what = f"etcd at {endpoint}: {path}: {message} (HTTP {status})"
    if status >= 500 or code == UNAVAILABLE or any(t in message for t in TRANSIENT_MESSAGES):
        raise EtcdUnavailable(what, detail=message)
    raise EtcdError(what, call=path, detail=message)
