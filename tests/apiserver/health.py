"""/healthz, /livez and /readyz with the output format of k8s.io/apiserver's healthz package."""

from __future__ import annotations

import threading
from collections.abc import Iterable

# The checks a v1.32 kube-apiserver lists for /readyz?verbose (fixture 05), in its order.
READYZ_CHECKS = (
    "ping", "log", "etcd", "etcd-readiness", "informer-sync",
    "poststarthook/start-apiserver-admission-initializer", "poststarthook/generic-apiserver-start-informers",
    "poststarthook/priority-and-fairness-config-consumer", "poststarthook/priority-and-fairness-filter",
    "poststarthook/storage-object-count-tracker-hook", "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers", "poststarthook/crd-informer-synced",
    "poststarthook/start-system-namespaces-controller", "poststarthook/start-cluster-authentication-info-controller",
    "poststarthook/start-kube-apiserver-identity-lease-controller",
    "poststarthook/start-kube-apiserver-identity-lease-garbage-collector",
    "poststarthook/start-legacy-token-tracking-controller", "poststarthook/start-service-ip-repair-controllers",
    "poststarthook/rbac/bootstrap-roles", "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/priority-and-fairness-config-producer", "poststarthook/bootstrap-controller",
    "poststarthook/aggregator-reload-proxy-client-cert", "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-status-local-available-controller",
    "poststarthook/apiservice-status-remote-available-controller",
    "poststarthook/apiservice-registration-controller", "poststarthook/apiservice-discovery-controller",
    "poststarthook/kube-apiserver-autoregistration", "autoregister-completion",
    "poststarthook/apiservice-openapi-controller", "poststarthook/apiservice-openapiv3-controller", "shutdown",
)
# /livez and /healthz leave out the readiness-only checks.
LIVEZ_CHECKS = tuple(c for c in READYZ_CHECKS if c not in ("etcd-readiness", "informer-sync", "shutdown"))
ENDPOINTS = {"readyz": READYZ_CHECKS, "livez": LIVEZ_CHECKS, "healthz": LIVEZ_CHECKS}


class Health:
    """Which checks fail right now, per endpoint. Everything passes unless a test says otherwise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, set[str]] = {e: set() for e in ENDPOINTS}

    def set_failing(self, endpoints: Iterable[str], checks: Iterable[str]) -> None:
        checks = set(checks)
        with self._lock:
            for e in endpoints:
                unknown = checks - set(ENDPOINTS[e])
                if unknown:
                    raise ValueError(f"{e} has no check(s) {sorted(unknown)}")
                self._failing[e] = set(checks)

    def failing(self, endpoint: str) -> set[str]:
        with self._lock:
            return set(self._failing[endpoint])

    def render(self, endpoint: str, check: str | None, verbose: bool, exclude: Iterable[str]) -> tuple[int, bytes]:
        """(status, text body); bodies and codes as the Go handlers write them."""
        checks = ENDPOINTS[endpoint]
        failing = self.failing(endpoint)
        if check is not None:
            if check not in checks:
                return 404, b"404 page not found\n"
            if check in failing:
                return 500, f"internal server error: {check} check failed\n".encode()
            return 200, b"ok"
        excluded = set(exclude)
        lines, failed = [], []
        for c in checks:
            if c in excluded:
                lines.append(f"[+]{c} excluded: ok\n")
            elif c in failing:
                lines.append(f"[-]{c} failed: reason withheld\n")
                failed.append(c)
            else:
                lines.append(f"[+]{c} ok\n")
        if failed:  # always verbose on failure, and http.Error adds the newline
            return 500, ("".join(lines) + f"{endpoint} check failed\n").encode()
        if not verbose:
            return 200, b"ok"
        return 200, ("".join(lines) + f"{endpoint} check passed\n").encode()
