#!/usr/bin/python3
"""A stand-in crictl for kbootd's certificate-renewal e2e; installed as /usr/local/bin/crictl.

The containers run no container runtime, so the static Pods are transient units the test
starts (e2e_ha_support.StaticPods): etcd as `e2e-etcd`, the test API server as
`e2e-apiserver`. This program answers the two calls kbootd.staticpods makes to restart a
static Pod, as crictl would with the kubelet behind it:

* `crictl ps --quiet --state running --name ^<container>$ --label ...`: the "container ID"
  of a running stand-in (the unit's InvocationID), nothing when it does not run (the
  controller-manager and the scheduler never do here);
* `crictl stop ID...`: restarts the stand-in with that ID (the kubelet restarts a stopped
  container of a static Pod at once, with the files now on disk).

Every call is logged to stdout (the journal of the caller's unit) for the test to read.
"""

from __future__ import annotations

import re
import subprocess
import sys

UNITS = {"etcd": "e2e-etcd", "kube-apiserver": "e2e-apiserver"}


def say(msg: str) -> None:
    print(f"crictl-standin: {msg}", file=sys.stderr, flush=True)


def invocation(unit: str) -> str:
    r = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState", "-p", "InvocationID"],
                       capture_output=True, text=True, check=False)
    props = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return props.get("InvocationID", "") if props.get("ActiveState") == "active" else ""


def ps(argv: list[str]) -> int:
    name = argv[argv.index("--name") + 1] if "--name" in argv else ""
    container = re.sub(r"^\^|\$$", "", name)
    unit = UNITS.get(container)
    cid = invocation(unit) if unit else ""
    say(f"ps --name {name}: {cid or 'not running'}")
    if cid:
        print(cid)
    return 0


def stop(ids: list[str]) -> int:
    by_id = {invocation(u): u for u in UNITS.values()}
    for cid in ids:
        unit = by_id.get(cid)
        if not unit:
            say(f"stop {cid}: no such container")
            return 1
        subprocess.run(["systemctl", "restart", unit], check=True)
        say(f"stop {cid}: {unit} restarted")
        print(cid)
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "ps":
        return ps(argv[1:])
    if argv and argv[0] == "stop":
        return stop(argv[1:])
    say(f"unsupported: crictl {' '.join(argv)}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
