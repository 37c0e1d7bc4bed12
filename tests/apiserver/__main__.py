"""Run the test API server as a process.

    python -m tests.apiserver --cert-dir /etc/kubernetes/pki --bind 0.0.0.0 --port 6443

Prints `serving <url>` on stdout once it accepts connections and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.apiserver import kubeadm
from tests.apiserver.server import TestAPIServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.apiserver", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cert-dir", type=Path, help="kubeadm-layout PKI dir: ca.crt[, ca.key], apiserver.crt/.key "
                                                 "(default: make a CA and serving certificate)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: an ephemeral port)")
    p.add_argument("--kubeconfig-dir", type=Path, help="write admin.conf and super-admin.conf here (needs ca.key)")
    p.add_argument("--server", help="server URL for those kubeconfigs and the seeded cluster-info (default: the "
                                    "bound address; use an address the serving certificate names)")
    p.add_argument("--port-file", type=Path, help="write the port actually bound to this file")
    p.add_argument("--seed-kubeadm", action="store_true",
                   help="start with the objects `kubeadm init` creates (token abcdef.0123456789abcdef)")
    p.add_argument("--token", default="abcdef.0123456789abcdef", help="bootstrap token for --seed-kubeadm")
    p.add_argument("--no-controllers", action="store_true", help="no bootstrap signer, token cleaner, CSR approver")
    p.add_argument("--not-ready", action="store_true", help="start with /readyz and /healthz failing")
    args = p.parse_args(argv)

    srv = TestAPIServer(cert_dir=args.cert_dir, bind=args.bind, port=args.port,
                        controllers=not args.no_controllers)
    if args.not_ready:
        srv.set_ready(False)
    srv.start()
    if args.seed_kubeadm:
        kubeadm.seed_init(srv, token=args.token, server=args.server)
    if args.kubeconfig_dir:
        for name, who in (("admin.conf", "admin"), ("super-admin.conf", "super-admin")):
            srv.write_kubeconfig(args.kubeconfig_dir / name, who, server=args.server)
    if args.port_file:
        args.port_file.write_text(f"{srv.port}\n")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"serving {srv.url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
