"""The paper's figures at print size (single column 3.3 in, double 6.9 in), PDF and PNG, with intervals.

Each ``*_figure`` function takes report rows (METRICS.md §7's dicts) and returns a matplotlib Figure;
:func:`write_all` saves every figure of a report. What each interval is:

- coupling heatmap: the title gives the null-corrected nVAT with its interval (``nvat_ci``); the
  diagonal (excluded from every tax statistic) is grey.
- VAT(u) radar: VAT(u) per value, the 95th percentile of its permutation null (``null.vat[u].q95``: the
  noise floor a value must clear to be a hub) and the nVAT ring.
- GND bars: GND(w) = m(w)/|G_raw| with the bootstrap interval of m(w) (``mean_shift_ci``) divided by
  |G_raw|; the gain's own uncertainty is not propagated (the caption says so).
- gain–nVAT trajectory: gain with its bootstrap interval (``gain_ci``) against nVAT, in the family's
  order, Pareto-efficient conditions filled; the shaded band is the nVAT permutation null (mean to q95).
- cross-model panel (double column): one condition's gain with ``gain_ci`` and corrected nVAT with
  ``nvat_ci``, one line per model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from runner.metrics.row import ReportRow
from runner.report.figures.style import ACCENT, DOUBLE, DPI, GREY, MAIN, SINGLE, STYLE
from runner.report.plots import as_finite, fixed
from runner.report.svg import tick_text

__all__ = [
    "ACCENT",
    "DOUBLE",
    "DPI",
    "GREY",
    "MAIN",
    "SINGLE",
    "STYLE",
    "condition",
    "gnd_figure",
    "heatmap_figure",
    "models_figure",
    "radar_figure",
    "save",
    "trajectory_figure",
    "write_all",
]


def _ci_text(ci: Any, digits: int = 2) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(as_finite(c) is None for c in ci):
        return "n/a"
    return f"[{fixed(ci[0], digits)}, {fixed(ci[1], digits)}]"


def condition(row: Mapping[str, Any]) -> str:
    """A short caption line: model · strategy (label) · target direction."""
    label = row.get("label") if row.get("step") is not None else row.get("strategy")
    return f"{row['display_name']} · {label} · {row['target']} {row['direction']}"


def _new(width: float, height: float) -> Any:
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height), layout="constrained")


def heatmap_figure(row: Mapping[str, Any], values: Sequence[str], names: Mapping[str, str]) -> Any:
    """The coupling matrix R (Spearman of the shifts), diverging −1..1, diagonal grey."""
    import matplotlib as mpl
    import numpy as np

    with mpl.rc_context(STYLE):
        fig = _new(SINGLE, SINGLE * 0.95)
        ax = fig.add_subplot()
        r = np.array(
            [[np.nan if v is None else float(v) for v in line] for line in row["coupling"]], dtype=float
        )
        np.fill_diagonal(r, np.nan)
        cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
        im = ax.imshow(r, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        labels = [names.get(v, v) for v in values]
        ax.set_xticks(range(len(values)), labels, rotation=90)
        ax.set_yticks(range(len(values)), labels)
        ax.tick_params(length=0)
        target = values.index(row["target"]) if row["target"] in values else None
        if target is not None:  # the target's row and column, outlined
            for spot in (ax.get_xticklabels()[target], ax.get_yticklabels()[target]):
                spot.set_fontweight("bold")
        bar = fig.colorbar(im, ax=ax, shrink=0.8, ticks=[-1, -0.5, 0, 0.5, 1])
        bar.set_label("Spearman ρ of the shifts")
        bar.outline.set_linewidth(0.5)
        fig.suptitle(  # over the whole figure: an axes title would run into the colour bar
            f"{condition(row)}\nnVAT corrected {fixed(row.get('nvat_corrected'))}, 95% CI {_ci_text(row.get('nvat_ci'))}"
            f" · {row['n_scenes']} scenes",
            fontsize=STYLE["axes.titlesize"],
        )
    return fig


def _nice_max(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``x`` (round ring labels)."""
    if x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= x * 0.999:
            return m * 10**exp
    return 10 ** (exp + 1)


