"""init's node-local phases into a fresh temp root, RSA-2048 vs ECDSA-P256, side by side.

    python bench/init_local.py [--runs 5]

Times certs + kubeconfig + etcd + control-plane + kubelet-start (files only: under a temp
root nothing runs on the host) after start-up, and how much of it is key generation.
Goal: RSA key generation dominates; the ECDSA run stays under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

PHASES = ("certs", "kubeconfig", "etcd", "control-plane", "kubelet-start")
CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: 10.0.0.10}}
nodeRegistration: {{name: cp-1, criSocket: unix:///run/containerd/containerd.sock}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: {alg}
networking: {{podSubnet: 10.244.0.0/16}}
"""


def one_run(alg: str) -> tuple[float, float]:
    from kbootd import workflow
    from kbootd.config.load import load_file
    from kbootd.context import make_context
    from kbootd.phases import INIT
    from kbootd.pki import keys
    from kbootd.report import RecordingReporter

    keygen = 0.0

    def timed_key(algorithm: str):
        nonlocal keygen
        t = time.perf_counter()
        k = keys.generate_key(algorithm)
        keygen += time.perf_counter() - t
        return k

    cfg = load_file("bench.yaml", "init", lambda m: None, text=CONFIG.format(alg=alg))
    with tempfile.TemporaryDirectory() as d, keys.key_factory(timed_key):
        (Path(d) / "etc").mkdir()
        ctx = make_context(root=d, reporter=RecordingReporter(), init=cfg)
        t = time.perf_counter()
        for name in PHASES:
            workflow.run(INIT, ctx, only=name)
        total = time.perf_counter() - t
    return total, keygen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    one_run("ECDSA-P256")  # warm imports so start-up is not counted
    results: dict[str, list[tuple[float, float]]] = {"RSA-2048": [], "ECDSA-P256": []}
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        for alg in results:
            results[alg].append(one_run(alg))
    print(f"{'algorithm':<12} {'min s':>7} {'median s':>9} {'keygen median s':>16} {'keygen share':>13}")
    for alg, rs in results.items():
        totals = [r[0] for r in rs]
        kg = [r[1] for r in rs]
        med = statistics.median(totals)
        print(f"{alg:<12} {min(totals):>7.3f} {med:>9.3f} {statistics.median(kg):>16.3f} "
              f"{statistics.median(kg) / med:>12.0%}")
    rsa, ec = (statistics.median(r[0] for r in results[a]) for a in results)
    print(f"RSA/ECDSA median ratio: {rsa / ec:.1f}x")


if __name__ == "__main__":
    main()
