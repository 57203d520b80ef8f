"""The model-level board of the leaderboard site: one line per entry, ranked with intervals.

Each entry's mean bias-corrected tax and mean gain over the release's conditions, with 95 % intervals
propagated from the conditions' own, and LMArena-style rank ranges (docs/leaderboard.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Z95 = 1.959964
"""Normal quantile of a 95 % interval: turns a per-condition interval into a standard error."""

STATUS_ORDER = {"verified": 0, "checked": 1, "local": 2}


def condition_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same condition: strategy, checkpoint step, target, direction."""
    return (row["strategy"], row.get("step"), row["target"], row["direction"])


def _tax_of(row: dict[str, Any]) -> tuple[float | None, list[float] | None, str]:
    """The tax a board ranks on for one row: the bias-corrected nVAT with its interval.

    ``nvat_ci`` is the interval of the corrected estimate (METRICS.md §8). Rows from before the null
    have only the raw nVAT and no interval: their basis says so.
    """
    raw, corrected, ci = (
        finite_num(row.get("nvat")),
        finite_num(row.get("nvat_corrected")),
        row.get("nvat_ci") or [None, None],
    )
    has_ci = bool(ci) and finite_num(ci[0]) is not None and finite_num(ci[1]) is not None
    if corrected is not None:
        return corrected, ([ci[0], ci[1]] if has_ci else None), "nvat_corrected"
    return raw, None, "nvat"


def _mean_with_interval(
    points: Sequence[tuple[float | None, Sequence[Any] | None]],
) -> tuple[float | None, list[float] | None]:
    """Mean of per-condition estimates and a 95 % interval propagated from theirs.

    Each condition's standard error is its interval width / (2 · 1.96); the mean's is
    √(Σ se²) / n, treating conditions as independent (they are separate interventions, but they
    share scenes, so this is a lower bound when their errors correlate; the release notes say so).
    No interval when any condition lacks one.
    """
    vals = [v for v, _ in points if v is not None]
    if not vals or len(vals) != len(points):
        return None, None
    mean = sum(vals) / len(vals)
    ses = [
        (ci[1] - ci[0]) / (2 * Z95)
        for _, ci in points
        if ci and finite_num(ci[0]) is not None and finite_num(ci[1]) is not None
    ]
    if len(ses) != len(points):
        return mean, None
    half = Z95 * (sum(se * se for se in ses) ** 0.5) / len(ses)
    return mean, [mean - half, mean + half]


def rank_bounds(intervals: Sequence[list[float] | None]) -> list[tuple[int, int]]:
    """Rank ranges as LMArena shows them, lower is better.

    Entry i ranks at best 1 + the number of entries whose whole interval lies below i's, at worst
    n − the number whose whole interval lies above. An entry without an interval can be anywhere
    (1..n) and bounds no other entry.
    """
    n = len(intervals)
    out = []
    for ci in intervals:
        if ci is None:
            out.append((1, n))
            continue
        better = sum(1 for o in intervals if o is not None and o[1] < ci[0])
        worse = sum(1 for o in intervals if o is not None and o[0] > ci[1])
        out.append((1 + better, n - worse))
    return out


def model_board(rows: Sequence[dict[str, Any]], release_conditions: int) -> list[dict[str, Any]]:
    """One line per entry, ranked by its mean bias-corrected tax over the release's conditions.

    Per entry: the rows of its best status only (verified, else checked, else local), one per
    condition; ``tax`` is the mean bias-corrected nVAT with a propagated 95 % interval, ``gain`` the
    mean directed gain likewise. An entry whose gain interval includes 0 moved nothing detectably, so
    its low tax means nothing: it is listed after the ranked entries, unranked, as is an entry with
    only the raw nVAT when others have the corrected one (one basis per board). Rank bounds come from
    the tax intervals of the ranked entries (:func:`rank_bounds`); ties within uncertainty share a range.
    """
    by_entry: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: STATUS_ORDER.get(r["status"], 3)):
        best = by_entry.setdefault(r["entry"], {})
        first = next(iter(best.values()), None)
        if first is not None and first["status"] != r["status"]:
            continue  # a worse status of an entry that has better rows
        best.setdefault(condition_key(r), r)
    lines = []
    for entry, conds in by_entry.items():
        members = list(conds.values())
        taxes = [_tax_of(r) for r in members]
        tax, tax_ci = _mean_with_interval([(t, ci) for t, ci, _ in taxes])
        gain, gain_ci = _mean_with_interval([(finite_num(r.get("gain")), r.get("gain_ci")) for r in members])
        signal = [
            r["signal"]["nvat"] for r in members if isinstance((r.get("signal") or {}).get("nvat"), bool)
        ]
        planned = sum(int((r.get("coverage") or {}).get("planned") or 0) for r in members)
        parsed = sum(int((r.get("coverage") or {}).get("parsed") or 0) for r in members)
        lines.append(
            {
                "entry": entry,
                "status": members[0]["status"],
                "conditions": len(members),
                "release_conditions": release_conditions,
                "tax": tax,
                "tax_ci": tax_ci,
                "tax_basis": "nvat_corrected" if all(b == "nvat_corrected" for *_, b in taxes) else "nvat",
                "gain": gain,
                "gain_ci": gain_ci,
                "effect": gain_ci is not None and gain_ci[0] > 0,
                "signal_share": sum(signal) / len(signal) if signal else None,
                "coverage_share": parsed / planned if planned else None,
                "anchors": [r["anchor"] for r in members],
            }
        )
    # one basis per board: once any entry has the bias-corrected tax, raw nVATs (rows from before the
    # null) are not comparable with it and stay unranked
    basis = "nvat_corrected" if any(ln["tax_basis"] == "nvat_corrected" for ln in lines) else "nvat"
    for ln in lines:
        ln["unranked_because"] = (
            "its gain's interval includes 0 (no detectable effect)"
            if not ln["effect"]
            else (
                "it has no permutation null (rebuild from a newer store)"
                if ln["tax_basis"] != basis
                else None
            )
        )
    order = lambda ln: (_sort_num(ln["tax"]), ln["entry"])  # noqa: E731
    ranked = sorted((ln for ln in lines if ln["unranked_because"] is None), key=order)
    unranked = sorted((ln for ln in lines if ln["unranked_because"] is not None), key=order)
    for line, (lo, hi) in zip(ranked, rank_bounds([ln["tax_ci"] for ln in ranked]), strict=True):
        line.update(rank_lo=lo, rank_hi=hi, ranked=True)
    for line in unranked:
        line.update(rank_lo=None, rank_hi=None, ranked=False)
    return ranked + unranked


def _sort_num(x: Any) -> float:
    v = finite_num(x)
    return float("inf") if v is None else v


def finite_num(x: Any) -> float | None:
    """``x`` when it is a finite int or float (not a bool), else None."""
    return (
        x
        if isinstance(x, int | float) and not isinstance(x, bool) and x == x and abs(x) != float("inf")
        else None
    )
