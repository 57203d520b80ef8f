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

from runner.store.store import Store

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
           AS x,
       hash(q.value, q.polarity, q.micro_value, q.sample, {asked_value}, {asked_micro_value}, {variant}) AS h
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
SELECT p.run_id, p.step, p.scene_id, p.action_id, p.action_value, p.polarity, p.action_micro,
       p.asked_value, p.asked_micro, p.variant, b.t AS t0, b.x AS x0, p.t AS t1, p.x AS x1
FROM vat_base p
JOIN vat_base b ON b.condition = 'pre' AND b.run_id = p.run_id AND b.scene_id = p.scene_id
    AND b.action_id = p.action_id AND b.h = p.h
WHERE p.condition = 'post'
"""
"""Every item planned in both conditions of a pair (pre with each post step), with both ratings.

An item is (scene, action, value, micro-value, polarity, sample, asked value and micro-value, variant);
``h`` hashes the part after the action once per row so the join compares three keys, not nine (two
items of one action colliding on a 64-bit hash: about 1e-17 for 100 items per action).
"""

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
), broken AS (
    -- Scene unit: (scene, value, variant) cells that plan a polarity none of whose items is paired.
    SELECT run_id, step, scene_id, action_value, variant, asked_value FROM used WHERE asked_value = ''
    GROUP BY ALL
    HAVING (bool_or(polarity = 'express') AND NOT bool_or(polarity = 'express' AND used IS NOT NULL))
        OR (bool_or(polarity <> 'express') AND NOT bool_or(polarity <> 'express' AND used IS NOT NULL))
)
SELECT run_id, step, scene_id, action_value, polarity, variant, used, src, {unit_columns},
       ((CASE WHEN used = 'expected' THEN x0 ELSE t0 END) - 3.0) / 2.0 AS phi0,
       ((CASE WHEN used = 'expected' THEN x1 ELSE t1 END) - 3.0) / 2.0 AS phi1,
       asked_value
FROM used ANTI JOIN broken USING (run_id, step, scene_id, action_value, variant, asked_value)
WHERE used IS NOT NULL
"""
"""Paired items with the rating source each uses (φ in both conditions) that pass the polarity rule."""

STATES_FROM_SCORED_SQL = """
WITH micro AS (
    SELECT run_id, step, sample_id, scene_id, value, micro, {variant_key} AS variant,
           avg(sign * phi0) AS e0, avg(sign * phi1) AS e1
    FROM vat_scored GROUP BY ALL
)
SELECT run_id, step, sample_id, scene_id, value, variant, avg(e0) AS e0, avg(e1) AS e1
FROM micro GROUP BY ALL ORDER BY run_id, step, variant
"""

MICRO_STATES_SQL = """
SELECT run_id, step, sample_id, scene_id, value, micro, avg(sign * phi0) AS e0, avg(sign * phi1) AS e1
FROM vat_scored WHERE micro <> '' GROUP BY ALL ORDER BY run_id, step
"""
"""States per micro-value (the 56-D view of the appendix check; values average these, as above)."""

ACQUIESCENCE_SQL = """
SELECT run_id, step, scene_id, action_value AS value, polarity, avg(phi0) AS a0, avg(phi1) AS a1
FROM vat_scored WHERE asked_value = '' OR asked_value = action_value
GROUP BY ALL ORDER BY run_id, step
"""
"""Mean unsigned φ per (scene, value, polarity) over the items about the action's own value."""

COVERAGE_SQL = """
SELECT run_id, condition, step, CASE WHEN asked_value = '' THEN action_value ELSE asked_value END AS value,
       count(*) FILTER (WHERE {rated}) AS n
FROM vat_base GROUP BY ALL
"""


@dataclass(frozen=True)
class ConditionStates:
    """Value states of one run condition as a (samples × values) array; NaN where no valid evidence."""

    scenes: list[str]
    values: list[str]
    array: np.ndarray


@dataclass
class MicroStates:
    """Paired states per micro-value: (samples × micro-values), NaN where a sample has none of it."""

    ids: list[str]
    """``value/micro`` ids, sorted: the micro-values of one value are adjacent."""
    value_of: list[str]
    pre: np.ndarray
    post: np.ndarray


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
    micro: MicroStates | None = None
    """The same samples' states per micro-value, when the items name micro-values."""
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
        from runner.core.errors import VatError

        raise VatError(
            f"metrics.rating={rating!r} is not a rating source; use one of {', '.join(RATING_MODES)}", 2
        )


