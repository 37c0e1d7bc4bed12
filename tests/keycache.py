"""Pre-generated private keys shared by the whole test session (like kubeadm's pkiutil/testing).

RSA generation is what makes PKI tests slow (~60 ms per 2048-bit key, ~0.5 s per 4096-bit
one). Keys are made lazily, once per process, and handed out round-robin from a pool per
algorithm by a session-wide counter, so keys within one test stay distinct (a "second CA"
really has another key) while the pool is reused across tests.

    from tests.keycache import cached_keys, key
    with cached_keys():          # kbootd.pki.keys.new_private_key now draws from the pool
        ...
    other = key("RSA-2048", 3)   # a specific cached key

Other test modules may use the `use_cached_keys` fixture: `pytestmark = pytest.mark.usefixtures(...)`
needs it imported, e.g. `from tests.keycache import use_cached_keys  # noqa: F401`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kbootd.pki import keys

# Enough distinct keys for a full init (3 CAs, 7 leaves, sa, 5 kubeconfigs) plus a spare CA.
POOL_SIZES = {"RSA-2048": 24, "RSA-3072": 4, "RSA-4096": 3, "ECDSA-P256": 24, "ECDSA-P384": 24}

_lock = threading.Lock()
_pool: dict[str, list[keys.PrivateKey]] = {}
_counters = {alg: itertools.count() for alg in POOL_SIZES}


def key(algorithm: str = "RSA-2048", index: int = 0) -> keys.PrivateKey:
    """The index-th cached key of an algorithm (generated on first use, then kept)."""
    size = POOL_SIZES[algorithm]
    index %= size
    with _lock:
        pool = _pool.setdefault(algorithm, [])
        while len(pool) <= index:
            pool.append(keys.generate_key(algorithm))
        return pool[index]


def next_key(algorithm: str) -> keys.PrivateKey:
    """The factory: the next key of the pool, round-robin over the session."""
    return key(algorithm, next(_counters[algorithm]))


@contextmanager
def cached_keys() -> Iterator[None]:
    with keys.key_factory(next_key):
        yield


@pytest.fixture
def use_cached_keys() -> Iterator[None]:
    with cached_keys():
        yield
