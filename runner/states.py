"""Stored judgments → value states (METRICS.md §2), in DuckDB SQL.

Two units. With no ``asked_value`` (today's question, naming no value) the sample is the *scene* and
e = σ·φ(r): σ = +1 for an action that expresses its value, −1 for one that suppresses it. With an
``asked_value`` (the question names a value or micro-value u and asks how far the action honours or
goes against it) the sample is the *(scene, action)* pair, the value is the asked one, and the answer
carries its own sign: e = φ(r). φ(r) = (r − 3)/2 on the canonical scale: an answer on a reversed scale
(``scale_reversed``, 5 = strongly disagree) is read as 6 − r first, and so is its expected rating.
States average e per micro-value, then over the micro-values of a value present in the sample.

:func:`paired_states` is what reports use: Δ compares identical items. An item (scene, action, its value,
micro-value, polarity, sample, asked value/micro-value, wording variant) counts only when it has a rating
in both conditions of the pair, from the same rating source in both (:func:`rating_rule`); in the scene
unit a value's state in a scene also needs every polarity planned for it there (express and suppress)
among the paired items, else that value is missing in that scene in both conditions.
:func:`value_states` is the unpaired per-condition view (an independent check of the pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from runner.store import Store

_RATING_SQL = {
    "text": "t",
    "expected": "x",
    "auto": "coalesce(x, t)",
}
RATING_MODES = tuple(_RATING_SQL)

AUTO_EXPECTED_SHARE = 0.5
"""``rating=auto`` uses the expected rating for a condition pair when at least this share of its paired
items has one in BOTH conditions; otherwise both conditions use the parsed digit."""

SEP = "\x1f"
"""Joins scene and action ids into a scene–action sample id (a character no id contains)."""

# The columns issue 16 adds to `requests`; a store without them reads as today's question (NULL, base, false).
_NEW_COLUMNS = {
    "asked_value": "NULL::VARCHAR",
    "asked_micro_value": "NULL::VARCHAR",
    "variant": "NULL::VARCHAR",
    "scale_reversed": "NULL::BOOLEAN",
}

BASE_SQL = """
SELECT rr.run_id, rr.condition, coalesce(rr.step, -1) AS step,
       q.scene_id, q.action_id, q.value AS action_value, q.polarity, coalesce(q.sample, 0) AS sample,
       coalesce(q.micro_value, '') AS action_micro,
       coalesce({asked_value}, '') AS asked_value, coalesce({asked_micro_value}, '') AS asked_micro,
       coalesce({variant}, 'base') AS variant,
       CASE WHEN coalesce({scale_reversed}, false) THEN 6 - r.rating ELSE r.rating END AS t,
       CASE WHEN coalesce({scale_reversed}, false) THEN 6.0 - r.expected_rating ELSE r.expected_rating END
           AS x
FROM run_requests rr
JOIN requests q USING (request_key)
LEFT JOIN responses r USING (request_key)
WHERE rr.run_id IN (SELECT unnest(?))
"""
"""One row per (run, condition, step, request) with the canonical digit ``t`` and expected rating ``x``."""

# Unit-dependent columns of an item: its sample id, its value, its micro-value and the sign of its evidence.
_UNIT_COLUMNS = f"""
    CASE WHEN asked_value = '' THEN scene_id ELSE scene_id || '{SEP}' || action_id END AS sample_id,
    CASE WHEN asked_value = '' THEN action_value ELSE asked_value END AS value,
    CASE WHEN asked_value = '' THEN action_micro ELSE asked_micro END AS micro,
    CASE WHEN asked_value <> '' THEN 1.0 WHEN polarity = 'express' THEN 1.0 ELSE -1.0 END AS sign
"""

ITEMS_SQL = """
WITH base AS ({base})
SELECT p.run_id, p.step, p.scene_id, p.action_id, p.action_value, p.polarity, p.action_micro,
       p.asked_value, p.asked_micro, p.variant, b.t AS t0, b.x AS x0, p.t AS t1, p.x AS x1
FROM base p
JOIN base b ON b.condition = 'pre' AND b.run_id = p.run_id AND b.scene_id = p.scene_id
    AND b.action_id = p.action_id AND b.action_value = p.action_value AND b.polarity = p.polarity
    AND b.action_micro = p.action_micro AND b.sample = p.sample AND b.asked_value = p.asked_value
    AND b.asked_micro = p.asked_micro AND b.variant = p.variant
