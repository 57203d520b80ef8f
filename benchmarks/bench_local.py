"""Embedded model: prefix-ordered scheduling versus a shuffled order, 200 judgments on local/smollm2-135m.

The plan (5 scenes × 20 actions × pre/post, few-shot 4) is sent twice through ``runner.execute.online`` into
fresh stores, once in plan order (a scene's items one after another, so llama.cpp reuses the shared
system prompt, examples and scene) and once shuffled (seed 0). Reported: seconds for each and the ratio
shuffled / ordered (> 1 means the prefix order pays). ``VAT_LOCAL_THREADS`` is honoured and printed:
set it to 1 on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import median, show  # noqa: E402


def run(scenes: int = 5, repeats: int = 1) -> dict[str, Any]:
    """Seconds in plan order and shuffled (median of ``repeats``), and their ratio."""
    from runner.compile.plan import compile_plan
    from runner.config import compose
    from runner.execute.dispatch import execute
    from runner.pipeline import exec_options
    from runner.spec.load import load_index
    from runner.store.store import open_store

    cfg = compose(
        ["model.name=local/smollm2-135m", f"selection.max_scenes={scenes}", "execution.progress=false"]
    )
    plan = compile_plan(load_index(cfg.spec_dir), cfg)
    shuffled = list(plan.requests)
    random.Random(0).shuffle(shuffled)
    times: dict[str, list[float]] = {"ordered": [], "shuffled": []}
    with tempfile.TemporaryDirectory() as tmp:
        # A warm-up request loads the model, so neither order pays the load.
        with open_store(Path(tmp) / "warm.duckdb") as store:
            execute(list(plan.requests[:1]), store, exec_options(cfg))
        for i in range(repeats):
            for name, order in (("ordered", list(plan.requests)), ("shuffled", shuffled)):
                with open_store(Path(tmp) / f"{name}{i}.duckdb") as store:
                    stats = execute(order, store, exec_options(cfg))
                if stats.answered != len(plan.requests):
                    raise RuntimeError(f"{name}: {stats.answered} of {len(plan.requests)} answered")
                times[name].append(stats.elapsed_s)
    out = {k: median(v) for k, v in times.items()}
    out["ratio"] = out["shuffled"] / out["ordered"]
    out["judgments"] = len(plan.requests)
    out["threads"] = os.environ.get("VAT_LOCAL_THREADS", "auto")
    show("local.judgments", out["judgments"])
    show("local.VAT_LOCAL_THREADS", out["threads"])
    show("local.prefix_ordered", out["ordered"], "s")
    show("local.shuffled", out["shuffled"], "s")
    show("local.ratio_shuffled_over_ordered", out["ratio"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    run(a.scenes, a.repeats)
