"""Run every benchmark in benchmarks/ and print their figures (``make bench``).

``--quick`` shrinks each one (fewer judgments and repeats) for a smoke check; the targets in
benchmarks/README.md are for the full sizes. ``--only name,name`` picks benchmarks by name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (  # noqa: E402
    bench_ingest,
    bench_local,
    bench_overhead,
    bench_ratelimit,
    bench_resume,
    bench_startup,
    bench_throughput,
)
from benchmarks.common import machine  # noqa: E402

FULL = {
    "startup": lambda: bench_startup.run(5),
    "overhead": lambda: bench_overhead.run(20_000, 3),
    "resume": lambda: bench_resume.run(None, 3),
    "ingest": lambda: bench_ingest.run(89, 3),
    "ratelimit": lambda: bench_ratelimit.run(20.0, 15, 3),
    "local": lambda: bench_local.run(5, 1),
    "throughput": lambda: bench_throughput.run(20_000, 64),  # peers only where `make bench-peers` made them
}
QUICK = {
    "startup": lambda: bench_startup.run(3),
    "overhead": lambda: bench_overhead.run(2_000, 1),
    "resume": lambda: None,  # needs a 100,000-judgment first run: minutes
    "ingest": lambda: bench_ingest.run(5, 1),
    "ratelimit": lambda: bench_ratelimit.run(20.0, 3, 1),
    "local": lambda: bench_local.run(1, 1),
    "throughput": lambda: bench_throughput.run(2_000, 64, "bare,vat1,vat2"),
}


def main() -> None:
    """Run the chosen benchmarks; print all figures as JSON at the end."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated: " + ",".join(FULL))
    a = ap.parse_args()
    table = QUICK if a.quick else FULL
    names = [n for n in (a.only.split(",") if a.only else table) if n]
    results: dict[str, Any] = {"machine": machine()}
    for name in names:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        results[name] = table[name]()
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    results["machine_after"] = machine()
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