def _value_index(column: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Index of each row's value in ``values`` (−1 for a value not reported)."""
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
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
    con = store.con
    _drop_temp(con)
    try:
        # Temporary tables (allowed on a read-only store): the join of runs, requests and responses is
        # the costly step, so it runs once and every later query reads its result.
        con.execute(f"CREATE TEMP TABLE vat_base AS {_base(store)}", [list(run_ids)])
        con.execute(f"CREATE TEMP TABLE vat_items AS {ITEMS_SQL}")
        rules = con.sql(RULE_SQL).fetchall()
        if not rules:
            return {}
        modes, meta = [], {}
        for run_id, step, n_x, n_t, n_any, n_units, unit, variants in rules:
            src, fallback = rating_rule(rating, n_x, n_t, n_any)
            modes.append((run_id, step, src, fallback))
            meta[(run_id, step)] = {"unit": unit, "mixed": n_units > 1, "variants": list(variants)}
        con.register("vat_modes", _modes_table(modes))
        con.execute(f"CREATE TEMP TABLE vat_scored AS {SCORED_SQL.format(unit_columns=_UNIT_COLUMNS)}")
        pooled = con.sql(STATES_FROM_SCORED_SQL.format(variant_key="''")).to_arrow_table()
        # Per-variant states only when some pair mixes wordings (the prompt-sensitivity figure needs them).
        multi = any(len(m["variants"]) > 1 for m in meta.values())
        per_variant = (
            con.sql(STATES_FROM_SCORED_SQL.format(variant_key="variant")).to_arrow_table() if multi else None
        )
        acq = con.sql(ACQUIESCENCE_SQL).to_arrow_table()
        micro = con.sql(MICRO_STATES_SQL).to_arrow_table()
        used = con.sql(
            "SELECT run_id, step, count(*) AS n, count(*) FILTER (WHERE used <> src) AS n_fallback "
            "FROM vat_scored GROUP BY ALL"
        ).fetchall()
        paired_by_value = con.sql(
            "SELECT run_id, step, value, count(*) FROM vat_scored GROUP BY ALL"
        ).fetchall()
        rated = "t IS NOT NULL OR x IS NOT NULL" if rating == "auto" else f"{_RATING_SQL[rating]} IS NOT NULL"
        cover = con.sql(COVERAGE_SQL.format(rated=rated)).fetchall()
    finally:
        _drop_temp(con)
    out = _assemble(values, modes, meta, pooled, per_variant, acq, used, paired_by_value, cover)
    _attach_micro(out, micro)
    return out


def _attach_micro(out: dict[tuple[str, int], PairedStates], micro: pa.Table) -> None:
    """Give each pair its per-micro-value states, on the pair's own samples."""
    cols = _columns(micro)
    if len(cols["run_id"]) == 0:
        return
    cols["value_micro"] = np.char.add(np.char.add(cols["value"].astype(str), "/"), cols["micro"].astype(str))
    at = _slices(cols)
    for key, ps in out.items():
        sl = at.get(key)
        if sl is None or not ps.samples:
            continue
        ids = sorted(set(cols["value_micro"][sl].tolist()))
        view = {
            "sample_id": cols["sample_id"],
            "value": cols["value_micro"],
            "e0": cols["e0"],
            "e1": cols["e1"],
        }
        pre, post = _fill(view, sl, ps.samples, ids)
        ps.micro = MicroStates(ids=ids, value_of=[i.split("/", 1)[0] for i in ids], pre=pre, post=post)


def _modes_table(modes: list[tuple[str, int, str, bool]]) -> pa.Table:
    return pa.table(
        {
            "run_id": pa.array([m[0] for m in modes], pa.string()),
            "step": pa.array([m[1] for m in modes], pa.int32()),
            "src": pa.array([m[2] for m in modes], pa.string()),
            "fallback": pa.array([m[3] for m in modes], pa.bool_()),
        }
    )


def _drop_temp(con: Any) -> None:
    """Remove what :func:`paired_states` leaves on the connection (also after an error)."""
    for name in ("vat_base", "vat_items", "vat_scored"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    con.unregister("vat_modes")  # a no-op when it is not registered


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
    at, var_at, acq_at = _slices(pooled_cols), _slices(var_cols, "variant"), _slices(acq_cols)
    out = {}
    empty = slice(0, 0)
    for run_id, step, src, _fallback in modes:
        key = (run_id, step)
        sl = at.get(key, empty)
        samples, sample_scene = _samples(pooled_cols, sl)
        scenes = sorted(set(sample_scene))
        clusters = np.searchsorted(scenes, sample_scene) if samples else np.zeros(0, dtype=np.int64)
        pre, post = _fill(pooled_cols, sl, samples, values)
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
                state.by_variant[variant] = _fill(
                    var_cols, var_at.get((*key, variant), empty), samples, values
                )
        state.acquiescence = _acquiescence_arrays(acq_cols, acq_at.get(key, empty), scenes, values)
        out[key] = state
    return out


def _slices(cols: dict[str, np.ndarray] | None, *extra: str) -> dict[tuple[Any, ...], slice]:
    """Row range of each (run_id, step, *extra) group of a result sorted by those columns."""
    if cols is None or len(cols["run_id"]) == 0:
        return {}
    names = ("run_id", "step", *extra)
    n = len(cols["run_id"])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for name in names:
        c = cols[name]
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    return {
        tuple(
            cols[name][a].item() if hasattr(cols[name][a], "item") else cols[name][a] for name in names
        ): slice(a, b)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def _samples(cols: dict[str, np.ndarray], rows: slice) -> tuple[list[str], list[str]]:
    """Sorted sample ids of one pair and the scene of each."""
    pairs = sorted(set(zip(cols["sample_id"][rows].tolist(), cols["scene_id"][rows].tolist(), strict=True)))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _fill(
    cols: dict[str, np.ndarray], mask: slice, samples: list[str], values: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(samples × values) arrays of e0 (pre) and e1 (post); NaN where no paired evidence."""
    pre = np.full((len(samples), len(values)), np.nan)
    post = pre.copy()
    vcol = _value_index(cols["value"][mask], values)
    keep = vcol >= 0
    rows = np.searchsorted(samples, cols["sample_id"][mask].astype(str))[keep]
    pre[rows, vcol[keep]] = np.asarray(cols["e0"][mask], dtype=float)[keep]
    post[rows, vcol[keep]] = np.asarray(cols["e1"][mask], dtype=float)[keep]
    return pre, post


def _acquiescence_arrays(
    cols: dict[str, np.ndarray], mask: slice, scenes: list[str], values: list[str]
) -> dict[str, np.ndarray]:
    """Per condition, (scenes × values) mean of the express mean and the suppress mean of φ."""
    out = {}
    scene = cols["scene_id"][mask].astype(str)
    vcol = _value_index(cols["value"][mask], values)
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
