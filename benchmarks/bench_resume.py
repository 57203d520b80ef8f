"""Resume and memory: a 100,000-judgment ``vat run`` on the zero-latency fake, then the same command again.

The plan: all 132 scenes × 20 actions × pre/post × ``model.samples=19`` = 100,320 judgments on
``mock/bench``. The first run's peak RSS is the memory figure (target < 600 MB); each rerun must send
nothing and finish, process start-up included, in < 10 s (median of ``repeats``). ``--store`` reuses a
store a previous first run left (the first run takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import last_json, median, show, vat  # noqa: E402

ARGS = (
    "model.name=mock/bench",
    "selection.split=all",
    "model.samples=19",
    "execution.workers=1",  # all in one process: the memory figure of a single process
    "format=json",
)


def run(store: str | None = None, repeats: int = 3) -> dict[str, Any]:
    """First run (unless ``store`` exists), then ``repeats`` reruns."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(store) if store else Path(tmp) / "v.duckdb"
        if not path.exists():
            first = vat("run", *ARGS, f"store.path={path}")
            s = last_json(first["stdout"])
            out.update(first_wall_s=first["wall_s"], first_rss_mb=first["rss_mb"], judgments=s["answered"])
            show("resume.first_run.judgments", s["answered"])
            show("resume.first_run.wall", first["wall_s"], "s")
            show("resume.first_run.peak_rss (target < 600 MB)", first["rss_mb"], "MB")
        walls, rss = [], []
        for _ in range(repeats):
            again = vat("run", *ARGS, f"store.path={path}")
            s = last_json(again["stdout"])
            if s["sent"]:
                raise RuntimeError(f"the rerun sent {s['sent']} requests")
            walls.append(again["wall_s"])
            rss.append(again["rss_mb"])
        out.update(rerun_wall_s=median(walls), rerun_rss_mb=median(rss), stored=s["already_stored"])
    show("resume.rerun.already_stored", out["stored"])
    show("resume.rerun.wall (target < 10 s)", out["rerun_wall_s"], "s")
    show("resume.rerun.peak_rss", out["rerun_rss_mb"], "MB")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="a store a first run already filled (skips the first run)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    run(a.store, a.repeats)
