"""The long fuzz run: tests/test_fuzz_properties.py's input surfaces with many more cases, counted.

    python bench/fuzz_properties.py [--cases 10000] [--hang 5] [--only SURFACE]

Per surface (bootstrap tokens, the YAML reader, alias graphs, --root path resolution, the
daemon's settings documents, cloud-init user-data and metadata) it prints cases; properties that held (the input was accepted,
or refused with a clean exit-3/4 error: the properties check which); unexpected exceptions
(any other exception, or a property broken: a secret in a message, a path outside the
root); and hangs (a case over --hang seconds, stopped by SIGALRM). The strategies and
properties are the tests' (tests/test_fuzz_properties.py SURFACES); this counts instead of stopping.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Hang(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="cases per surface")
    ap.add_argument("--hang", type=float, default=5.0)
    ap.add_argument("--only", action="append", default=None, metavar="SURFACE", help="run only this surface")
    args = ap.parse_args()
    from hypothesis import HealthCheck, given, settings

    from tests.test_fuzz_properties import SURFACES

    def on_alarm(*_: object) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    print(f"{'surface':<16} {'cases':>7} {'held':>7} {'unexpected':>11} {'hangs':>6} {'seconds':>8}")
    total: collections.Counter[str] = collections.Counter()
    for name, (strategies, prop) in SURFACES.items():
        if args.only and name not in args.only:
            continue
        counts: collections.Counter[str] = collections.Counter()
        samples: list[str] = []
        counted = _counting(prop, counts, samples, args.hang)
        run = settings(max_examples=args.cases, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(given(**strategies)(counted))
        t = time.monotonic()
        run()
        print(f"{name:<16} {counts['cases']:>7} {counts['held']:>7} {counts['unexpected']:>11} "
              f"{counts['hangs']:>6} {time.monotonic() - t:>8.1f}")
        for s in samples:
            print("    " + s)
        total.update(counts)
    print(f"{'all':<16} {total['cases']:>7} {total['held']:>7} {total['unexpected']:>11} {total['hangs']:>6}")


def _counting(prop, counts, samples, hang: float):  # noqa: ANN001, ANN202
    def counted(**kw: object) -> None:
        counts["cases"] += 1
        signal.setitimer(signal.ITIMER_REAL, hang)
        try:
            prop(**kw)
            counts["held"] += 1
        except Hang:
            counts["hangs"] += 1
        except BaseException as e:  # noqa: BLE001 - counting is the point
            counts["unexpected"] += 1
            if len(samples) < 3:
                samples.append(f"{type(e).__name__}: {str(e)[:160]} for {kw!r:.160}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return counted


if __name__ == "__main__":
    main()
