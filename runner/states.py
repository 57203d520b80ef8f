"""Stored judgments → value states (METRICS.md §2), in DuckDB SQL.

e = σ·(r − 3)/2 per judgment; averaged per (scene, value, micro-value), then over the micro-values of a
value present in the scene. Unparseable answers (NULL rating) and unanswered requests drop out of the
means (``avg`` ignores NULL), and are counted in coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runner.store import Store

_RATING_SQL = {
    "text": "r.rating",
    "expected": "r.expected_rating",
    "auto": "coalesce(r.expected_rating, r.rating)",
}

STATES_SQL = """
WITH items AS (
    SELECT rr.run_id, rr.condition, coalesce(rr.step, -1) AS step, q.scene_id, q.value,
           coalesce(q.micro_value, '') AS micro,
           CASE WHEN q.polarity = 'express' THEN 1.0 ELSE -1.0 END * ({rating} - 3.0) / 2.0 AS e
    FROM run_requests rr
    JOIN requests q USING (request_key)
    LEFT JOIN responses r USING (request_key)
    WHERE rr.run_id IN (SELECT unnest(?))
), micro AS (
    SELECT run_id, condition, step, scene_id, value, micro, avg(e) AS e
    FROM items GROUP BY ALL
)
SELECT run_id, condition, step, scene_id, value, avg(e) AS state
FROM micro GROUP BY ALL
ORDER BY run_id, condition, step, scene_id, value
"""


@dataclass(frozen=True)
class ConditionStates:
    """Value states of one run condition as a (scenes × values) array; NaN where no valid evidence."""

    scenes: list[str]
    values: list[str]
    array: np.ndarray


def value_states(
    store: Store, run_ids: Sequence[str], values: Sequence[str], rating: str = "auto"
) -> dict[tuple[str, str, int], ConditionStates]:
    """Value states per (run_id, condition, step) — step −1 when the condition has none."""
    sql = STATES_SQL.format(rating=_RATING_SQL[rating])
    table = store.con.sql(sql, params=[list(run_ids)]).to_arrow_table()
    if table.num_rows == 0:
        return {}
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    distinct, value_inv = np.unique(cols["value"], return_inverse=True)
    value_idx = np.array([list(values).index(v) if v in values else -1 for v in distinct])
    vcol = value_idx[value_inv]
    keys = np.char.add(
        np.char.add(cols["run_id"].astype(str), "|"), np.char.add(cols["condition"].astype(str), "|")
    )
    keys = np.char.add(keys, cols["step"].astype(str))
    groups, group_inv = np.unique(keys, return_inverse=True)
    state = np.asarray(cols["state"], dtype=float)
    out: dict[tuple[str, str, int], ConditionStates] = {}
    for gi, g in enumerate(groups):  # one iteration per condition, not per row
        mask = (group_inv == gi) & (vcol >= 0)
        scenes, scene_inv = np.unique(cols["scene_id"][mask], return_inverse=True)
        arr = np.full((len(scenes), len(values)), np.nan)
        arr[scene_inv, vcol[mask]] = state[mask]
        run_id, condition, step = str(g).split("|")
        out[(run_id, condition, int(step))] = ConditionStates([str(x) for x in scenes], list(values), arr)
    return out


def coverage(store: Store, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per run: requests planned, answered, parsed (a rating), unparseable, and failed (final error)."""
    rows = store.con.execute(
        """
        SELECT rr.run_id, count(*) AS planned, count(r.request_key) AS answered,
               count(coalesce(r.expected_rating, r.rating)) AS parsed,
               count(*) FILTER (WHERE r.request_key IS NOT NULL AND r.rating IS NULL AND r.expected_rating IS NULL)
                   AS unparseable,
               count(*) FILTER (WHERE r.request_key IS NULL AND rr.request_key IN
                   (SELECT request_key FROM errors WHERE final)) AS failed
        FROM run_requests rr LEFT JOIN responses r USING (request_key)
        WHERE rr.run_id IN (SELECT unnest(?))
        GROUP BY rr.run_id
        """,
        [list(run_ids)],
    ).fetchall()
    return {
        r[0]: {"planned": r[1], "answered": r[2], "parsed": r[3], "unparseable": r[4], "failed": r[5]}
        for r in rows
    }
