"""Overhead: a full ``vat run`` on a zero-latency fake provider versus a bare ``litellm.acompletion`` loop.

Both send the same distinct requests to ``mock/bench`` (runner/providers/mock.py, registered through
LiteLLM's custom-provider map) with the same concurrency, each in a fresh process, alternating, and the
median of ``repeats`` pairs is compared. Throughput counts the whole process after Python starts
(LiteLLM's import included) for the bare loop, and the whole ``vat run`` process (config, spec
loading, compile, store, import, send, commit) for the runner. Target: ratio >= 0.85.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import last_json, median, show, timed_rss, vat  # noqa: E402


def overrides(samples: int, scenes: int) -> list[str]:
    """The plan: ``scenes`` scenes of all splits × 20 actions × pre/post × ``samples``."""
    return [
        "model.name=mock/bench",
        "selection.split=all",
        f"selection.max_scenes={scenes}",
        f"model.samples={samples}",
    ]


def run(judgments: int = 20_000, repeats: int = 3, concurrency: int = 8) -> dict[str, Any]:
    """Alternate bare loop and ``vat run``; return the medians and the ratio."""
    samples = 4 if judgments >= 16_000 else 1
    scenes = max(1, min(132, judgments // (40 * samples)))
    ov = overrides(samples, scenes)
    bare, full, send = [], [], []
    n = 0
    for i in range(repeats):
        b = timed_rss([sys.executable, "benchmarks/bare_loop.py", str(concurrency), *ov])
        bj = last_json(b["stdout"])
        bare.append(bj["judgments"] / bj["wall_s"])
        with tempfile.TemporaryDirectory() as tmp:
            r = vat(
                "run",
                *ov,
                f"execution.concurrency={concurrency}",
                "execution.workers=1",  # one process against one process (bench_throughput.py runs 2)
                f"store.path={tmp}/v.duckdb",
                "format=json",
            )
        s = last_json(r["stdout"])
        n = s["answered"]
        if n != bj["judgments"] or s["failed"]:
            raise RuntimeError(f"vat answered {n} of {bj['judgments']} ({s['failed']} failed)")
        full.append(n / r["wall_s"])
        send.append(s["judgments_per_s"])
        print(
            f"  repeat {i + 1}: bare {bare[-1]:.1f}/s, vat run {full[-1]:.1f}/s (send phase {send[-1]:.1f}/s)"
        )
    out = {
        "judgments": n,
        "concurrency": concurrency,
        "bare_per_s": median(bare),
        "vat_per_s": median(full),
        "vat_send_per_s": median(send),
    }
    out["ratio"] = out["vat_per_s"] / out["bare_per_s"]
    show("overhead.judgments", n)
    show("overhead.bare_litellm_loop", out["bare_per_s"], "judgments/s")
    show("overhead.vat_run_whole_process", out["vat_per_s"], "judgments/s")
    show("overhead.vat_run_send_phase", out["vat_send_per_s"], "judgments/s")
    show("overhead.ratio (target >= 0.85)", out["ratio"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judgments", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    run(a.judgments, a.repeats, a.concurrency)
