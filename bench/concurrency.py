"""Two `kbootd init` on one root at once: does the PKI survive?

    python bench/concurrency.py [--runs 20] [--spread 0.3] [--seed N]

Each run: a fresh temp root; two real `python -m kbootd init` processes (node-local half,
ECDSA-P256) on it, the second started 0 to --spread seconds after the first (uniformly at
random; 0 is the worst case). Counted per run: how the two exited (both 0; one refused
because the other holds the lock; other failures), whether the PKI left behind is broken
(a CA certificate that does not match its key, or a leaf not signed by its CA: the figure
issue 11 found in 16 of 20 runs), and whether a third `kbootd init` afterwards converges.
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.crash import CONFIG, argv, env  # noqa: E402
from tests.test_crash import check_pki  # noqa: E402

LOCK_HELD = "another kbootd run is active"


def one_run(rng: random.Random, spread: float) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="kbootd-conc-") as d:
        root, cfg = Path(d) / "root", Path(d) / "kubeadm.yaml"
        root.mkdir()
        cfg.write_text(CONFIG.format(alg="ECDSA-P256"))
        delay = rng.uniform(0, spread)
        first = subprocess.Popen(argv(root, cfg), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        second = subprocess.Popen(argv(root, cfg), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = [p.communicate(timeout=120) + (p.returncode,) for p in (first, second)]
        codes = sorted(r[2] for r in results)
        refused = sum(1 for _, err, rc in results if rc != 0 and LOCK_HELD in err)
        if codes == [0, 0]:
            out["both exited 0"] += 1
        elif codes[0] == 0 and refused == 1:
            out["one refused (lock held)"] += 1
        else:
            out["other failure"] += 1
            print(f"    codes {codes}: {[r[1].strip()[-200:] for r in results if r[2]]}")
        try:
            check_pki(root)
        except (AssertionError, OSError, ValueError) as e:
            out["broken PKI"] += 1
            out["broken PKI with both exited 0"] += codes == [0, 0]
            print(f"    broken PKI: {e!r}"[:240])
        again = subprocess.run(argv(root, cfg), env=env(), capture_output=True, text=True, timeout=120)
        try:
            check_pki(root)
            ok = again.returncode == 0
        except (AssertionError, OSError, ValueError):
            ok = False
        out["third run converged" if ok else "third run stuck"] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--spread", type=float, default=0.3, help="seconds; the second run starts within this")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    total: collections.Counter[str] = collections.Counter()
    t0 = time.monotonic()
    for _ in range(a.runs):
        total.update(one_run(rng, a.spread))
    keys = ("both exited 0", "one refused (lock held)", "other failure", "broken PKI",
            "broken PKI with both exited 0", "third run converged", "third run stuck")
    print(f"runs {a.runs} ({time.monotonic() - t0:.0f} s): " + ", ".join(f"{k} {total[k]}" for k in keys))


if __name__ == "__main__":
    main()
