"""kbootd's one retry loop: capped exponential backoff with full jitter, and a deadline.

    retry(fn, what="discovery", deadline=300, on_retry=hook)

Every waiting loop uses it: join's discovery and TLS bootstrap, the API client's retries
(kubeadm's constant 0.5 s interval: `Backoff.constant(0.5)`), wait-control-plane's health
polls, and the daemon's restart back-off (`Backoff.ceiling`, no jitter).

The first try runs at once. After the n-th failure the loop sleeps a uniformly random
time in [0, min(cap, first * factor**(n-1))) ("full jitter", as in AWS's "Exponential
Backoff And Jitter"): a fleet that boots at the same second spreads out instead of
hitting a control plane that is just coming up in lock-step. Only TransientError is
retried (or what the caller's `retryable` accepts); a SecurityError or DiscoveryError (and
anything else) propagates at once, so a bad signature or a CA that matches no pin fails
closed on the first sight.

The deadline is in seconds and may be float("inf") (the daemon waits forever). The last
sleep is shortened to land on the deadline, so the final try happens at the deadline
rather than one whole backoff before it. Clock, sleep and randomness are injectable
(tests, the benchmark, and a daemon that wants an interruptible sleep).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from kbootd.errors import DiscoveryError, KbootdError, SecurityError, TransientError, WaitTimeout

T = TypeVar("T")
RetryHook = Callable[[int, str, float], None]  # (attempt that failed, its cause, seconds until the next)


@dataclass(frozen=True)
class Backoff:
    """Ceilings of the random sleeps: first, first*factor, ... up to cap (seconds).

    The default is the trade-off measured by bench/discovery.py. Once at the cap, a joiner
    notices a control plane that appears within 0.9*cap at p99 (the wait left when it
    appears has density 2(cap-r)/cap^2) and, while waiting, sends 2/cap requests per second
    on average. cap=1.5 s: p99 ~1.35 s, 1.33 req/s per joiner (1330 req/s for 1000 nodes,
    mostly refused connections while nothing listens). kubeadm polls every 5 s: 0.2 req/s,
    up to 5 s late. first=0.25 s: a one-off 503 costs at most a quarter second.
    """

    first: float = 0.25
    cap: float = 1.5
    factor: float = 2.0
    jitter: bool = True  # False: sleep exactly the ceiling (kubeadm's fixed API retry interval)

    def __post_init__(self) -> None:
        if not (0 <= self.first <= self.cap < math.inf and self.factor >= 1):
            raise ValueError(f"invalid backoff {self}: need 0 <= first <= cap < inf and factor >= 1")

    @classmethod
    def constant(cls, interval: float) -> Backoff:
        """The same sleep after every failure, without jitter."""
        return cls(first=interval, cap=interval, factor=1.0, jitter=False)

    def ceiling(self, failures: int) -> float:
        """The largest sleep after `failures` consecutive failures (>= 1); never overflows."""
        if self.first == 0 or self.factor == 1:
            return self.first
        # Grow only as far as the cap: the exponent stays small whatever `failures` is
        # (a daemon's millionth failure must not compute factor ** 999999).
        n = max(failures, 1) - 1
        limit = math.ceil(math.log(self.cap / self.first, self.factor)) if self.cap > self.first else 0
        return min(self.cap, self.first * self.factor ** min(n, limit))

    def delay(self, failures: int, rand: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, ceiling); the ceiling itself without jitter."""
        if not self.jitter:
            return self.ceiling(failures)
        return self.ceiling(failures) * min(max(rand(), 0.0), 1.0)


@dataclass(frozen=True)
class Timing:
    """Where the loop gets time and randomness from."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = field(default=random.random)


class TimeSource(Protocol):
    """Anything with the three: a Timing, or the context's Seams."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    rand: Callable[[], float]


DEFAULT_BACKOFF = Backoff()
REAL_TIME = Timing()


def retry(fn: Callable[[], T], *, what: str, deadline: float, backoff: Backoff = DEFAULT_BACKOFF,
          timing: TimeSource = REAL_TIME, on_retry: RetryHook | None = None,
          retryable: Callable[[BaseException], bool] | None = None) -> T:
    """Call fn until it returns; retry TransientError (or what `retryable` accepts among
    KbootdErrors) until `deadline` seconds from now.

    Raises WaitTimeout naming the last cause when time is up; any other error at once.
    """
    if math.isnan(deadline) or deadline < 0:
        raise ValueError(f"{what}: deadline must be >= 0 seconds or inf, got {deadline}")
    start = timing.clock()
    end = start + deadline  # inf stays inf
    attempt = 0
    informative: KbootdError | None = None  # the last failure that said something about the peer
    while True:
        attempt += 1
        try:
            return fn()
        except (SecurityError, DiscoveryError):
            raise  # trust failures are final, whatever their class hierarchy says
        except KbootdError as e:
            if not (retryable(e) if retryable is not None else isinstance(e, TransientError)):
                raise
            cause = str(e)
            if not getattr(e, "deadline_reached", False):
                informative = e
            remaining = end - timing.clock()
            if remaining <= 0:
                waited = timing.clock() - start
                # A request cut short by this very deadline says nothing; name the cause before it.
                last = e if informative is None else informative
                raise WaitTimeout(
                    f"{what}: gave up after {waited:.1f} s and {attempt} attempt{'s' if attempt > 1 else ''}; "
                    f"last error: {last}", hint=getattr(last, "hint", None)) from last
            next_in = min(backoff.delay(attempt, timing.rand), remaining)
            if on_retry is not None:
                on_retry(attempt, cause, next_in)
            timing.sleep(next_in)
