#!/usr/bin/python3
"""A stand-in containerd for kbootd's daemon e2e test; installed in the hosts as /usr/bin/containerd.

The containers cannot run containerd (no usable cgroups). kbootd needs three things from
it: `containerd --version` (phase cri picks the config schema from it), a service kbootd
may `systemctl restart containerd` after writing /etc/containerd/config.toml, and a CRI
socket that accepts connections (preflight's CRI check). This program listens on
/run/containerd/containerd.sock, accepts and closes connections, and tells systemd
READY=1 (Type=notify, as containerd's own unit), so a restart returns once the socket is
back.
"""

from __future__ import annotations

import os
import socket
import sys

SOCKET = "/run/containerd/containerd.sock"
VERSION_LINE = "containerd github.com/containerd/containerd v1.7.24 e2e-standin"


def notify(msg: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    addr = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(msg.encode(), addr)


def main(argv: list[str]) -> int:
    if "--version" in argv or "-v" in argv:
        print(VERSION_LINE)
        return 0
    os.makedirs(os.path.dirname(SOCKET), exist_ok=True)
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(SOCKET)
    srv.listen(16)
    config = "/etc/containerd/config.toml"
    print(f"containerd-standin: serving {SOCKET}; {config} "
          f"{'present' if os.path.exists(config) else 'absent'}", flush=True)
    notify("READY=1\nSTATUS=serving (e2e stand-in)")
    while True:
        conn, _ = srv.accept()
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
