"""The target × value panel: what steering toward each target does to every value, with intervals.

One row per target (and direction) run with the same model and strategy, one column per value; each
cell is that value's mean shift m(w) (post − pre) with its 95 % bootstrap interval (``mean_shift_ci``)
on a y scale shared by every cell, so rows and columns compare at a glance. The target's own cell is
shaded and its point orange; a point whose interval includes 0 is hollow and grey (within noise).
Double column (6.9 in), PDF and PNG through :func:`runner.report.figures.paper.save`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from runner.report.figures.style import ACCENT, DOUBLE, GREY, MAIN, STYLE
from runner.report.svg import as_finite, interval

TARGET_SHADE = "#fdebd9"


def panel_groups(rows: Sequence[Mapping[str, Any]], values: Sequence[str]) -> list[list[Mapping[str, Any]]]:
    """Rows grouped by model, strategy, step and wording, each group one row per (target, direction).

    Only groups with two or more targets make a panel. Rows of one target and direction run twice (two
    scene selections) keep the one with the most scenes. Targets follow ``values`` (the circle order),
    then reinforce before suppress.
    """
    groups: dict[tuple[Any, ...], dict[tuple[str, str], Mapping[str, Any]]] = {}
    for row in rows:
        key = (row["model"], row["strategy"], row.get("step"), row.get("variant"))
        cell = (row["target"], row["direction"])
        best = groups.setdefault(key, {}).get(cell)
        if best is None or (row.get("n_scenes") or 0) > (best.get("n_scenes") or 0):
            groups[key][cell] = row
    order = {v: i for i, v in enumerate(values)}
    out = []
    for members in groups.values():
        if len({t for t, _ in members}) < 2:
            continue
        keyed = sorted(
            members.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1] != "reinforce")
        )
        out.append([row for _, row in keyed])
    return out


def _shared_limits(rows: Sequence[Mapping[str, Any]], values: Sequence[str]) -> tuple[float, float]:
    """One y range for every cell: the shifts and interval ends, with 8 % margin each side, 0 inside."""
    ends = [0.0]
    for row in rows:
        for v in values:
            ends += [f for f in [as_finite((row.get("mean_shift") or {}).get(v))] if f is not None]
            ends += list(interval((row.get("mean_shift_ci") or {}).get(v)) or ())
    lo, hi = min(ends), max(ends)
    pad = 0.08 * ((hi - lo) or 1.0)
    return lo - pad, hi + pad


def target_value_figure(
    rows: Sequence[Mapping[str, Any]], values: Sequence[str], names: Mapping[str, str]
) -> Any:
    """The grid of ``len(rows)`` × ``len(values)`` cells: each value's shift under each target, with its CI."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    with mpl.rc_context(STYLE):
        tight = ConstrainedLayoutEngine(w_pad=0.01, h_pad=0.01, wspace=0.0, hspace=0.0)  # cells touch
        fig = plt.figure(figsize=(DOUBLE, 0.75 + 0.5 * len(rows)), layout=tight)
        grid = fig.subplots(len(rows), len(values), sharex=True, sharey=True, squeeze=False)
        low, high = _shared_limits(rows, values)
        for i, row in enumerate(rows):
            for j, v in enumerate(values):
                ax = grid[i][j]
                _cell(ax, row, v)
                ax.set_ylim(low, high)
                ax.set_xlim(-1, 1)
                ax.set_xticks([])
                ax.tick_params(axis="y", length=2, pad=1)
                for side in ("top", "right", "bottom") + (("left",) if j else ()):
                    ax.spines[side].set_visible(False)
                if i == 0:
                    ax.set_title(
                        textwrap.fill(names.get(v, v), 10, break_long_words=False), fontsize=6, pad=3
                    )
                if j == 0:
                    label = f"{names.get(row['target'], row['target'])}\n{row['direction']}"
                    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=6, labelpad=4)
                else:
                    ax.tick_params(axis="y", left=False, labelleft=False)
        first = rows[0]
        cond = first.get("label") if first.get("step") is not None else first.get("strategy")
        fig.suptitle(
            f"{first['display_name']} · {cond} · mean shift m(w) of each value (columns) when steering "
            f"each target (rows), 95% bootstrap CI",
            fontsize=STYLE["axes.titlesize"],
        )
        fig.supxlabel(
            "shaded: the target's own value · hollow grey: the interval includes 0 (within noise)",
            fontsize=5.5,
            color="#555555",
        )
    return fig


def _cell(ax: Any, row: Mapping[str, Any], value: str) -> None:
    """One cell: the zero line, the value's shift as a point and its interval as a whisker."""
    is_target = value == row["target"]
    if is_target:
        ax.set_facecolor(TARGET_SHADE)
    ax.axhline(0, color="#999999", lw=0.4, zorder=1)
    shift = as_finite((row.get("mean_shift") or {}).get(value))
    if shift is None:
        ax.text(0, 0, "n/a", ha="center", va="center", fontsize=5, color=GREY)
        return
    ci = interval((row.get("mean_shift_ci") or {}).get(value))
    noise = ci is not None and ci[0] <= 0.0 <= ci[1]
    colour = GREY if noise else (ACCENT if is_target else MAIN)
    ax.plot([0, 0], [0, shift], color=colour, lw=2.2, alpha=0.35, solid_capstyle="butt")  # a stem from 0
    if ci is not None:
        ax.errorbar(
            [0],
            [shift],
            yerr=[[shift - ci[0]], [ci[1] - shift]],
            fmt="none",
            ecolor=colour,
            elinewidth=0.8,
            capsize=1.5,
        )
    ax.plot([0], [shift], marker="o", ms=3, ls="none", mec=colour, mfc="white" if noise else colour, zorder=3)
