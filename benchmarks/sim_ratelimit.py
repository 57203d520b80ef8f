"""Simulated providers for ``runner.execute.rate_gate.RateGate``: how close to a rate limit, how many 429s, how fast
under sporadic 429s. Simulated time (a hand-moved clock), so it runs in seconds and gives the same
numbers on any machine; ``bench_ratelimit.py`` measures the real thing over HTTP.

``python benchmarks/sim_ratelimit.py`` prints one row per scenario: fraction of the limit reached (or
requests/s when there is no limit), 429s received, requests lost (a request is lost after
``ATTEMPTS`` attempts, the runner's 1 + 3 × max_retries for a 429). Scenarios: token buckets at 5, 20,
100 and 300 requests/s with Retry-After exact to the millisecond (as OpenAI's ``retry-after-ms``) or
rounded up to whole seconds (as a plain ``Retry-After``), and an unlimited provider that answers 3 % of
requests with a 429 at random (sporadic overload; the reliability fault tests do this).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.execute.rate_gate import RateGate  # noqa: E402

ATTEMPTS = 13


class Clock:
    """Simulated seconds."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def simulate(
    rps: float | None = None,
    burst: float = 2.0,
    p429: float = 0.0,
    latency: float = 0.02,
    n: int = 1200,
    workers: int = 8,
    jitter: float = 0.0,
    whole_seconds: bool = False,
    seed: int = 1,
    **gate: Any,
) -> dict[str, float]:
    """``n`` requests from ``workers`` tasks through one gate to a simulated provider."""
    clock = Clock()
    g = RateGate(clock=clock, **gate)
    rnd = random.Random(seed)
    tokens, stamp = burst, clock.t
    out = {"limited": 0, "lost": 0, "done": 0}
    heap: list[tuple[float, int, asyncio.Future[None]]] = []
    seq = [0]

    async def sleep_until(t: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        seq[0] += 1
        heapq.heappush(heap, (t, seq[0], fut))
        await fut

    async def worker(todo: Any) -> None:
        nonlocal tokens, stamp
        for _ in todo:
            for _attempt in range(ATTEMPTS):
                while (wait := g.reserve()) > 0:
                    await sleep_until(clock.t + wait)
                    if clock() >= g.resume_at:
                        break
                sent = clock.t
                await sleep_until(clock.t + latency * (1 + jitter * rnd.random()))
                retry_after: float | None = None
                ok = True
                if rps:
                    tokens = min(burst, tokens + (clock.t - stamp) * rps)
                    stamp = clock.t
                    if tokens >= 1:
                        tokens -= 1
                    else:
                        ok, retry_after = False, (1 - tokens) / rps
                        if whole_seconds:
                            retry_after = float(math.ceil(retry_after))
                if ok and p429 and rnd.random() < p429:
                    ok, retry_after = False, 0.05
                if ok:
                    g.answered()
                    out["done"] += 1
                    break
                out["limited"] += 1
                g.throttled(retry_after, sent)
            else:
                out["lost"] += 1

    async def main() -> float:
        todo = iter(range(n))
        start = clock.t
        tasks = [asyncio.create_task(worker(todo)) for _ in range(workers)]
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if heap:
                t, _, fut = heapq.heappop(heap)
                clock.t = max(clock.t, t)
                fut.set_result(None)
        return out["done"] / (clock.t - start)

    rate = asyncio.run(main())
    return {"rate": rate, "fraction": rate / rps if rps else float("nan"), **out}


SCENARIOS: dict[str, dict[str, Any]] = {
    "bucket 20/s, burst 2": {"rps": 20},
    "bucket 20/s, burst 2, latency jitter": {"rps": 20, "jitter": 1.0},
    "bucket 100/s, burst 10": {"rps": 100, "burst": 10, "n": 6000, "latency": 0.005},
    "bucket 300/s, burst 30, 64 in flight": {
        "rps": 300,
        "burst": 30,
        "n": 10000,
        "latency": 0.01,
        "workers": 64,
    },
    "bucket 5/s, burst 1": {"rps": 5, "burst": 1, "n": 600},
    "no limit, 3 % random 429s": {"p429": 0.03, "latency": 0.01, "n": 2000},
    "no limit, no faults": {"latency": 0.01, "n": 2000},
}


def run() -> dict[str, dict[str, float]]:
    """Every scenario, with exact and with whole-second Retry-After."""
    results = {}
    print("| scenario | Retry-After | fraction of limit | requests/s | 429s | lost |")
    print("|---|---|---|---|---|---|")
    for name, kw in SCENARIOS.items():
        for whole in (False, True):
            if whole and not kw.get("rps"):
                continue
            r = simulate(**kw, whole_seconds=whole)
            results[f"{name}, {'whole s' if whole else 'exact'}"] = r
            frac = f"{r['fraction']:.3f}" if kw.get("rps") else "-"
            ra = "whole seconds" if whole else ("exact (ms)" if kw.get("rps") else "0.05 s")
            print(f"| {name} | {ra} | {frac} | {r['rate']:.1f} | {r['limited']} | {r['lost']} |")
    return results


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    run()