WHERE p.condition = 'post'
"""
"""Every item planned in both conditions of a pair (pre with each post step), with both ratings."""

RULE_SQL = """
SELECT run_id, step,
       count(*) FILTER (WHERE x0 IS NOT NULL AND x1 IS NOT NULL) AS n_expected,
       count(*) FILTER (WHERE t0 IS NOT NULL AND t1 IS NOT NULL) AS n_text,
       count(*) FILTER (WHERE (x0 IS NOT NULL AND x1 IS NOT NULL) OR (t0 IS NOT NULL AND t1 IS NOT NULL))
           AS n_either,
       count(DISTINCT CASE WHEN asked_value = '' THEN 'scene' ELSE 'scene_action' END) AS n_units,
       min(CASE WHEN asked_value = '' THEN 'scene' ELSE 'scene_action' END) AS unit,
       list(DISTINCT variant ORDER BY variant) AS variants
FROM vat_items GROUP BY run_id, step
"""

SCORED_SQL = """
WITH used AS (
    SELECT i.*, m.src,
        CASE WHEN m.src = 'expected' AND x0 IS NOT NULL AND x1 IS NOT NULL THEN 'expected'
             WHEN m.src = 'text' AND t0 IS NOT NULL AND t1 IS NOT NULL THEN 'text'
             WHEN m.fallback AND m.src = 'expected' AND t0 IS NOT NULL AND t1 IS NOT NULL THEN 'text'
             WHEN m.fallback AND m.src = 'text' AND x0 IS NOT NULL AND x1 IS NOT NULL THEN 'expected'
        END AS used
    FROM vat_items i JOIN vat_modes m USING (run_id, step)
), scored AS (
    SELECT run_id, step, scene_id, action_value, polarity, variant, used, src, {unit_columns},
           ((CASE WHEN used = 'expected' THEN x0 ELSE t0 END) - 3.0) / 2.0 AS phi0,
           ((CASE WHEN used = 'expected' THEN x1 ELSE t1 END) - 3.0) / 2.0 AS phi1,
           asked_value
    FROM used WHERE used IS NOT NULL
), planned AS (
    -- Polarities planned per (run, scene, value, variant) in the scene unit, over both conditions.
    SELECT run_id, step, scene_id, action_value AS value, variant, count(DISTINCT polarity) AS n_pol
    FROM vat_items WHERE asked_value = '' GROUP BY ALL
), cell_ok AS (
    SELECT s.run_id, s.step, s.sample_id, s.value, s.variant
    FROM scored s LEFT JOIN planned p
        ON s.asked_value = '' AND p.run_id = s.run_id AND p.step = s.step AND p.scene_id = s.scene_id
        AND p.value = s.value AND p.variant = s.variant
    GROUP BY s.run_id, s.step, s.sample_id, s.value, s.variant
    HAVING min(s.asked_value) <> '' OR count(DISTINCT s.polarity) >= max(p.n_pol)
)
SELECT s.* FROM scored s SEMI JOIN cell_ok c USING (run_id, step, sample_id, value, variant)
"""
"""Paired items with the rating source each uses (φ in both conditions) that pass the polarity rule."""

STATES_FROM_SCORED_SQL = """
WITH micro AS (
    SELECT run_id, step, sample_id, scene_id, value, micro, {variant_key} AS variant,
           avg(sign * phi0) AS e0, avg(sign * phi1) AS e1
    FROM vat_scored GROUP BY ALL
)
SELECT run_id, step, sample_id, scene_id, value, variant, avg(e0) AS e0, avg(e1) AS e1
FROM micro GROUP BY ALL
"""

ACQUIESCENCE_SQL = """
SELECT run_id, step, scene_id, action_value AS value, polarity, avg(phi0) AS a0, avg(phi1) AS a1
FROM vat_scored WHERE asked_value = '' OR asked_value = action_value
GROUP BY ALL
"""
"""Mean unsigned φ per (scene, value, polarity) over the items about the action's own value."""

COVERAGE_SQL = """
WITH base AS ({base})
SELECT run_id, condition, step, CASE WHEN asked_value = '' THEN action_value ELSE asked_value END AS value,
       count(*) FILTER (WHERE {rated}) AS n
FROM base GROUP BY ALL
"""


@dataclass(frozen=True)
class ConditionStates:
    """Value states of one run condition as a (samples × values) array; NaN where no valid evidence."""

    scenes: list[str]
    values: list[str]
    array: np.ndarray


