"""wait-control-plane: the kubelet's health, then the API server's, each with a deadline.

Test seams (ctx.seams): skip_kubelet_check (no kubelet on this host), kubelet_healthz_url
(a test double), clock/sleep (fake time); ctx.data.api_client, when set, is polled instead
of a client built from admin.conf.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kbootd import apiclient, transport
from kbootd.config.model import DEFAULT_CRI_SOCKET
from kbootd.duration import format_duration
from kbootd.errors import KbootdError, SecurityError, TransientError, WaitTimeout
from kbootd.node import control_plane_url
from kbootd.retry import Backoff, Timing, retry

KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
POLL_INTERVAL = 0.5
KUBELET_TIMEOUT = 5.0  # one /healthz request, connect to body
PROGRESS_EVERY = 10.0  # seconds between "still waiting" lines

_HINT = """This error is likely caused by:
	- The kubelet is not running
	- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)

If you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:
	- 'systemctl status kubelet'
	- 'journalctl -xeu kubelet'

Additionally, a control plane component may have crashed or exited when started by the container runtime.
To troubleshoot, list all containers using your preferred container runtimes CLI.
Here is one example how you may list all running Kubernetes containers by using crictl:
	- 'crictl --runtime-endpoint {socket} ps -a | grep kube | grep -v pause'
	Once you have found the failing container, you can inspect its logs with:
	- 'crictl --runtime-endpoint {socket} logs CONTAINERID'"""


def failure_hint(ctx: Any) -> str:
    try:
        socket = ctx.data.cri_socket
    except KbootdError:  # only a hint: never fail over it
        socket = DEFAULT_CRI_SOCKET
    return _HINT.format(socket=socket)


def wait_control_plane(ctx: Any, server: str | None = None) -> None:
    """`server`: the API server to wait for (a joining control plane waits for its own, not the
    load-balanced endpoint that already answered); the control-plane endpoint by default."""
    cfg = ctx.cfg
    url = server or control_plane_url(ctx)
    manifests = ctx.paths.manifests_dir
    kubelet_url = ctx.seams.kubelet_healthz_url or KUBELET_HEALTHZ
    ctx.reporter.info("wait-control-plane", "Waiting for the kubelet to boot up the control plane as static Pods "
                      f'from directory "{manifests}"')
    if ctx.dry_run:
        ctx.reporter.out(f"[dryrun] Would make sure the kubelet returns 'ok' at {kubelet_url}")
        ctx.reporter.out("[dryrun] Would wait for the API Server's /healthz endpoint to return 'ok'")
        return
    clock, sleep = ctx.seams.clock, ctx.seams.sleep
    if ctx.seams.skip_kubelet_check:
        ctx.reporter.info("kubelet-check", "Skipping the kubelet health check: no kubelet on this host")
    else:
        timeout = cfg.timeouts.kubelet_health_check
        ctx.reporter.info("kubelet-check", f"Waiting for a healthy kubelet at {kubelet_url}. "
                          f"This can take up to {format_duration(timeout)}")
        until = time.monotonic() + timeout  # real time: no request outlives the wait, whatever the clock
        took = _poll(ctx, "kubelet-check", lambda: _kubelet_ok(kubelet_url, until), timeout, clock, sleep,
                     what=f"the kubelet at {kubelet_url}")
        ctx.reporter.info("kubelet-check", f"The kubelet is healthy after {_took(took)}")
    timeout = cfg.timeouts.control_plane_component_health_check
    client = ctx.data.api_client or _health_client(ctx, url)
    ctx.reporter.info("api-check", f"Waiting for a healthy API server at {url}/healthz. "
                      f"This can take up to {format_duration(timeout)}")
    try:
        took = _poll(ctx, "api-check", lambda: _api_ok(client), timeout, clock, sleep,
                     what=f"the API server at {url}")
    finally:
        if client is not ctx.data.api_client:
            client.close()
    ctx.reporter.info("api-check", f"The API server is healthy after {_took(took)}")


def _health_client(ctx: Any, url: str) -> apiclient.Client:
    """admin.conf's credentials and CA, pointed at this control plane's URL (no RBAC needed for /healthz)."""
    return apiclient.client_for(ctx, ctx.paths.admin_conf, server=url)


def _kubelet_ok(url: str, until: float | None = None) -> str | None:
    """None when healthy, else why not. Plain HTTP on loopback, as the kubelet serves it; no proxy."""
    try:
        r = transport.request(url, timeout=KUBELET_TIMEOUT, until=until, max_body=4096, cleartext=True)
    except KbootdError as e:
        return str(e).split(": ", 1)[-1]
    body = r.text().strip()
    return None if r.status == 200 and body == "ok" else f"HTTP {r.status}: {body[:64]!r}"


def _api_ok(client: apiclient.Client) -> str | None:
    try:
        status, body = client.raw_get("/healthz")
    except SecurityError:
        raise  # a CA mismatch will not heal by waiting
    except KbootdError as e:
        return str(e)
    return None if status == 200 and body.strip() == "ok" else f"/healthz returned HTTP {status}: {body.strip()[:200]!r}"


def _poll(ctx: Any, phase: str, check: Callable[[], str | None], timeout: float,
          clock: Callable[[], float], sleep: Callable[[float], None], *, what: str) -> float:
    """Seconds until check() returned None, polling every POLL_INTERVAL (kbootd.retry) until timeout."""
    start = clock()
    next_report = [start + PROGRESS_EVERY]

    def attempt() -> None:
        why = check()
        if why is not None:
            raise TransientError(why)

    def progress(_attempt: int, why: str, _next_in: float) -> None:
        now = clock()
        if now >= next_report[0]:
            ctx.reporter.info(phase, f"Still waiting for {what} ({now - start:.0f}s): {why}")
            next_report[0] = now + PROGRESS_EVERY

    try:
        retry(attempt, what=what, deadline=timeout, backoff=Backoff.constant(POLL_INTERVAL),
              timing=Timing(clock=clock, sleep=sleep), on_retry=progress)
    except WaitTimeout as e:
        raise WaitTimeout(f"{what} is not healthy after {format_duration(round(timeout))}: {e.__cause__}",
                          hint=failure_hint(ctx)) from None
    return clock() - start


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
