"""The long fuzz profile: every input surface of tests/fuzzing.py, counted.

    python bench/fuzz.py [--cases 50000] [--surface config ...] [--budget 5] [--show 3]

--cases is the total, split over the surfaces by weight (the CLI and the daemon, which do
more per case, get fewer). Prints per surface: cases, accepted, clean errors (a KbootdError
with the right exit code naming the source), unexpected exceptions (the findings, a few
shown) and hangs (a case past --budget seconds). For the CLI, "accepted" means main()
returned a code of the README's table with no traceback and no "internal error" (its clean
errors are counted there too). bench/fuzz_properties.py runs the property suite
(tokens, the YAML reader, alias graphs, --root resolution, the daemon's settings). Exit status 1 if anything unexpected or a hang was found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: kbootd, tests

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import fuzzing as fz  # noqa: E402

# surface -> (weight, strategy, case builder, judge keywords)
CA = fz.ca_pem()


def surfaces() -> dict[str, tuple[float, Any, Any, dict[str, Any]]]:
    return {
        "config (v1beta4/v1beta3/v1alpha1)": (6, fz.config_texts(), fz.config_case, {"names": fz.CONFIG_NAMES}),
        "daemon (kbootd.yaml, drop-ins, user-data, instance data)": (
            3, fz.daemon_inputs(), fz.daemon_case, {"names": fz.DAEMON_NAMES}),
        "state.json": (4, fz.state_texts(), fz.state_case, {"names": ("state.json",)}),
        "kubeconfig": (4, fz.kubeconfig_texts(CA), fz.kubeconfig_case, {"names": ("/fuzz/admin.conf",)}),
        "cluster-info": (3, fz.cluster_infos(CA), fz.cluster_info_case,
                         {"names": ("https://10.0.0.10:6443", "cluster-info"), "codes": (4,), "transient_ok": True}),
        "durations": (4, fz.durations(), fz.duration_case, {"names": ("--fuzz-duration",)}),
        "pins": (3, fz.pins(), fz.pin_case, {"names": ("--discovery-token-ca-cert-hash",)}),
        "tokens": (3, fz.tokens(), fz.token_case, {"names": ("--token",)}),
        "cli flags": (1, fz.cli_argvs(), None, {"names": ()}),
    }


def run_surface(name: str, n: int, strategy: Any, build: Any, kw: dict[str, Any], budget: float,
                show: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    shown: list[str] = []
    root = tempfile.mkdtemp(prefix="kbootd-fuzz-")

    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy, st.data())
    def case(value: Any, data: st.DataObject) -> None:
        if build is None:  # the CLI: value is (kind, argv)
            text = data.draw(fz.config_texts()) if value[0] == "config-validate" else ""
            out = fz.cli_judge(value[1], root, text, budget * 4)
            shown_value: Any = value[1]
        else:
            out = fz.judge(build(value), budget=budget, **kw)
            shown_value = value
        counts["cases"] += 1
        counts[out.kind] += 1
        if out.kind in ("unexpected", "hang") and len(shown) < show:
            shown.append(f"    {out.kind}: {out.detail[:300]}\n      input: {repr(shown_value)[:300]}")

    case()
    for line in shown:
        print(line)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50_000)
    ap.add_argument("--surface", action="append", help="substring of a surface name (default: all)")
    ap.add_argument("--budget", type=float, default=5.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--show", type=int, default=3, help="findings shown per surface")
    a = ap.parse_args()
    table = surfaces()
    chosen = {k: v for k, v in table.items() if not a.surface or any(s in k for s in a.surface)}
    total_w = sum(v[0] for v in chosen.values())
    rows = []
    t0 = time.monotonic()
    for name, (w, strat, build, kw) in chosen.items():
        n = max(1, round(a.cases * w / total_w))
        print(f"{name}: {n} cases ...", flush=True)
        t = time.monotonic()
        c = run_surface(name, n, strat, build, kw, a.budget, a.show)
        rows.append((name, c, time.monotonic() - t))
    print()
    print(f"{'surface':58} {'cases':>7} {'accepted':>8} {'clean':>7} {'unexpected':>10} {'hangs':>6} "
          f"{'secs':>6}")
    tot: Counter[str] = Counter()
    for name, c, secs in rows:
        tot.update(c)
        print(f"{name:58} {c['cases']:7} {c['ok']:8} {c['clean']:7} {c['unexpected']:10} {c['hang']:6} "
              f"{secs:6.0f}")
    print(f"{'total':58} {tot['cases']:7} {tot['ok']:8} {tot['clean']:7} {tot['unexpected']:10} {tot['hang']:6} "
          f"{time.monotonic() - t0:6.0f}")
    return 1 if tot["unexpected"] or tot["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
