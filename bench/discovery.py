"""How fast joiners notice a control plane that appears, and what their waiting costs it.

    python bench/discovery.py [--joiners 20] [--delay 5] [--fleet 1000] [--appears 60] [--cap 1.5]

(a) reaction: N joiner threads run kbootd's real token discovery (unverified fetch, JWS, pin,
    verified second fetch through kbootd.apiclient) against 127.0.0.1:<port> with nothing
    listening; after --delay seconds the in-repo test API server starts on that port with an
    already signed cluster-info. Prints, from that moment, when each joiner had discovered it:
    median, p99, max. kubeadm polls every 5 s. Goal: p99 < 1.5 s.
(b) fleet: --fleet simulated joiners (the same discover_token and retry code, with fake
    clocks and a fake fetch, one timeline each since joiners do not interact) boot together
    and wait for a control plane that appears after --appears seconds. Prints the requests per
    second they send while waiting (mean and the worst one-second window) and when the last
    one discovered it; the same for several caps and for kubeadm's fixed 5 s poll.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: kbootd, tests.apiserver

TOKEN = "abcdef.0123456789abcdef"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


# --- (a) reaction time, real servers and threads ----------------------------------------------------

def reaction(joiners: int, delay: float, backoff: Any) -> None:
    import socket

    from kbootd.join.discovery import discover_token
    from kbootd.pin import pin_of
    from kbootd.token import BootstrapToken
    from tests.apiserver import TestAPIServer, kubeadm

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = TestAPIServer(port=port)
    store = srv.store
    kubeadm.grant_cluster_admins(store)
    kubeadm.upload_config(store, kubeadm.DEFAULT_CLUSTER_CONFIGURATION, kubeadm.DEFAULT_KUBELET_CONFIGURATION)
    kubeadm.create_token(store, TOKEN)
    kubeadm.bootstrap_token_rbac(store)
    kubeadm.cluster_info(store, f"https://127.0.0.1:{port}", srv.ca_pem)
    srv.controllers.sync_once()  # the bootstrap signer: cluster-info is signed before anyone can ask
    token, pins = BootstrapToken.parse(TOKEN), (pin_of(srv.ca_pem),)
    done: list[float] = [0.0] * joiners
    attempts = [0] * joiners
    errors: list[BaseException] = []

    def joiner(i: int) -> None:
        def count(_a: int, _c: str, _n: float) -> None:
            attempts[i] += 1

        try:
            discover_token((f"127.0.0.1:{port}",), token, pins, unsafe=False, deadline=delay + 60,
                           backoff=backoff, on_retry=count)
            done[i] = time.monotonic()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=joiner, args=(i,), daemon=True) for i in range(joiners)]
    for t in threads:
        t.start()
    time.sleep(delay)
    t0 = time.monotonic()  # the port starts listening; cluster-info is signed from its first answer on
    srv.start()
    started = time.monotonic() - t0
    for t in threads:
        t.join(60)
    srv.close()
    if errors:
        raise SystemExit(f"{len(errors)} joiners failed: {errors[0]}")
    took = [d - t0 for d in done]
    print(f"(a) reaction: {joiners} joiners, server started after {delay:g} s (start-up itself {started * 1000:.0f} ms), "
          f"backoff first={backoff.first:g} s cap={backoff.cap:g} s")
    print(f"    time from signed cluster-info to discovery done: median {statistics.median(took):.2f} s, "
          f"p99 {pct(took, 99):.2f} s, max {max(took):.2f} s; "
          f"failed attempts while waiting: {sum(attempts)} ({sum(attempts) / joiners / delay:.2f}/s per joiner)")


# --- (b) the fleet, simulated ------------------------------------------------------------------------

class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def signed_data() -> dict[str, str]:
    from kbootd import jws
    from kbootd.cluster.bootstraptoken import cluster_info_kubeconfig
    from kbootd.pki import certs, keys

    ca = certs.new_self_signed_ca(keys.generate_key("ECDSA-P256"), "kubernetes", __import__("datetime").timedelta(days=1))
    pem = certs.encode_cert_pem(ca)
    text = cluster_info_kubeconfig({"certificate-authority-data": base64.b64encode(pem).decode(),
                                    "server": "https://10.0.0.10:6443"})
    return {"kubeconfig": text, "jws-kubeconfig-abcdef": jws.sign(text, "abcdef", "0123456789abcdef"), "_pem": pem}


def fleet(n: int, appears: float, backoff: Any, data: dict[str, str], *, jitter: bool = True,
          spread: float = 0.0, seed: int = 1) -> dict[str, float]:
    from kbootd.errors import TransientError
    from kbootd.join.discovery import discover_token
    from kbootd.join.retry import Timing
    from kbootd.pin import pin_of
    from kbootd.token import BootstrapToken

    token, pins = BootstrapToken.parse(TOKEN), (pin_of(data["_pem"]),)
    served = {k: v for k, v in data.items() if not k.startswith("_")}
    requests: list[float] = []
    finished: list[float] = []
    master = random.Random(seed)
    for _ in range(n):
        ft = FakeTime(master.uniform(0, spread) if spread else 0.0)
        rng = random.Random(master.random())

        def fetch(_ep: str, ft: FakeTime = ft) -> dict[str, str]:
            requests.append(ft.now)
            if ft.now < appears:
                raise TransientError("connection refused")
            return served

        timing = Timing(clock=ft.clock, sleep=ft.sleep, rand=rng.random if jitter else (lambda: 1.0))
        discover_token(("10.0.0.10:6443",), token, pins, unsafe=False, deadline=float("inf"), backoff=backoff,
                       timing=timing, fetch=fetch, verified_fetch=lambda _ep, _ca: served)
        finished.append(ft.now)
    waiting = [t for t in requests if t < appears]
    per_second = Counter(int(t) for t in waiting)
    late = [f - appears for f in finished]
    return {"mean_rps": len(waiting) / appears, "peak_rps": max(per_second.values()),
            "steady_rps": sum(v for s, v in per_second.items() if s >= 10) / max(appears - 10, 1),
            "p99_late": pct(late, 99), "all_done": max(finished)}


def main() -> None:
    from kbootd.join.retry import DEFAULT_BACKOFF, Backoff

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--joiners", type=int, default=20)
    ap.add_argument("--delay", type=float, default=5.0, help="(a) seconds before the server starts")
    ap.add_argument("--fleet", type=int, default=1000)
    ap.add_argument("--appears", type=float, default=60.0, help="(b) when the control plane appears")
    ap.add_argument("--first", type=float, default=DEFAULT_BACKOFF.first)
    ap.add_argument("--cap", type=float, default=DEFAULT_BACKOFF.cap)
    ap.add_argument("--skip-reaction", action="store_true")
    args = ap.parse_args()
    backoff = Backoff(first=args.first, cap=args.cap)
    if not args.skip_reaction:
        reaction(args.joiners, args.delay, backoff)
    data = signed_data()
    print(f"(b) fleet: {args.fleet} joiners boot at t=0, the control plane appears at t={args.appears:g} s")
    print("    backoff                      mean req/s  worst 1 s  steady req/s  p99 late  all discovered at")
    rows = [(f"first={args.first:g} cap={args.cap:g} (chosen)", backoff, True)]
    rows += [(f"first={args.first:g} cap={c:g}", Backoff(first=min(args.first, c), cap=c), True)
             for c in (0.5, 1.0, 3.0, 5.0) if c != args.cap]
    # kubeadm polls every 5 s from its start; nodes boot at random phases of that period.
    rows.append(("kubeadm: every 5 s, no jitter", Backoff(first=5.0, cap=5.0), False))
    for name, b, jitter in rows:
        r = fleet(args.fleet, args.appears, b, data, jitter=jitter, spread=0.0 if jitter else 5.0)
        print(f"    {name:<28} {r['mean_rps']:>10.0f} {r['peak_rps']:>10.0f} {r['steady_rps']:>13.0f} "
              f"{r['p99_late']:>8.2f} s {r['all_done']:>8.2f} s")


if __name__ == "__main__":
    main()
