"""Memory and CPU of `kbootd run`: a worker waiting for discovery, then supervising after READY.

    python bench/daemon.py [--seconds 60] [--interval 30] [--join auto|real|standin]

Each state runs `kbootd run` in its own process under a temp --root, with a real notify
socket (READY=1 is awaited, as systemd would) and no journald (records go to a file).

* waiting: the worker's settings point at 127.0.0.1:<a closed port>, so discovery is
  refused forever (the daemon passes timeouts.discovery = inf). With --join real the
  registered join workflow runs. Until join exists (kbootd.phases.JOIN is empty) a
  stand-in discovery phase is used (--join auto picks it): it imports what token
  discovery needs (kbootd.transport with ssl, cryptography's x509) and retries a TCP connection with
  join's backoff (full jitter, 0.1 s doubling to a 1.5 s cap), calling reporter.retry
  on every attempt exactly as join's retry loop does.
* supervising: a stand-in join that succeeds at once, then READY=1 and the exec into the
  lean supervisor (kbootd.daemon.supervise), which checks the Node every --interval
  seconds over TLS against the in-repo test API server (tests/apiserver) with a
  kubelet.conf client certificate. Under --root there is no systemctl: the kubelet
  check is skipped (one `systemctl is-active` per interval on a real host).

Reported: RSS (VmRSS, and VmHWM of the supervisor after exec) in MB, and CPU seconds
(user + system) per minute over the measured window, after a short settling time.
Goals: < 40 MB supervising, < 1 s CPU per minute idle.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "abcdef.0123456789abcdef"
PIN = "sha256:0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"


# --- stand-ins, run inside the measured process ------------------------------------------

def standin_discovery(ctx) -> None:  # noqa: ANN001
    """Token discovery against a closed port, forever, with join's backoff and reporter.retry."""
    import cryptography.x509  # noqa: F401 - what verifying cluster-info needs

    from kbootd import transport  # what fetching cluster-info needs

    transport.warm_up()

    host, _, port = ctx.join.api_server_endpoints[0].rpartition(":")
    attempt, ceiling = 0, 0.1
    while True:
        attempt += 1
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                return
        except OSError as e:
            cause = f"waiting for https://{host}:{port} ({e.strerror or e})"
        delay = random.uniform(0, ceiling)
        ctx.reporter.retry("discovery", attempt, cause, delay)
        time.sleep(delay)
        ceiling = min(1.5, ceiling * 2)


def standin_joined(ctx) -> None:  # noqa: ANN001
    ctx.reporter.info("discovery", "stand-in: joined at once")


def child(args: argparse.Namespace) -> int:
    """The measured process: patch the join workflow if asked, then `kbootd run`."""
    from kbootd import phases
    from kbootd.daemon import main
    from kbootd.workflow import Phase

    if args.child == "supervising":
        phases.WORKFLOWS["join"] = (Phase("discovery", "stand-in", run=standin_joined),)
    elif args.join == "standin":
        phases.WORKFLOWS["join"] = (Phase("discovery", "stand-in", run=standin_discovery),)
    return main.run(argparse.Namespace(root=args.root, verbosity=0, no_supervise=False))


# --- the harness ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(root: Path, path: str, text: str | bytes, mode: int = 0o600) -> None:
    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chmod(real, mode)


def settings(root: Path, endpoint: str, interval: int) -> None:
    write(root, "/etc/kbootd/kbootd.yaml",
          "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nrole: worker\n"
          f"token: {TOKEN}\nendpoint: {endpoint}\ncaCertHashes: [{PIN}]\nnodeName: node-3\n"
          f"supervise:\n  interval: {interval}s\n"
          # This machine is no node (no runtime, no kubelet): preflight would stop a real join
          # before discovery, which is the state measured here.
          "kubeadm: |\n  apiVersion: kubeadm.k8s.io/v1beta4\n  kind: JoinConfiguration\n"
          "  nodeRegistration:\n    ignorePreflightErrors: [all]\n"
          f"  discovery:\n    bootstrapToken:\n      token: {TOKEN}\n      apiServerEndpoint: {endpoint}\n"
          f"      caCertHashes: [{PIN}]\n")


