"""Start-up cost of light commands beside the bare interpreter, measured side by side in one run.

    python bench/startup.py [--runs 20]

Prints the median wall time of each command and its ratio to `python3 -c pass`.
Goal: `kbootd version` and `kbootd token generate` at 1.5x the bare interpreter or less.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    script = shutil.which("kbootd")
    entry = [script] if script else [py, "-c", "from kbootd.cli.main import main; raise SystemExit(main())"]
    cases = {
        "python3 -c pass": [py, "-c", "pass"],
        "kbootd version": entry + ["version"],
        "kbootd token generate": entry + ["token", "generate"],
        "kbootd --help": entry + ["--help"],
    }
    # Interleave the cases so machine noise hits them alike.
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            samples[name] += timed(argv, 1)
    base = statistics.median(samples["python3 -c pass"])
    print(f"{'command':<24} {'median ms':>10} {'min ms':>8} {'ratio':>6}   (runs={args.runs}, {py})")
    for name, s in samples.items():
        med = statistics.median(s)
        print(f"{name:<24} {med * 1000:>10.1f} {min(s) * 1000:>8.1f} {med / base:>6.2f}x")


if __name__ == "__main__":
    main()
