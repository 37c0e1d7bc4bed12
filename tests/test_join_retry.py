"""kbootd.retry: immediate first try, capped exponential backoff with full jitter, deadlines, hooks."""

from __future__ import annotations

import random

import pytest

from kbootd.errors import (
    DiscoveryError,
    KbootdError,
    SecurityError,
    TransientError,
    ValidationError,
    WaitTimeout,
)
from kbootd.retry import Backoff, Timing, retry


class FakeTime:
    """A clock that only moves when the code under test sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.now += s


def timing(t: FakeTime, rand=lambda: 0.999999) -> Timing:
    return Timing(clock=t.clock, sleep=t.sleep, rand=rand)


class Flaky:
    """Fails `failures` times with `error`, recording the fake time of each call."""

    def __init__(self, t: FakeTime, failures: int, error: Exception | None = None) -> None:
        self.t, self.left, self.calls = t, failures, []
        self.error = error or TransientError("connection refused")

    def __call__(self) -> str:
        self.calls.append(self.t.now)
        if self.left:
            self.left -= 1
            raise self.error
        return "ok"


def test_first_attempt_runs_at_once_and_success_does_not_sleep() -> None:
    t = FakeTime()
    fn = Flaky(t, 0)
    assert retry(fn, what="x", deadline=10, timing=timing(t)) == "ok"
    assert fn.calls == [0.0] and t.sleeps == []


def test_backoff_grows_exponentially_then_stays_at_the_cap() -> None:
    t = FakeTime()
    fn = Flaky(t, 8)
    retry(fn, what="x", deadline=100, backoff=Backoff(first=0.1, cap=1.5, factor=2), timing=timing(t))
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.5, 1.5, 1.5, 1.5], rel=1e-5)
    assert fn.calls[0] == 0.0 and len(fn.calls) == 9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_jitter_stays_within_zero_and_the_ceiling_and_spreads(seed: int) -> None:
    b = Backoff(first=0.25, cap=2.0)
    rng = random.Random(seed)
    t = FakeTime()
    hooks: list[tuple[int, float]] = []
    retry(Flaky(t, 2000), what="x", deadline=float("inf"), backoff=b, timing=timing(t, rng.random),
          on_retry=lambda a, _c, n: hooks.append((a, n)))
    for attempt, slept in hooks:
        assert 0 <= slept < b.ceiling(attempt)
    capped = [n for a, n in hooks if a > 10]
    # Full jitter: the whole range [0, cap) is used, mean about cap/2.
    assert min(capped) < 0.05 * b.cap and max(capped) > 0.95 * b.cap
    assert sum(capped) / len(capped) == pytest.approx(b.cap / 2, rel=0.1)


def test_deadline_gives_up_with_the_last_cause_and_tries_once_more_at_the_deadline() -> None:
    t = FakeTime()
    causes = iter(f"cause {i}" for i in range(1000))

    def fn() -> None:
        raise TransientError(next(causes))

    with pytest.raises(WaitTimeout) as e:
        retry(fn, what="discovery", deadline=5.0, backoff=Backoff(first=1, cap=2), timing=timing(t))
    assert t.now == pytest.approx(5.0)  # the last sleep was shortened to land on the deadline
    last = int(str(e.value).rsplit("cause ", 1)[1])
    assert str(e.value).startswith("discovery: gave up after 5.0 s and ")
    assert f"{last + 1} attempts" in str(e.value)
    assert e.value.exit_code == 5


def test_zero_deadline_means_one_try() -> None:
    t = FakeTime()
    fn = Flaky(t, 5)
    with pytest.raises(WaitTimeout, match="1 attempt; last error: connection refused"):
        retry(fn, what="x", deadline=0, timing=timing(t))
    assert fn.calls == [0.0]


def test_infinite_deadline_keeps_going_without_overflowing() -> None:
    t = FakeTime()
    fn = Flaky(t, 5000)
    assert retry(fn, what="x", deadline=float("inf"), backoff=Backoff(first=0.001, cap=0.01, factor=3),
                 timing=timing(t)) == "ok"
    assert len(fn.calls) == 5001
    assert Backoff().ceiling(10**9) == Backoff().cap


def test_hook_sees_every_failed_attempt_with_its_cause_and_the_sleep_that_follows() -> None:
    t = FakeTime()
    seen: list[tuple[int, str, float]] = []
    errors = iter([TransientError("refused"), TransientError("HTTP 503"), TransientError("no signature")])

    def fn() -> str:
        e = next(errors, None)
        if e:
            raise e
        return "done"

    retry(fn, what="x", deadline=60, timing=timing(t), on_retry=lambda *a: seen.append(a))
    assert [(a, c) for a, c, _ in seen] == [(1, "refused"), (2, "HTTP 503"), (3, "no signature")]
    assert [n for *_, n in seen] == t.sleeps


class _Both(TransientError, SecurityError):
    """Pathological: transient *and* a security failure. Security wins."""


@pytest.mark.parametrize("error", [SecurityError("JWS does not verify"), DiscoveryError("malformed"),
                                   _Both("both"), ValidationError("bad pin"), KbootdError("other"),
                                   ValueError("bug")], ids=type)
def test_anything_but_transient_errors_propagates_at_once(error: Exception) -> None:
    t = FakeTime()
    hook: list[object] = []
    with pytest.raises(type(error)):
        retry(Flaky(t, 3, error), what="x", deadline=60, timing=timing(t), on_retry=lambda *a: hook.append(a))
    assert hook == [] and t.sleeps == []


@pytest.mark.parametrize("kw", [{"first": -1}, {"first": 2, "cap": 1}, {"factor": 0.5}, {"cap": float("inf")},
                                {"first": float("nan")}])
def test_backoff_refuses_nonsense(kw: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)


@pytest.mark.parametrize("deadline", [-1, float("nan")])
def test_deadline_must_be_a_time(deadline: float) -> None:
    with pytest.raises(ValueError):
        retry(lambda: None, what="x", deadline=deadline)


@pytest.mark.parametrize("failures", [1, 64, 1025, 10**6, 10**30])
def test_backoff_ceiling_never_overflows(failures: int) -> None:
    for b in (Backoff(), Backoff(first=10, cap=300, factor=2, jitter=False), Backoff(first=1e-9, cap=1e9, factor=1e3),
              Backoff.constant(0.5), Backoff(first=0, cap=0)):
        c = b.ceiling(failures)
        assert 0 <= c <= b.cap
        if failures >= 64:
            assert c == b.cap


def test_constant_backoff_sleeps_the_interval_without_jitter() -> None:
    t = FakeTime()
    fn = Flaky(t, 3)
    assert retry(fn, what="x", deadline=10, backoff=Backoff.constant(0.5), timing=timing(t, rand=lambda: 0.1)) == "ok"
    assert t.sleeps == [0.5, 0.5, 0.5]


def test_retryable_widens_what_is_retried() -> None:
    t = FakeTime()
    fn = Flaky(t, 2, KbootdError("HTTP 409 conflict"))
    assert retry(fn, what="x", deadline=10, timing=timing(t), retryable=lambda e: "409" in str(e)) == "ok"
    with pytest.raises(KbootdError):
        retry(Flaky(t, 1, KbootdError("HTTP 403")), what="x", deadline=10, timing=timing(t),
              retryable=lambda e: "409" in str(e))
    with pytest.raises(SecurityError):  # trust failures stay final whatever retryable says
        retry(Flaky(t, 1, SecurityError("bad pin")), what="x", deadline=10, timing=timing(t),
              retryable=lambda e: True)