@dataclass
class PairedStates:
    """Value states of one condition pair (pre vs one post step) over identical items.

    ``samples`` are scene ids (unit "scene") or scene–action ids (unit "scene_action"); ``clusters``
    gives each sample's scene as an int (for cluster-aware inference) and ``scenes`` the scene ids.
    ``by_variant`` holds the same arrays per wording variant (only when the pair has more than one);
    ``acquiescence`` holds, per condition, a (scenes × values) array of the mean φ over a value's express
    and suppress items (each polarity weighted equally), NaN where a polarity is missing.
    """

    run_id: str
    step: int
    unit: str
    values: list[str]
    samples: list[str]
    clusters: np.ndarray
    scenes: list[str]
    pre: np.ndarray
    post: np.ndarray
    rating_source: str
    rating_fallback_share: float | None
    n_items: int
    variants: list[str]
    coverage_by_value: dict[str, dict[str, int]]
    by_variant: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    acquiescence: dict[str, np.ndarray] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def _request_columns(store: Store) -> dict[str, str]:
    """SQL for the issue-16 request columns: the column itself where the store has it, else its default."""
    have = {
        r[0]
        for r in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
        ).fetchall()
    }
    return {c: (f"q.{c}" if c in have else default) for c, default in _NEW_COLUMNS.items()}


def _base(store: Store) -> str:
    return BASE_SQL.format(**_request_columns(store))


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def value_states(
    store: Store, run_ids: Sequence[str], values: Sequence[str], rating: str = "auto"
) -> dict[tuple[str, str, int], ConditionStates]:
    """Unpaired value states per (run_id, condition, step) — step −1 when the condition has none.

    Each condition averages whatever parsed in it (``auto``: the expected rating where there is one,
    else the digit). Reports use :func:`paired_states`; this view checks the pipeline against the
    generative model, where every item parses.
    """
    _check_mode(rating)
    sql = f"""
    WITH base AS ({_base(store)}), items AS (
        SELECT run_id, condition, step, scene_id, {_UNIT_COLUMNS},
               ({_RATING_SQL[rating]} - 3.0) / 2.0 AS phi
        FROM base
    ), micro AS (
        SELECT run_id, condition, step, sample_id, value, micro, avg(sign * phi) AS e FROM items GROUP BY ALL
    )
    SELECT run_id, condition, step, sample_id, value, avg(e) AS state FROM micro GROUP BY ALL
    """
    table = store.con.sql(sql, params=[list(run_ids)]).to_arrow_table()
    if table.num_rows == 0:
        return {}
    cols = _columns(table)
    vcol = _value_index(cols["value"], values)
    keys = _keys(cols["run_id"], cols["condition"], cols["step"])
    groups, group_inv = np.unique(keys, return_inverse=True)
    state = np.asarray(cols["state"], dtype=float)
    out: dict[tuple[str, str, int], ConditionStates] = {}
    for gi, g in enumerate(groups):  # one iteration per condition, not per row
        mask = (group_inv == gi) & (vcol >= 0)
        samples, sample_inv = np.unique(cols["sample_id"][mask], return_inverse=True)
        arr = np.full((len(samples), len(values)), np.nan)
        arr[sample_inv, vcol[mask]] = state[mask]
        run_id, condition, step = str(g).split("|")
        out[(run_id, condition, int(step))] = ConditionStates([str(x) for x in samples], list(values), arr)
    return out


def _check_mode(rating: str) -> None:
    if rating not in _RATING_SQL:
        from runner.errors import VatError

        raise VatError(
            f"metrics.rating={rating!r} is not a rating source; use one of {', '.join(RATING_MODES)}", 2
        )