def radar_figure(row: Mapping[str, Any], values: Sequence[str], names: Mapping[str, str]) -> Any:
    """VAT(u) on the value circle, its null's 95th percentile (noise floor) and the nVAT ring."""
    import matplotlib as mpl
    import numpy as np

    vat = [as_finite((row.get("vat") or {}).get(v)) for v in values]
    floor = [as_finite(((row.get("null") or {}).get("vat") or {}).get(v, {}).get("q95")) for v in values]
    nvat = as_finite(row.get("nvat"))
    with mpl.rc_context(STYLE):
        fig = _new(SINGLE, SINGLE * 1.02)
        ax = fig.add_subplot(projection="polar")
        n = len(values)
        theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ax.set_theta_offset(np.pi / 2)  # the first value at the top, then clockwise
        ax.set_theta_direction(-1)
        closed = np.append(theta, theta[0])

        def poly(xs: list[float | None]) -> Any:
            arr = np.array([np.nan if x is None else x for x in xs] + [np.nan if xs[0] is None else xs[0]])
            return arr

        top = _nice_max(max([x for x in vat + floor + [nvat] if x is not None] or [1.0]) * 1.05)
        if any(f is not None for f in floor):
            ax.fill(closed, poly(floor), color=GREY, alpha=0.25, lw=0, label="null 95th pct. (noise floor)")
        ax.plot(closed, poly(vat), color=MAIN, marker="o", ms=2.5, label="VAT(u)")
        if nvat is not None:
            ring = np.linspace(0, 2 * np.pi, 200)
            ax.plot(ring, np.full_like(ring, nvat), color=ACCENT, ls="--", lw=0.9, label=f"nVAT = {nvat:.2f}")
        ax.set_ylim(0, top)
        ticks = [
            t for t in np.linspace(0, top, 5)[1:-1]
        ]  # no label on the outer ring: it meets the value names
        ax.set_yticks(ticks, [tick_text(t, top / 4) for t in ticks])  # one number of decimals
        ax.set_rlabel_position(180 / n)  # ring labels between the first two spokes, clear of the values
        ax.tick_params(axis="y", labelsize=5, colors="#555555")
        for label in ax.get_yticklabels():  # readable where the VAT line crosses a ring label
            label.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6})
        ax.set_xticks(theta, [names.get(v, v) for v in values])
        ax.tick_params(axis="x", pad=4)
        for label, v, t in zip(ax.get_xticklabels(), values, theta, strict=True):
            side = math.sin(t)  # > 0: right half of the circle (clockwise from the top)
            label.set_horizontalalignment("left" if side > 0.1 else "right" if side < -0.1 else "center")
            if v == row["target"]:
                label.set_fontweight("bold")
        ax.grid(lw=0.4, color="#cccccc")
        ax.spines["polar"].set_linewidth(0.5)
        ax.set_title(f"VAT(u) · {condition(row)}", pad=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False, handlelength=1.5)
    return fig


def gnd_figure(row: Mapping[str, Any], values: Sequence[str], names: Mapping[str, str]) -> Any:
    """GND(w) per value with the bootstrap interval of m(w) / |G_raw|; the target's bar highlighted."""
    import matplotlib as mpl
    import numpy as np

    g = abs(as_finite(row.get("gain_raw")) or 0.0)
    gnd = [as_finite((row.get("gnd") or {}).get(v)) for v in values]
    cis = [(row.get("mean_shift_ci") or {}).get(v) for v in values]
    with mpl.rc_context(STYLE):
        fig = _new(SINGLE, 2.5)
        ax = fig.add_subplot()
        y = np.arange(len(values))[::-1]
        colours = [ACCENT if v == row["target"] else MAIN for v in values]
        heights = [0.0 if x is None else x for x in gnd]
        ax.barh(y, heights, color=colours, height=0.65)
        if g > 0:
            lo: list[float] = []
            hi: list[float] = []
            for x, ci in zip(heights, cis, strict=True):
                ends = (
                    [as_finite(c) for c in ci]
                    if isinstance(ci, list | tuple) and len(ci) == 2
                    else [None, None]
                )
                a, b = ends
                lo.append(x - a / g if a is not None else 0.0)
                hi.append(b / g - x if b is not None else 0.0)
            ax.errorbar(
                heights,
                y,
                xerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                fmt="none",
                ecolor="black",
                elinewidth=0.6,
                capsize=1.5,
            )
        for yy, missing in zip(y, gnd, strict=True):
            if missing is None:
                ax.text(0, yy, " n/a", va="center", fontsize=5, color=GREY)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_yticks(y, [names.get(v, v) for v in values])
        ax.set_xlabel("GND(w) = m(w) / |gain|\nwhiskers: 95% bootstrap CI of m(w), divided by |gain|")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", lw=0.3, color="#dddddd")
        ax.set_axisbelow(True)
        ax.set_title(
            f"GND · {condition(row)}\ngain {fixed(row.get('gain'))}, 95% CI {_ci_text(row.get('gain_ci'))}"
        )
    return fig


