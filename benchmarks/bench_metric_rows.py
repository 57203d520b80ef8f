"""Metric rows of the report benchmark: seconds per ``vat_metrics`` row at its shape, now vs a baseline.

``bench_ingest.py`` times ``vat report`` over 89 condition pairs of 264 scenes × 10 values (target
< 20 s). Most of that report is one ``runner.metrics.vat.vat_metrics`` call per pair; this script times
those calls alone, on random value states of the same shape (complete, and with 1 % missing cells),
interleaving this checkout with ``--baseline`` (another checkout's root, e.g. a git worktree of the
commit before a change) so that both see the same machine load. Prints the median seconds per row and
the extrapolated 89 rows.

    git worktree add ../vat-base <commit> && python benchmarks/bench_metric_rows.py --baseline ../vat-base
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import show  # noqa: E402
from runner.metrics import vat as metrics  # noqa: E402

VALUES = [f"v{i}" for i in range(10)]


def load_metrics(root: Path) -> ModuleType:
    """``runner/metrics.py`` of another checkout, imported under a private name."""
    spec = importlib.util.spec_from_file_location("baseline_metrics", root / "runner" / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def states(scenes: int, missing: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random pre/post value states on the Likert evidence grid, with a share of missing cells."""
    rng = np.random.default_rng(seed)
    pre = rng.integers(-4, 5, size=(scenes, len(VALUES))) / 4.0
    post = rng.integers(-4, 5, size=(scenes, len(VALUES))) / 4.0
    post[rng.random(post.shape) < missing] = np.nan
    return pre, post


def time_row(module: ModuleType, pre: np.ndarray, post: np.ndarray) -> float:
    """Seconds of one ``vat_metrics`` call with the report's defaults (B = 1000)."""
    start = time.perf_counter()
    module.vat_metrics(pre, post, VALUES, "v0", 1)
    return time.perf_counter() - start


def main() -> None:
    """Time the rows (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="another checkout's root to compare with")
    ap.add_argument("--scenes", type=int, default=264)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rows", type=int, default=89, help="rows of the report to extrapolate to")
    a = ap.parse_args()
    modules = {"this checkout": metrics}
    if a.baseline:
        modules["baseline"] = load_metrics(a.baseline)
    for missing in (0.0, 0.01):
        pre, post = states(a.scenes, missing, seed=1)
        for m in modules.values():
            time_row(m, pre, post)  # warm-up: imports, caches
        times: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(a.repeats):
            for name, m in modules.items():
                times[name].append(time_row(m, pre, post))
        for name, ts in times.items():
            med = statistics.median(ts)
            label = f"metrics_row.{name.replace(' ', '_')}.missing_{missing:.0%}"
            show(f"{label} ({a.scenes} scenes)", med, "s")
            show(f"{label} × {a.rows} rows", med * a.rows, "s")


if __name__ == "__main__":
    main()
