"""Judgment rows: read from a store for a release, and loaded into an in-memory store to recompute metrics."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from runner.core.errors import VatError
from runner.leaderboard.bundle.release import ReleasePlan
from runner.metrics.row import ReportRow
from runner.store.store import REQUEST_COLUMNS, RESPONSE_COLUMNS  # the store's columns (messages joined in)

PLAN_FIELDS = tuple(c for c in REQUEST_COLUMNS if c not in ("request_key", "messages"))
"""The request columns a recompiled plan must match row by row (key and messages are checked by hashing)."""

# A judgment row: the run it belongs to, then the store's request and response columns.
JUDGMENT_COLUMNS = (
    ("run_id", "strategy", "target", "direction", "condition", "step")
    + REQUEST_COLUMNS
    + tuple(c for c in RESPONSE_COLUMNS if c not in ("request_key", "model"))
)


def _membership_table(rp: ReleasePlan) -> pa.Table:
    rows = [
        (i, c.plan.run.run_id, c.strategy, c.target, c.direction, r.condition, r.step, r.key)
        for i, (c, r) in enumerate((c, r) for c in rp.conditions for r in c.plan.requests)
    ]
    return _membership_arrow(rows)


def _membership_arrow(rows: list[tuple[Any, ...]]) -> pa.Table:
    names = ("ord", "run_id", "strategy", "target", "direction", "condition", "step", "request_key")
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table(
        {
            n: pa.array(list(v), pa.int32() if n in ("ord", "step") else pa.string())
            for n, v in zip(names, cols, strict=True)
        }
    )


JUDGMENTS_SQL = """
SELECT l.run_id, l.strategy, l.target, l.direction, l.condition, l.step, l.request_key,
       q.model, q.scene_id, q.scene_version, q.action_id, q.value, q.micro_value, q.polarity, q.sample,
       q.asked_value, q.asked_micro_value, q.variant, q.scale_reversed,
       CAST(p.messages AS VARCHAR) AS messages,
       r.text, r.rating, r.expected_rating, CAST(r.logprobs AS VARCHAR) AS logprobs,
       r.prompt_tokens, r.completion_tokens, r.cost_usd, r.latency_s, r.attempts, r.provider_model,
       r.fingerprint, r.created_at,
       q.request_key IS NOT NULL AS _has_request, r.request_key IS NOT NULL AS _has_response
FROM _membership l
LEFT JOIN requests q USING (request_key)
LEFT JOIN prompts p USING (prompt_hash)
LEFT JOIN responses r USING (request_key)
ORDER BY l.ord
"""


def judgments_from_store(store: Any, rp: ReleasePlan) -> pa.Table:
    """The release's judgments for the entry, read from the store; fails when any is missing."""
    store.con.register("_membership", _membership_table(rp))
    try:
        table = store.con.sql(JUDGMENTS_SQL).to_arrow_table()
    finally:
        store.con.unregister("_membership")
    # A judgment needs both halves: the request as planned in this store and the provider's answer.
    answered = [
        q and r
        for q, r in zip(
            table.column("_has_request").to_pylist(), table.column("_has_response").to_pylist(), strict=True
        )
    ]
    missing = Counter(
        (s, t, d)
        for s, t, d, ok in zip(
            *(table.column(c).to_pylist() for c in ("strategy", "target", "direction")), answered, strict=True
        )
        if not ok
    )
    if missing:
        worst = ", ".join(f"{s} · {t} {d}: {n}" for (s, t, d), n in sorted(missing.items())[:4])
        raise VatError(
            f"{sum(missing.values())} of {table.num_rows} judgments of release {rp.release.id} have no answer in "
            f"{store.path} ({worst}); run `vat leaderboard run entry={rp.entry.id} release={rp.release.id}` first",
            1,
        )
    return table.drop_columns(["_has_request", "_has_response"])


def in_memory_store(judgments: pa.Table, rp: ReleasePlan, provenance: dict[str, Any] | None = None) -> Any:
    """A DuckDB store in memory, with the store's schema, holding the bundle's judgments.

    Membership (which key belongs to which run and condition) comes from the recompiled release, not
    from the bundle, so the metrics are those of the release's own design. ``provenance`` (the bundle's
    format and the migrations it was read through) is recorded in each run's ``provenance``.
    """
    import duckdb

    from runner.store.store import DDL, Store

    store = Store(duckdb.connect(":memory:"), ":memory:")
    store.con.execute(DDL)
    runs = pa.Table.from_pylist(
        [
            {
                "run_id": c.plan.run.run_id,
                "created_at": datetime(2000, 1, 1),
                "model": c.plan.run.model,
                "strategy": c.strategy,
                "target": c.target,
                "direction": c.direction,
                "split": "release",
                "n_scenes": len(c.plan.run.scene_ids),
                "config": json.dumps({"model": {"display_name": rp.entry.display_name}}),
                "provenance": json.dumps({"release": rp.release.id, **(provenance or {})}),
            }
            for c in rp.conditions
        ]
    )
    link = _membership_table(rp).select(["run_id", "request_key", "condition", "step"])
    first = _first_per_key(judgments)
    store._append("runs", runs)
    store._append("run_requests", link)
    store.add_request_rows(first.select(list(REQUEST_COLUMNS)))
    store._append("responses", first.select(list(RESPONSE_COLUMNS)))
    return store


def _first_per_key(table: pa.Table) -> pa.Table:
    keys = table.column("request_key").to_pylist()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    return table.take(pa.array(sorted(first.values()), pa.int64()))


def metric_rows(
    judgments: pa.Table, rp: ReleasePlan, provenance: dict[str, Any] | None = None
) -> list[ReportRow]:
    """Every metric of every condition, recomputed from the raw judgments (same code as `vat report`)."""
    from runner.report.tables import build_rows

    store = in_memory_store(judgments, rp, provenance)
    try:
        circle = {v.id: v.circle_index for v in rp.index.values}
        return build_rows(store, rp.index.value_ids, rp.metric_params(), circle_index=circle)
    finally:
        store.close()


def judgment_schema() -> pa.Schema:
    """The Arrow types of a judgments file, as `vat bundle` writes them (from the store's own DDL)."""
    import duckdb

    from runner.store.store import DDL

    con = duckdb.connect(":memory:")
    try:
        con.execute(DDL)
        con.register("_membership", _membership_arrow([]))
        return con.sql(JUDGMENTS_SQL).to_arrow_table().drop_columns(["_has_request", "_has_response"]).schema
    finally:
        con.close()
