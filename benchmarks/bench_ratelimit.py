"""Rate limits: ``vat run`` against a local server that admits a fixed number of requests per second.

benchmarks/rate_server.py serves ``openai/bench`` on 127.0.0.1 with a token bucket (``--rps``, burst of
0.1 s) and answers 429 + Retry-After beyond it. The runner starts unpaced (concurrency 8, default
retries), learns the limit from the 429s (runner.execute.rate_gate.RateGate) and should keep ≥ 90 % of it with
every request answered. Throughput is answers / send-phase seconds; the server's counts are checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, env, last_json, median, show, vat  # noqa: E402


def _server(rps: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "benchmarks/rate_server.py", "--rps", str(rps)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def run(rps: float = 20.0, scenes: int = 15, repeats: int = 3) -> dict[str, Any]:
    """Median fraction of the limit reached, and requests lost (must be 0)."""
    fractions, lost, limited = [], 0, []
    for i in range(repeats):
        proc, base = _server(rps)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = vat(
                    "run",
                    "model.name=openai/bench",
                    f"model.api_base={base}/v1",
                    "model.logprobs=false",
                    f"selection.max_scenes={scenes}",
                    f"store.path={tmp}/v.duckdb",
                    "format=json",
                    extra_env={"OPENAI_API_KEY": "sk-bench"},
                )
            s = last_json(r["stdout"])
            stats = json.loads(urllib.request.urlopen(f"{base}/_stats").read())
        finally:
            proc.terminate()
            proc.wait()
        lost += s["requests"] - s["answered"]
        limited.append(stats["limited"])
        fractions.append(s["answered"] / s["elapsed_s"] / rps)
        print(
            f"  repeat {i + 1}: {s['answered']}/{s['requests']} answered in {s['elapsed_s']} s, {stats['limited']} 429s"
        )
    out = {"rps_limit": rps, "fraction_of_limit": median(fractions), "lost": lost, "429s": median(limited)}
    show("ratelimit.limit", rps, "requests/s")
    show("ratelimit.fraction_of_limit (target >= 0.90)", out["fraction_of_limit"])
    show("ratelimit.requests_lost (target 0)", lost)
    show("ratelimit.429s_per_run", out["429s"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rps", type=float, default=20.0)
    ap.add_argument("--scenes", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    run(a.rps, a.scenes, a.repeats)
