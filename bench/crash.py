"""Random SIGKILLs during `kbootd init` (node-local half): does every re-run converge?

    python bench/crash.py [--runs 120] [--algorithm ECDSA-P256|RSA-2048] [--seed N]

Each run: a fresh temp root; `python -m kbootd init` as a real process; SIGKILL at a
uniformly random moment between when the first key appears and the end of a whole run
(both measured first);
then `kbootd init` again. It converged when the re-run exits 0, every key and CA
certificate present after the kill is byte-identical afterwards, every CA certificate
matches its key and every leaf chains to its CA. "stuck" is a re-run that fails. Also
reports how many kills landed before the first write (nothing on disk) and after the
last (the run had finished). The deterministic kill-at-every-write suite is
tests/test_crash.py; this samples the moments between writes too.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens: [{{token: abcdef.0123456789abcdef}}]
localAPIEndpoint: {{advertiseAddress: 10.0.0.10}}
nodeRegistration: {{name: cp-1, criSocket: unix:///run/containerd/containerd.sock}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
encryptionAlgorithm: {alg}
networking: {{podSubnet: 10.244.0.0/16}}
"""
CLUSTER_HALF = "wait-control-plane,upload-config,mark-control-plane,bootstrap-token,addon"


def argv(root: Path, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "kbootd", "init", "--config", str(cfg), "--root", str(root),
            "--skip-phases", CLUSTER_HALF, "--ignore-preflight-errors", "all"]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    return e


def consistent(root: Path) -> bool:
    from tests.test_crash import check_pki

    try:
        check_pki(root)
    except (AssertionError, OSError, ValueError, Exception):  # noqa: BLE001 - any failure is "not consistent"
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=120)
    ap.add_argument("--algorithm", default="ECDSA-P256")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    from tests.crashkit import files, keys_and_cas

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "kubeadm.yaml"
        cfg.write_text(CONFIG.format(alg=args.algorithm))
        lengths, firsts = [], []
        for i in range(3):  # when the first file appears and how long a whole run takes here
            root = Path(d) / f"ref{i}"
            root.mkdir()
            t = time.monotonic()
            p = subprocess.Popen(argv(root, cfg), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            first = None
            while p.poll() is None:
                if first is None and any((root / "etc").rglob("*.key")):
                    first = time.monotonic() - t
                time.sleep(0.002)
            assert p.returncode == 0
            lengths.append(time.monotonic() - t)
            firsts.append(first if first is not None else 0.0)
        expected = files(Path(d) / "ref0")
        span, start = statistics.median(lengths), statistics.median(firsts)
        converged = stuck = changed = before_first = after_last = 0
        for i in range(args.runs):
            root = Path(d) / f"r{i}"
            root.mkdir()
            p = subprocess.Popen(argv(root, cfg), env=env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            # Kills during start-up prove nothing: aim at the writing part of the run.
            time.sleep(rng.uniform(max(0.0, start - 0.05), span))
            finished = p.poll() is not None
            if not finished:
                p.send_signal(signal.SIGKILL)
            p.wait()
            after_last += finished
            before_first += not files(root)
            kept = keys_and_cas(root)
            r = subprocess.run(argv(root, cfg), env=env(), capture_output=True, text=True, check=False)
            now = keys_and_cas(root)
            if r.returncode != 0:
                stuck += 1
                print(f"run {i}: stuck: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            elif {k: now.get(k) for k in kept} != kept:
                changed += 1
                print(f"run {i}: a key or CA changed")
            elif files(root) != expected or not consistent(root):
                stuck += 1
                print(f"run {i}: re-run exited 0 but the tree is incomplete or inconsistent")
            else:
                converged += 1
    print(f"algorithm {args.algorithm}, whole run {span:.2f} s, first key at {start:.2f} s (medians of 3); "
          "kills uniform between them")
    print(f"runs {args.runs}  converged {converged}  stuck {stuck}  key/CA changed {changed}  "
          f"(killed before any file: {before_first}; finished before the kill: {after_last})")


if __name__ == "__main__":
    main()