def trajectory_figure(members: Sequence[Mapping[str, Any]], fam: Mapping[str, Any]) -> Any:
    """Gain (with its CI) against nVAT along a family in order; Pareto-efficient points filled."""
    import matplotlib as mpl

    pts: list[tuple[Mapping[str, Any], float, float]] = []
    for m in members:
        x, y = as_finite(m.get("nvat")), as_finite(m.get("gain"))
        if x is not None and y is not None:
            pts.append((m, x, y))
    with mpl.rc_context(STYLE):
        fig = _new(SINGLE, 2.6)
        ax = fig.add_subplot()
        means = [as_finite(((m.get("null") or {}).get("nvat") or {}).get("mean")) for m, _, _ in pts]
        q95s = [as_finite(((m.get("null") or {}).get("nvat") or {}).get("q95")) for m, _, _ in pts]
        if any(q is not None for q in q95s):
            ax.axvspan(
                min(x for x in means if x is not None),
                max(q for q in q95s if q is not None),
                color=GREY,
                alpha=0.2,
                lw=0,
                label="nVAT null (mean to 95th pct.)",
            )
        xs = [x for _, x, _ in pts]
        ys = [y for _, _, y in pts]
        ax.plot(xs, ys, color=MAIN, lw=0.8, zorder=2)
        for m, x, y in pts:
            ci = m.get("gain_ci") or [None, None]
            if all(as_finite(c) is not None for c in ci):
                ax.errorbar(
                    [x],
                    [y],
                    yerr=[[y - ci[0]], [ci[1] - y]],
                    fmt="none",
                    ecolor=MAIN,
                    elinewidth=0.6,
                    capsize=1.5,
                    zorder=2,
                )
            efficient = bool((fam.get("pareto") or {}).get(m["label"]))
            ax.plot(
                [x],
                [y],
                marker="o",
                ms=4,
                mfc=ACCENT if efficient else "white",
                mec=ACCENT if efficient else MAIN,
                mew=0.8,
                ls="none",
                zorder=3,
            )
            ax.annotate(m["label"], (x, y), textcoords="offset points", fontsize=5.5, **_label_side(x, xs))
        ax.plot([], [], marker="o", ms=4, mfc=ACCENT, mec=ACCENT, ls="none", label="Pareto-efficient")
        ax.plot([], [], marker="o", ms=4, mfc="white", mec=MAIN, ls="none", label="dominated")
        low = min(
            (c for m, _, _ in pts for c in (m.get("gain_ci") or []) if as_finite(c) is not None), default=None
        )
        if (
            low is not None and low <= 0
        ):  # zero only when an interval reaches it: the axes are never forced to 0
            ax.axhline(0, color="black", lw=0.4)
        ax.margins(x=0.15, y=0.15)
        ax.set_xlabel("nVAT (system tax, lower is better)")
        ax.set_ylabel("gain (95% bootstrap CI)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(loc="best", frameon=False)
        ax.set_title(
            f"{fam['model']} · {fam['family']} · {fam['target']} {fam['direction']} · {fam['n_scenes']} scenes"
        )
    return fig


def models_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Double-column panel: one condition across models, gain and corrected nVAT each with its interval."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        fig = _new(DOUBLE, 0.9 + 0.22 * len(rows))
        left, right = fig.subplots(1, 2, sharey=True)
        y = list(range(len(rows)))[::-1]
        for ax, key, ci_key, label in (
            (left, "gain", "gain_ci", "gain (95% bootstrap CI)"),
            (right, "nvat_corrected", "nvat_ci", "nVAT corrected (95% jackknife CI)"),
        ):
            for yy, row in zip(y, rows, strict=True):
                x = as_finite(row.get(key))
                ci = row.get(ci_key) or [None, None]
                lo, hi = (as_finite(ci[0]), as_finite(ci[1])) if len(ci) == 2 else (None, None)
                if lo is not None and hi is not None:
                    ax.plot([lo, hi], [yy, yy], color=MAIN, lw=1.0, solid_capstyle="butt")
                if x is not None:
                    ax.plot([x], [yy], marker="o", ms=3.5, color=MAIN, ls="none")
                else:
                    ax.text(0, yy, "n/a", va="center", fontsize=5, color=GREY)
            ax.axvline(0, color="black", lw=0.4)
            ax.set_xlabel(label)
            ax.spines[["top", "right"]].set_visible(False)
            ax.grid(axis="x", lw=0.3, color="#dddddd")
            ax.margins(y=0.3 if len(rows) < 3 else 0.1)
        left.set_yticks(y, [str(r["display_name"]) for r in rows])
        first = rows[0]
        cond = first.get("label") if first.get("step") is not None else first.get("strategy")
        fig.suptitle(
            f"{cond} · {first['target']} {first['direction']} across models",
            fontsize=STYLE["axes.titlesize"],
        )
    return fig


def _label_side(x: float, xs: Sequence[float]) -> dict[str, Any]:
    """Put a point's label on the side away from its nearest neighbour in x (clear of that one's whisker)."""
    left = [x - o for o in xs if o < x]
    right = [o - x for o in xs if o > x]
    go_right = not right or (bool(left) and min(left) < min(right))
    return {"xytext": (5, 3), "ha": "left"} if go_right else {"xytext": (-5, 3), "ha": "right"}


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def save(fig: Any, stem: Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.pdf`` and ``<stem>.png`` (300 dpi) and close it."""
    import matplotlib.pyplot as plt

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=DPI, metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def write_all(
    rows: Sequence[Mapping[str, Any]],
    fams: Sequence[Mapping[str, Any]],
    values: Sequence[str],
    names: Mapping[str, str],
    out: Path,
) -> list[Path]:
    """Every figure of a report under ``out``, as PDF and PNG.

    Per row the heatmap, radar and GND; per family the trajectory; per condition run on two or more
    models the cross-model panel, and per model and strategy run on two or more targets the target ×
    value panel (both double column).
    """
    from runner.report.figures.panels import panel_groups, target_value_figure
    from runner.report.tables import family_members

    written: list[Path] = []
    for row in rows:
        base = f"{_slug(row['model'])}__{_slug(row['strategy'])}"
        if row.get("step") is not None:
            base += f"_step{row['step']}"
        base += f"__{row['target']}_{row['direction']}__{row['run_id']}"
        written += save(heatmap_figure(row, values, names), out / f"{base}__coupling")
        written += save(radar_figure(row, values, names), out / f"{base}__radar")
        written += save(gnd_figure(row, values, names), out / f"{base}__gnd")
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:  # one condition, several models: the cross-model panel
        key = (row["strategy"], row.get("step"), row["target"], row["direction"], row.get("variant"))
        groups.setdefault(key, []).append(row)
    for (strategy, step, target, direction, _), members_of in groups.items():
        if len({r["model"] for r in members_of}) >= 2:
            tag = f"{_slug(strategy)}{'' if step is None else f'_step{step}'}__{target}_{direction}"
            written += save(models_figure(members_of), out / f"models__{tag}")
    for group in panel_groups(rows, values):  # one model and strategy, several targets
        first = group[0]
        tag = f"{_slug(first['model'])}__{_slug(first['strategy'])}"
        tag += "" if first.get("step") is None else f"_step{first['step']}"
        if len({r.get("variant") for r in rows}) > 1:  # name the prompt wording only where it varies
            tag += f"__{_slug(first.get('variant'))}"
        written += save(target_value_figure(group, values, names), out / f"{tag}__targets")
    for fam in fams:
        # The rows come from a results document checked against the schema: typed report rows.
        members = family_members(cast("list[ReportRow]", list(rows)), dict(fam))
        if len(members) >= 2:
            stem = f"{_slug(fam['model'])}__{fam['family']}__{fam['target']}_{fam['direction']}__trajectory"
            written += save(trajectory_figure(members, fam), out / stem)
    return written
