"""Ingest and metrics: ~1,000,000 synthetic judgments ingested from shards, then ``vat report`` (B = 1000).

The shape is realistic: 264 scenes (200 with 20 actions, 64 with 112), the ten values of spec/, one
model, a shared pre condition and one post condition per run (strategies × targets × directions),
written as one Parquet shard per run (each shard repeats the shared pre requests, as sweep jobs do).
Ratings are a hash of the request key. ``runner.store.shards.ingest`` loads every shard into a fresh store
(target < 15 s); then ``vat report format=json`` with the default bootstrap B = 1000 (target < 20 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import median, show, vat  # noqa: E402

SCENES_SHORT, SCENES_LONG = 200, 64


def make_shards(root: Path, runs: int, values: list[str], strategies: list[str]) -> int:
    """Write ``runs`` shard folders under ``root``; return the number of distinct judgments."""
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE items AS
        SELECT 'scene_' || lpad(s::VARCHAR, 3, '0') AS scene_id, a AS action,
               (list_value({", ".join(repr(v) for v in values)}))[1 + (a % {len(values)})] AS value,
               CASE WHEN (a // {len(values)}) % 2 = 0 THEN 'express' ELSE 'suppress' END AS polarity
        FROM range({SCENES_SHORT + SCENES_LONG}) t(s),
             range(112) u(a)
        WHERE a < CASE WHEN s < {SCENES_SHORT} THEN 20 ELSE 112 END"""
    )
    (n_items,) = con.execute("SELECT count(*) FROM items").fetchone()
    for i in range(runs):
        run_id = f"run{i:04d}"
        strategy = strategies[i % len(strategies)]
        target = values[(i // len(strategies)) % len(values)]
        direction = "reinforce" if (i // (len(strategies) * len(values))) % 2 == 0 else "suppress"
        shard = root / f"job{i}"
        shard.mkdir(parents=True)
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW reqs AS
            SELECT md5(cond || scene_id || action::VARCHAR)[:32] AS request_key, cond AS condition, *
            FROM items, (VALUES ('pre'), ('post-{run_id}')) c(cond)"""
        )
        copies = {
            "runs": f"""SELECT '{run_id}' AS run_id, now()::TIMESTAMP AS created_at, 'synthetic/judge' AS model,
                '{strategy}' AS strategy, '{target}' AS target, '{direction}' AS direction, 'test' AS split,
                {SCENES_SHORT + SCENES_LONG} AS n_scenes, '{{}}'::JSON AS config, '{{}}'::JSON AS provenance""",
            # Store schema 2: the (synthetic, empty) prompt once in prompts, requests point at it.
            "prompts": """SELECT left(sha256('[]'), 32) AS prompt_hash, '[]'::JSON AS messages""",
            "requests": """SELECT request_key, 'synthetic/judge' AS model, scene_id, 1 AS scene_version,
                scene_id || '_a' || action AS action_id, value, NULL::VARCHAR AS micro_value, polarity,
                0 AS sample, left(sha256('[]'), 32) AS prompt_hash FROM reqs""",
            "run_requests": f"""SELECT '{run_id}' AS run_id, request_key,
                CASE WHEN condition = 'pre' THEN 'pre' ELSE 'post' END AS condition,
                NULL::INTEGER AS step FROM reqs""",
            "responses": """SELECT request_key, 'synthetic/judge' AS model, rating::VARCHAR AS text, rating,
                NULL::DOUBLE AS expected_rating, NULL::JSON AS logprobs, 100 AS prompt_tokens,
                1 AS completion_tokens, 0.0 AS cost_usd, 0.01 AS latency_s, 1 AS attempts,
                'synthetic/judge' AS provider_model, NULL::VARCHAR AS fingerprint, now()::TIMESTAMP AS created_at
                FROM (SELECT *, 1 + (hash(request_key) % 5)::INTEGER AS rating FROM reqs)""",
        }
        for table, sql in copies.items():
            con.execute(f"COPY ({sql}) TO '{shard / (table + '.parquet')}' (FORMAT parquet)")
    con.close()
    return n_items * (runs + 1)


def run(runs: int = 89, repeats: int = 3) -> dict[str, Any]:
    """Median ingest seconds (fresh store each time) and median ``vat report`` seconds."""
    from runner.spec.load import load_index
    from runner.store.shards import ingest

    index = load_index("spec")
    values = list(index.value_ids)
    strategies = [s for s in index.strategies if s.startswith("fewshot_")] or list(index.strategies)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        n = make_shards(root / "shards", runs, values, strategies)
        show("ingest.synthetic_judgments", n)
        show("ingest.shards", runs)
        print(f"  (shards written in {time.perf_counter() - start:.1f} s)")
        walls = []
        for i in range(repeats):
            store = root / f"store{i}.duckdb"
            t = time.perf_counter()
            counts = ingest([str(root / "shards")], str(store))
            walls.append(time.perf_counter() - t)
        if counts["responses"] != n:
            raise RuntimeError(f"ingested {counts['responses']} responses, expected {n}")
        out["ingest_s"] = median(walls)
        show("ingest.wall (target < 15 s)", out["ingest_s"], "s")
        reports = [
            vat("report", f"store.path={root / 'store0.duckdb'}", "format=json") for _ in range(repeats)
        ]
        out["report_s"] = median([r["wall_s"] for r in reports])
        out["report_rss_mb"] = median([r["rss_mb"] for r in reports])
        out["judgments"] = n
        out["report_rows"] = reports[0]["stdout"].count('"run_id"')
    show("report.metric_rows", out["report_rows"])
    show("report.wall_B1000 (target < 20 s)", out["report_s"], "s")
    show("report.peak_rss", out["report_rss_mb"], "MB")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=89, help="post conditions (89: ~1,000,000 judgments)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    run(a.runs, a.repeats)