def _value_index(column: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Index of each row's value in ``values`` (−1 for a value not reported)."""
    distinct, inv = np.unique(column.astype(str), return_inverse=True)
    pos = {v: i for i, v in enumerate(values)}
    return np.array([pos.get(str(v), -1) for v in distinct], dtype=np.int64)[inv]


def _keys(*columns: np.ndarray) -> np.ndarray:
    out = columns[0].astype(str)
    for c in columns[1:]:
        out = np.char.add(np.char.add(out, "|"), c.astype(str))
    return out


def rating_rule(rating: str, n_expected: int, n_text: int, n_either: int) -> tuple[str, bool]:
    """The rating source of one condition pair and whether items may fall back to the other source.

    ``text`` and ``expected`` are strict: an item lacking that source in either condition is missing.
    ``auto`` picks the expected rating when at least :data:`AUTO_EXPECTED_SHARE` of the items rated in
    both conditions (by either source) have an expected rating in BOTH, else the digit; an item lacking
    the chosen source in either condition then uses the other source in both conditions. Either way no
    item mixes sources between conditions, so a change of scale cannot masquerade as a shift.
    """
    _check_mode(rating)
    if rating != "auto":
        return rating, False
    use_expected = n_expected > 0 and n_expected >= AUTO_EXPECTED_SHARE * n_either
    return ("expected" if use_expected else "text"), True


def paired_states(
    store: Store, run_ids: Sequence[str], values: Sequence[str], rating: str = "auto"
) -> dict[tuple[str, int], PairedStates]:
    """Paired value states per (run_id, post step) — step −1 when the run has none (see module doc)."""
    _check_mode(rating)
    run_ids = list(run_ids)
    base = _base(store)
    items = store.con.sql(ITEMS_SQL.format(base=base), params=[run_ids]).to_arrow_table()
    if items.num_rows == 0:
        return {}
    con = store.con
    con.register("vat_items", items)
    try:
        rules = con.sql(RULE_SQL).fetchall()
        modes, meta = [], {}
        for run_id, step, n_x, n_t, n_any, n_units, unit, variants in rules:
            src, fallback = rating_rule(rating, n_x, n_t, n_any)
            modes.append((run_id, step, src, fallback))
            meta[(run_id, step)] = {"unit": unit, "mixed": n_units > 1, "variants": list(variants)}
        con.register(
            "vat_modes",
            pa.table(
                {
                    "run_id": [m[0] for m in modes],
                    "step": pa.array([m[1] for m in modes], pa.int32()),
                    "src": [m[2] for m in modes],
                    "fallback": [m[3] for m in modes],
                }
            ),
        )
        scored = con.sql(SCORED_SQL.format(unit_columns=_UNIT_COLUMNS)).to_arrow_table()
        con.register("vat_scored", scored)
        pooled = con.sql(STATES_FROM_SCORED_SQL.format(variant_key="''")).to_arrow_table()
        multi = [k for k, m in meta.items() if len(m["variants"]) > 1]
        # Per-variant states only when some pair mixes wordings (the prompt-sensitivity figure needs them).
        multi = any(len(m["variants"]) > 1 for m in meta.values())
        per_variant = (
            con.sql(STATES_FROM_SCORED_SQL.format(variant_key="variant")).to_arrow_table() if multi else None
        )
        acq = con.sql(ACQUIESCENCE_SQL).to_arrow_table()
        used = con.sql(
            "SELECT run_id, step, count(*) AS n, count(*) FILTER (WHERE used <> src) AS n_fallback, "
            "min(used) AS lo, max(used) AS hi FROM vat_scored GROUP BY ALL"
        ).fetchall()
        paired_by_value = con.sql(
            "SELECT run_id, step, value, count(*) FROM vat_scored GROUP BY ALL"
        ).fetchall()
    finally:
        for name in ("vat_items", "vat_modes", "vat_scored"):
            con.unregister(name)
    rated = "t IS NOT NULL OR x IS NOT NULL" if rating == "auto" else f"{_RATING_SQL[rating]} IS NOT NULL"
    cover = store.con.sql(COVERAGE_SQL.format(base=base, rated=rated), params=[run_ids]).fetchall()
    return _assemble(values, modes, meta, pooled, per_variant, acq, used, paired_by_value, cover)


def _assemble(
    values: Sequence[str],
    modes: list[tuple[str, int, str, bool]],
    meta: dict[tuple[str, int], dict[str, Any]],
    pooled: pa.Table,
    per_variant: pa.Table | None,
    acq: pa.Table,
    used: list[tuple[Any, ...]],
    paired_by_value: list[tuple[Any, ...]],
    cover: list[tuple[Any, ...]],
) -> dict[tuple[str, int], PairedStates]:
    """Numpy arrays per condition pair from the SQL results of :func:`paired_states`."""
    values = list(values)
    n_used = {(r[0], r[1]): r for r in used}
    pooled_cols, acq_cols = _columns(pooled), _columns(acq)
    var_cols = _columns(per_variant) if per_variant is not None else None
    counts = _coverage_by_value(values, paired_by_value, cover)
    out = {}
    for run_id, step, src, _fallback in modes:
        key = (run_id, step)
        mask = (pooled_cols["run_id"] == run_id) & (pooled_cols["step"] == step)
        samples, sample_scene = _samples(pooled_cols, mask)
        scenes = sorted(set(sample_scene))
        clusters = np.searchsorted(scenes, sample_scene) if samples else np.zeros(0, dtype=np.int64)
        pre, post = _fill(pooled_cols, mask, samples, values)
        n, n_fb = (n_used[key][2], n_used[key][3]) if key in n_used else (0, 0)
        state = PairedStates(
            run_id=run_id,
            step=step,
            unit=meta[key]["unit"],
            values=values,
            samples=samples,
            clusters=np.asarray(clusters, dtype=np.int64),
            scenes=scenes,
            pre=pre,
            post=post,
            rating_source=src,
            rating_fallback_share=(n_fb / n) if n else None,
            n_items=int(n),
            variants=meta[key]["variants"],
            coverage_by_value=counts.get(key, {v: {"pre": 0, "post": 0, "paired": 0} for v in values}),
        )
        if meta[key]["mixed"]:
            state.flags.append("mixed_units")
        if var_cols is not None and len(state.variants) > 1:
            for variant in state.variants:
                vmask = (
                    (var_cols["run_id"] == run_id)
                    & (var_cols["step"] == step)
                    & (var_cols["variant"] == variant)
                )
                state.by_variant[variant] = _fill(var_cols, vmask, samples, values)
        amask = (acq_cols["run_id"] == run_id) & (acq_cols["step"] == step)
        state.acquiescence = _acquiescence_arrays(acq_cols, amask, scenes, values)
        out[key] = state
    return out


def _samples(cols: dict[str, np.ndarray], mask: np.ndarray) -> tuple[list[str], list[str]]:
    """Sorted sample ids of one pair and the scene of each."""
    pairs = sorted(
        set(zip(cols["sample_id"][mask].astype(str), cols["scene_id"][mask].astype(str), strict=True))
    )
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _fill(
    cols: dict[str, np.ndarray], mask: np.ndarray, samples: list[str], values: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(samples × values) arrays of e0 (pre) and e1 (post); NaN where no paired evidence."""
    pre = np.full((len(samples), len(values)), np.nan)
    post = pre.copy()
    vcol = _value_index(cols["value"][mask], values) if mask.any() else np.zeros(0, dtype=np.int64)
    keep = vcol >= 0
    rows = np.searchsorted(samples, cols["sample_id"][mask].astype(str))[keep]
    pre[rows, vcol[keep]] = np.asarray(cols["e0"][mask], dtype=float)[keep]
    post[rows, vcol[keep]] = np.asarray(cols["e1"][mask], dtype=float)[keep]
    return pre, post


def _acquiescence_arrays(
    cols: dict[str, np.ndarray], mask: np.ndarray, scenes: list[str], values: list[str]
) -> dict[str, np.ndarray]:
    """Per condition, (scenes × values) mean of the express mean and the suppress mean of φ."""
    out = {}
    scene = cols["scene_id"][mask].astype(str)
    vcol = _value_index(cols["value"][mask], values) if mask.any() else np.zeros(0, dtype=np.int64)
    known = np.isin(scene, scenes) & (vcol >= 0)
    rows = np.searchsorted(scenes, scene)
    express = cols["polarity"][mask] == "express"
    for cond, col in (("pre", "a0"), ("post", "a1")):
        parts = []
        for pol in (express, ~express):
            arr = np.full((len(scenes), len(values)), np.nan)
            sel = known & pol
            arr[rows[sel], vcol[sel]] = np.asarray(cols[col][mask], dtype=float)[sel]
            parts.append(arr)
        out[cond] = (parts[0] + parts[1]) / 2.0  # NaN unless both polarities are present
    return out


def _coverage_by_value(
    values: list[str], paired_by_value: list[tuple[Any, ...]], cover: list[tuple[Any, ...]]
) -> dict[tuple[str, int], dict[str, dict[str, int]]]:
    """{(run, step): {value: {"pre": rated pre items, "post": rated post items, "paired": items used}}}."""
    pre = {(r[0], r[3]): r[4] for r in cover if r[1] == "pre"}
    post = {(r[0], r[2], r[3]): r[4] for r in cover if r[1] == "post"}
    paired = {(r[0], r[1], r[2]): r[3] for r in paired_by_value}
    out: dict[tuple[str, int], dict[str, dict[str, int]]] = {}
    for run_id, step, _value in post:
        out.setdefault((run_id, step), {})
    for run_id, step in out:
        out[(run_id, step)] = {
            v: {
                "pre": int(pre.get((run_id, v), 0)),
                "post": int(post.get((run_id, step, v), 0)),
                "paired": int(paired.get((run_id, step, v), 0)),
            }
            for v in values
        }
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
