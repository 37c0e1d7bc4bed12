"""Start-up cost of light commands beside the bare interpreter, measured side by side in one run.

    /usr/bin/python3 bench/startup.py [--runs 20] [--python /usr/bin/python3]
                                      [--launcher deb|installer] [--checkout DIR]

Each case runs as a child of this process; its CPU time (user + sys, from os.wait4) and its
wall time are taken per run, cases interleaved so machine noise hits them alike; medians
are printed with their ratio to `python3 -c pass` run by the same interpreter.

The interpreter defaults to /usr/bin/python3, the one the deb's /usr/bin/kbootd runs (a
pyenv shim or a venv's wrapper adds its own start-up and hides the ratio). kbootd runs from
the checkout with the deb's launcher (packaging/lean-launcher.py: import sys, import
kbootd.cli.main, call main); `--launcher installer` uses python3-installer's console script
instead (pip's and the rpm's), which also imports `re`. Bytecode is cached as in the deb.
Goal (issue 10, item 8): `version` and `token generate` at 1.5x the CPU time of the bare
interpreter or less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = str(Path(__file__).resolve().parent.parent)

# The launchers, with the checkout put first on sys.path: the deb's (packaging/lean-launcher.py)
# and python3-installer's template (installer.scripts._SCRIPT_TEMPLATE).
LAUNCHERS = {
    "deb": "import sys\nsys.path.insert(0, {repo!r})\nfrom kbootd.cli.main import main\nsys.exit(main())\n",
    "installer": ("import re\nimport sys\nsys.path.insert(0, {repo!r})\nfrom kbootd.cli.main import main\n"
                  "sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\nsys.exit(main())\n"),
}


# The deb ships compiled bytecode (py3compile): the children cache theirs (written by the
# warm-up runs, whatever this shell's PYTHONDONTWRITEBYTECODE says) in a directory of this
# run's, not in the checkout.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="kbootd-startup-pycache-")


def run_once(argv: list[str]) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of one run of argv, stdout and stderr discarded."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: exec straight away, no Python work between fork and exec
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            os.execve(argv[0], argv, ENV)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv}: exit status {os.waitstatus_to_exitcode(status)}")
    return ru.ru_utime + ru.ru_stime, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--python", default="/usr/bin/python3", help="the interpreter (default: the deb's)")
    ap.add_argument("--launcher", choices=sorted(LAUNCHERS), default="deb")
    ap.add_argument("--checkout", default=REPO, help="the kbootd source tree to run (default: this one)")
    args = ap.parse_args()
    py = args.python
    entry = [py, "-c", LAUNCHERS[args.launcher].format(repo=args.checkout)]
    cases = {
        "python3 -c pass": [py, "-c", "pass"],
        "kbootd version": entry + ["version"],
        "kbootd token generate": entry + ["token", "generate"],
        "kbootd --help": entry + ["--help"],
    }
    for argv in cases.values():  # warm up: bytecode caches written, files in the page cache
        run_once(argv)
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            c, w = run_once(argv)
            cpu[name].append(c)
            wall[name].append(w)
    version = " ".join(os.popen(f"{py} -VV").read().split()[:2])
    print(f"interpreter: {py} ({version}); kbootd from {args.checkout}, {args.launcher} launcher; "
          f"{args.runs} runs each, interleaved, medians")
    base_cpu = statistics.median(cpu["python3 -c pass"])
    base_wall = statistics.median(wall["python3 -c pass"])
    print(f"{'command':<24} {'CPU ms':>8} {'CPU ratio':>10} {'wall ms':>9} {'wall ratio':>11}")
    for name in cases:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"{name:<24} {c * 1000:>8.1f} {c / base_cpu:>9.2f}x {w * 1000:>9.1f} {w / base_wall:>10.2f}x")
    sys.stdout.flush()
    shutil.rmtree(ENV["PYTHONPYCACHEPREFIX"], ignore_errors=True)


if __name__ == "__main__":
    main()