def kubelet_conf(root: Path, api) -> None:  # noqa: ANN001
    import base64

    issued = api.issue_client_cert("node:node-3")
    write(root, "/var/lib/kubelet/pki/kubelet-client-current.pem", issued.cert_pem + issued.key_pem)
    b64 = base64.b64encode(api.ca_pem).decode()
    write(root, "/etc/kubernetes/kubelet.conf",
          f"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n"
          f"    server: {api.url}\n  name: default-cluster\nusers:\n- name: default-auth\n  user:\n"
          "    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n"
          "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n")


def proc(pid: int) -> tuple[float, float, float]:
    """(VmRSS MB, VmHWM MB, CPU seconds user+system)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024,
            (int(stat[11]) + int(stat[12])) / tick)


class NotifyListener:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.ready = threading.Event()
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop:
            try:
                msg = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.messages.append(msg)
            if "READY=1" in msg.split("\n"):
                self.ready.set()

    def close(self) -> None:
        self._stop = True
        time.sleep(0.3)
        self.sock.close()


def measure(state: str, args: argparse.Namespace, tmp: Path) -> dict[str, float | str]:
    root = tmp / state / "root"
    root.mkdir(parents=True)
    api = None
    if state == "waiting":
        settings(root, f"127.0.0.1:{free_port()}", args.interval)
    else:
        sys.path.insert(0, str(REPO))
        from tests.apiserver import TestAPIServer

        api = TestAPIServer(controllers=False).start()
        api.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-3"},
                          "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, manager="bench")
        settings(root, api.server_address, args.interval)
        kubelet_conf(root, api)
    listener = NotifyListener(str(tmp / state / "notify.sock"))
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    env.update(NOTIFY_SOCKET=str(tmp / state / "notify.sock"),
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "bench")]))
    log = open(tmp / state / "kbootd.log", "w")  # noqa: SIM115
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", state, "--root", str(root),
                          "--join", args.join], env=env, stdout=log, stderr=log)
    try:
        if state == "supervising" and not listener.ready.wait(30):
            raise SystemExit(f"no READY=1 from the daemon; see {tmp / state / 'kbootd.log'}")
        time.sleep(args.settle)
        if p.poll() is not None:
            raise SystemExit(f"kbootd run exited with {p.returncode}; see {tmp / state / 'kbootd.log'}")
        rss0, _, cpu0 = proc(p.pid)
        t0 = time.monotonic()
        peak = rss0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            rss, hwm, _ = proc(p.pid)
            peak = max(peak, rss)
        rss, hwm, cpu1 = proc(p.pid)
        minutes = (time.monotonic() - t0) / 60
        status = json.loads((root / "run/kbootd/status.json").read_text())
        return {"state": state, "rss_mb": rss, "rss_peak_mb": peak, "hwm_mb": hwm,
                "cpu_s_per_min": (cpu1 - cpu0) / minutes, "status": status.get("detail", ""),
                "notify_msgs": len(listener.messages)}
    finally:
        p.terminate()
        p.wait(10)
        listener.close()
        log.close()
        if api is not None:
            api.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per state")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring")
    ap.add_argument("--interval", type=int, default=30, help="the supervisor's check interval")
    ap.add_argument("--join", choices=("auto", "real", "standin"), default="auto")
    ap.add_argument("--child", choices=("waiting", "supervising"), help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.join == "auto":
        from kbootd.phases import WORKFLOWS

        args.join = "real" if WORKFLOWS["join"] else "standin"
    if args.child:
        raise SystemExit(child(args))
    print(f"kbootd run, worker, --root in a temp dir; join: {args.join}; window {args.seconds:g} s; "
          f"supervise interval {args.interval} s; {sys.executable}")
    print(f"{'state':<12} {'RSS MB':>7} {'peak MB':>8} {'CPU s/min':>10}  status")
    with tempfile.TemporaryDirectory(prefix="kbootd-bench-") as tmp:
        for state in ("waiting", "supervising"):
            r = measure(state, args, Path(tmp))
            print(f"{r['state']:<12} {r['rss_mb']:>7.1f} {r['rss_peak_mb']:>8.1f} {r['cpu_s_per_min']:>10.3f}  "
                  f"{str(r['status'])[:90]}")


if __name__ == "__main__":
    main()
