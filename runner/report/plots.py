"""Hand-written SVG figures for reports and the leaderboard site: no plotting library, no network.

Every function returns a complete ``<svg>`` document as a string (built from :mod:`runner.report.svg`):
it scales to its container (a ``viewBox``, ``width='100%'``), its ticks are round 1-2-5 numbers, its
axes fit the data with a margin (a bar chart keeps its zero baseline), and every interval the row holds
is drawn (``class='interval'``). What is within noise is drawn pale or hollow and a note says so. Every
piece of text (titles, value ids, labels) is contributed data and is escaped, so a label can never
inject markup into the site. Missing numbers (None or NaN) are drawn as "n/a", never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from runner.report.svg import (
    MUTED,
    NA,
    Box,
    as_finite,
    document,
    fixed,
    heading_height,
    interval,
    label_lines,
    linear,
    nice_ceiling,
    nice_ticks,
    padded,
    place_label,
    shortened,
    text,
    text_lines,
    text_width,
    tick_text,
    wrap,
)

__all__ = [
    "as_finite",
    "circumplex_radar",
    "coupling_heatmap",
    "diverging_colour",
    "fixed",
    "gain_tax_chart",
    "gnd_bars",
    "pareto_plot",
    "shift_bars",
    "target_value_grid",
]

_BLUE = (33, 102, 172)
_WHITE = (247, 247, 247)
_RED = (178, 24, 43)
_GREY = "#bdbdbd"
_ACCENT = "#d95f02"
_MAIN = "#1f78b4"
_NOTE = "fill='#666'"


def diverging_colour(x: Any) -> str:
    """Colour of ``x`` on a blue (−1) – white (0) – red (+1) scale; grey when missing."""
    f = as_finite(x)
    if f is None:
        return _GREY
    f = max(-1.0, min(1.0, f))
    end = _RED if f > 0 else _BLUE
    rgb = (round(w + abs(f) * (e - w)) for w, e in zip(_WHITE, end, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _legend_bar(x: float, y: float, height: float) -> tuple[str, list[str]]:
    """Vertical −1..1 colour legend: the gradient definition and the elements that draw it."""
    stops = "".join(
        f"<stop offset='{(1 - v) / 2:.2f}' stop-color='{diverging_colour(v)}'/>"
        for v in (1.0, 0.5, 0.0, -0.5, -1.0)
    )
    defs = f"<linearGradient id='diverging' x1='0' y1='0' x2='0' y2='1'>{stops}</linearGradient>"
    body = [
        f"<rect x='{x:.1f}' y='{y:.1f}' width='14' height='{height:.1f}' fill='url(#diverging)' stroke='#666'/>"
    ]
    for v in (1.0, 0.5, 0.0, -0.5, -1.0):
        label = "0" if v == 0 else f"{v:+.1f}".replace(".0", "")
        body.append(text(x + 20, y + (1 - v) / 2 * height + 4, label, size=11, anchor="start"))
    return defs, body


def coupling_heatmap(
    coupling: Sequence[Sequence[Any]] | Any,
    values: Sequence[str],
    title: str = "Coupling R",
    band: float | None = None,
) -> str:
    """Heatmap of the coupling matrix R (in ``values`` order) on a diverging −1..1 scale, values printed.

    With ``band`` (the half-width of the null band, e.g. 1.96/√(n − 1)), off-diagonal cells with
    |R| < band are within noise: drawn pale with grey text, and a note says so. Margins follow the
    longest value name; a name over 24 characters is shortened, its full text in a ``<title>``.
    """
    n = max(1, len(values))
    names = [shortened(v, 24) for v in values]
    longest = max([text_width(s, 11) for s, _ in names] + [30.0])
    cell = max(14.0, min(40.0, 400.0 / n))
    left = 16 + longest + 6
    width = max(left + n * cell + 70, left + (n - 0.5) * cell + longest * 0.71 + 12, 420.0)
    top = 46 + heading_height(title, width) + longest * 0.71 + 10  # column names at −45°
    height = top + n * cell + (42 if band is not None else 18)
    body: list[str] = []
    for i, (name, full) in enumerate(names):
        y = top + i * cell
        body.append(
            text(left - 6, y + cell / 2 + 4, name, size=11, anchor="end").replace("</text>", full + "</text>")
        )
        cx = left + i * cell + cell / 2
        rotate = f"transform='rotate(-45 {cx:.1f} {top - 6:.1f})'"
        body.append(
            text(cx, top - 6, name, size=11, anchor="start", extra=rotate).replace(
                "</text>", full + "</text>"
            )
        )
        for j in range(len(values)):
            x = left + j * cell
            r = as_finite(coupling[i][j])
            muted = band is not None and i != j and r is not None and abs(r) < band
            opacity = " fill-opacity='0.25'" if muted else ""
            body.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{cell:.1f}' height='{cell:.1f}' fill='{diverging_colour(r)}'{opacity} stroke='white'"
                + (" class='in-null-band'/>" if muted else "/>")
            )
            ink = MUTED if muted else ("white" if r is not None and abs(r) > 0.6 else "#222")
            size = max(8, min(11, int(cell / 3.2)))
            body.append(text(x + cell / 2, y + cell / 2 + 3.5, fixed(r), size=size, extra=f"fill='{ink}'"))
    defs, legend = _legend_bar(left + n * cell + 14, top, min(n * cell, 200.0))
    if band is not None:
        note = f"pale: |R| < {band:.2f}, inside the 95 % band of noise"
        body.append(text(left, top + n * cell + 22, note, size=11, anchor="start", extra=_NOTE))
    return document(width, height, title, body + legend, defs)


def _polar(cx: float, cy: float, radius: float, theta: float) -> tuple[float, float]:
    """Point at angle ``theta`` (0 at the top, clockwise, like a clock face) and ``radius``."""
    return cx + radius * math.sin(theta), cy - radius * math.cos(theta)


def circumplex_radar(
    vat: Mapping[str, Any],
    values: Sequence[str],
    title: str = "VAT by value",
    circle_index: Mapping[str, int] | None = None,
    circle_size: int = 10,
    null: Mapping[str, Any] | None = None,
    hubs: Sequence[str] = (),
) -> str:
    """Radar of VAT(u) with each value at its Schwartz-circle angle, on rings at round numbers.

    A value's position is ``circle_index[value]`` (default: its position in ``values``) out of
    ``circle_size``; a missing VAT sits at the centre and its label says "n/a". ``null`` maps each value
    to its null 95th percentile: drawn as a dashed grey ring, so a spoke beyond it beats noise; a value
    inside its ring is drawn as a hollow grey point with a grey number. Tested ``hubs`` are in bold.
    Ring labels sit between the first two spokes, clear of the value names and numbers.
    """
    index = circle_index if circle_index is not None else {v: i for i, v in enumerate(values)}
    placed = sorted((index[v], v) for v in values if v in index)
    width, radius = 560.0, 150.0
    cx, cy = width / 2, 250.0 + heading_height(title, width)
    finite = [f for v in values if (f := as_finite(vat.get(v))) is not None]
    ring = {v: f for v in values if (f := as_finite((null or {}).get(v))) is not None}
    top, step = nice_ceiling(max(finite + list(ring.values()) + [0.0]))
    body: list[str] = []
    between = math.pi / circle_size  # halfway between the first two spokes
    for k in range(1, round(top / step) + 1):
        r = radius * k * step / top
        body.append(
            f"<circle class='ring' cx='{cx:.1f}' cy='{cy:.1f}' r='{r:.1f}' fill='none' stroke='#ddd'/>"
        )
        lx, ly = _polar(cx, cy, r, between)
        halo = "fill='#777' class='tick' stroke='white' stroke-width='3' paint-order='stroke'"
        body.append(text(lx, ly + 3, tick_text(k * step, step), size=9, extra=halo))
    points: list[tuple[float, float, bool, bool]] = []  # x, y, missing, within noise
    ring_points: list[tuple[float, float]] = []
    for pos, v in placed:
        theta = 2 * math.pi * pos / circle_size
        ex, ey = _polar(cx, cy, radius, theta)
        body.append(f"<line x1='{cx:.1f}' y1='{cy:.1f}' x2='{ex:.1f}' y2='{ey:.1f}' stroke='#ddd'/>")
        side = math.sin(theta)
        lines, full = label_lines(v, 16)
        lx, ly = _polar(cx, cy, radius + 22, theta)
        if math.cos(theta) > 0.3:  # upper half: grow the label block upwards, away from the rings
            ly -= 13 * (len(lines) - 1) + 13
        anchor = "middle" if abs(side) < 0.3 else ("start" if side > 0 else "end")
        bold = "font-weight='bold'" if v in hubs else ""
        body.append(text_lines(lx, ly + 4, lines, 11, anchor, bold).replace("</text>", full + "</text>"))
        f = as_finite(vat.get(v))
        noise = f is not None and v in ring and f <= ring[v]
        ink = f"fill='{MUTED}'" if noise or f is None else "fill='#333'"
        body.append(text(lx, ly + 4 + 13 * len(lines), fixed(f), size=9, anchor=anchor, extra=ink))
        px, py = _polar(cx, cy, radius * (f or 0.0) / top, theta)
        points.append((px, py, f is None, noise))
        if v in ring:
            ring_points.append(_polar(cx, cy, radius * ring[v] / top, theta))
    notes = []
    if ring_points:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in ring_points)
        body.append(
            f"<polygon class='null-ring' points='{coords}' fill='none' stroke='#777' stroke-width='1.5' stroke-dasharray='5 4'/>"
        )
        notes.append("dashed: null 95th percentile of VAT(u) (columns permuted)")
        notes.append("hollow grey: VAT(u) inside its null ring, within noise")
    if points:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        body.append(
            f"<polygon points='{coords}' fill='{_MAIN}' fill-opacity='0.3' stroke='{_MAIN}' stroke-width='2'/>"
        )
        for x, y, missing, noise in points:
            if missing:
                continue
            look = f"fill='white' stroke='{MUTED}' class='within-noise'" if noise else f"fill='{_MAIN}'"
            body.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' {look}/>")
    bottom = cy + radius + 60
    for i, note in enumerate(notes):
        body.append(text(cx, bottom + 16 * i, note, size=11, extra=_NOTE))
    return document(width, bottom + 16 * len(notes) + 4, title, body)


def gnd_bars(
    gnd: Mapping[str, Any],
    target: str,
    title: str = "Gain-normalized deviation",
    intervals: Mapping[str, Any] | None = None,
    caveat: str | None = None,
    axis_label: str = "GND(w) = m(w) / |gain|",
) -> str:
    """Horizontal bars of GND(w) from a zero line on an axis with round ticks; the target highlighted.

    ``intervals`` maps a value to its [lo, hi] (drawn as a whisker, ``class='interval'``); a bar whose
    interval includes 0 is within noise and drawn pale. ``caveat`` is printed in red under the bars
    (e.g. when the gain's interval spans 0 and GND cannot be read). Missing numbers show "n/a".
    """
    items = list(gnd.items())
    labels = {v: label_lines(v, 18) for v, _ in items}  # two lines at most
    label_w = max([text_width(ln, 12) for lines, _ in labels.values() for ln in lines] + [30.0])
    left = 16 + label_w + 8
    width = max(520.0, left + 360)
    px0, px1 = left + 46, width - 46  # gutters for the numbers printed past the bars
    top = 50.0 + heading_height(title, width)
    bar = 36.0 if any(len(lines) > 1 for lines, _ in labels.values()) else 26.0  # room for 2 lines
    whiskers = {v: ci for v, raw in (intervals or {}).items() if (ci := interval(raw)) is not None}
    spread = [0.0] + [f for _, x in items if (f := as_finite(x)) is not None]
    spread += [e for v, _ in items if v in whiskers for e in whiskers[v]]
    lo, hi = padded(spread, share=0.05)
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # bars start at zero: the baseline stays on the axis
    ticks, step = nice_ticks(lo, hi, 5)
    sx = linear((lo, hi), (px0, px1))
    zero, bottom = sx(0.0), top + len(items) * bar
    body = [
        f"<line class='zero' x1='{zero:.1f}' y1='{top - 6:.1f}' x2='{zero:.1f}' y2='{bottom:.1f}' stroke='#444'/>"
    ]
    for t in ticks:
        if abs(t) > step * 1e-6:
            body.append(
                f"<line x1='{sx(t):.1f}' y1='{top - 6:.1f}' x2='{sx(t):.1f}' y2='{bottom:.1f}' stroke='#eee'/>"
            )
        body.append(text(sx(t), bottom + 16, tick_text(t, step), size=10, extra="class='tick' fill='#555'"))
    body.append(text((px0 + px1) / 2, bottom + 34, axis_label, size=11))
    pale = False
    for i, (value, x) in enumerate(items):
        y = top + i * bar
        is_target = value == target
        weight = "font-weight='bold'" if is_target else ""
        lines, full = labels[value]
        label = text_lines(left - 8, y + bar / 2 + 4 - 6 * (len(lines) - 1), lines, 12, "end", weight)
        body.append(label.replace("</text>", full + "</text>"))
        f = as_finite(x)
        if f is None:
            body.append(text(zero + 6, y + bar / 2 + 4, NA, size=11, anchor="start", extra="fill='#888'"))
            continue
        ci = whiskers.get(value)
        noise = ci is not None and ci[0] <= 0.0 <= ci[1]
        pale = pale or noise
        colour = _ACCENT if is_target else _MAIN
        look = " fill-opacity='0.35' class='within-noise'" if noise else ""
        x0, x1 = sorted((zero, sx(f)))
        body.append(
            f"<rect x='{x0:.1f}' y='{y + 4:.1f}' width='{x1 - x0:.1f}' height='{bar - 8:.1f}' fill='{colour}'{look}/>"
        )
        reach = sx(f)
        if ci is not None:
            a, b, mid = sx(ci[0]), sx(ci[1]), y + bar / 2
            body.append(
                f"<line class='interval' x1='{a:.1f}' y1='{mid:.1f}' x2='{b:.1f}' y2='{mid:.1f}' stroke='#222' stroke-width='1.5'/>"
                f"<line x1='{a:.1f}' y1='{mid - 5:.1f}' x2='{a:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>"
                f"<line x1='{b:.1f}' y1='{mid - 5:.1f}' x2='{b:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>"
            )
            reach = max(reach, b) if f >= 0 else min(reach, a)
        tx, anchor = (reach + 4, "start") if f >= 0 else (reach - 4, "end")
        body.append(text(tx, y + bar / 2 + 4, fixed(f), size=10, anchor=anchor, extra=weight))
    notes = [f"target: {target}" + (" · whiskers: 95 % interval" if whiskers else "")]
    if pale:
        notes.append("pale: the 95 % interval includes 0, within noise")
    body += [
        text((px0 + px1) / 2, bottom + 56 + 16 * i, n, size=11, extra=_NOTE) for i, n in enumerate(notes)
    ]
    end = bottom + 56 + 16 * len(notes)
    if caveat:
        body.append(text((px0 + px1) / 2, end + 4, caveat, size=11, extra="fill='#b2182b'"))
        end += 20
    return document(width, end + 6, title, body)


def shift_bars(
    mean_shift: Mapping[str, Any],
    intervals: Mapping[str, Any],
    target: str,
    title: str = "Mean shift by value",
) -> str:
    """Bars of the mean shift m(w) of every value with its 95 % bootstrap interval as a whisker."""
    return gnd_bars(mean_shift, target, title, intervals=intervals, axis_label="mean shift m(w), post − pre")


# ---------------------------------------------------------------- scatter charts


def _scatter(
    points: Sequence[Mapping[str, Any]],
    title: str,
    labels: tuple[str, str],
    notes: list[str],
    front: Sequence[tuple[float, float]] = (),
    band: tuple[float, float] | None = None,
) -> str:
    """A scatter with x and y whiskers, round ticks, axes fitted to the data and labels that avoid each other.

    Each point is {label, x, y, x_ci, y_ci, colour, hollow}; ``front`` is a polyline (the Pareto
    front), ``band`` an x range shaded grey (a null band). Points with a missing coordinate are listed
    as "n/a" under the chart.
    """
    width, height = 600.0, 440.0 + 16 * len(notes)
    left, right = 74.0, width - 24.0
    top, bottom = 50.0 + heading_height(title, width), height - 64.0 - 16 * len(notes)
    drawn = [p for p in points if as_finite(p.get("x")) is not None and as_finite(p.get("y")) is not None]
    xs = [float(p["x"]) for p in drawn] + [e for p in drawn for e in interval(p.get("x_ci")) or ()]
    ys = [float(p["y"]) for p in drawn] + [e for p in drawn for e in interval(p.get("y_ci")) or ()]
    xs += list(band or ())
    x_dom, y_dom = padded(xs or [0.0, 1.0]), padded(ys or [0.0, 1.0])
    sx, sy = linear(x_dom, (left, right)), linear(y_dom, (bottom, top))
    body = [
        f"<line x1='{left}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='#444'/>",
        f"<line x1='{left}' y1='{bottom}' x2='{left}' y2='{top}' stroke='#444'/>",
        text((left + right) / 2, bottom + 36, labels[0], size=12),
        text(
            18,
            (top + bottom) / 2,
            labels[1],
            size=12,
            extra=f"transform='rotate(-90 18 {(top + bottom) / 2:.1f})'",
        ),
    ]
    if band is not None:
        a, b = sx(band[0]), sx(band[1])
        body.insert(
            0,
            f"<rect class='null-band' x='{a:.1f}' y='{top}' width='{b - a:.1f}' height='{bottom - top:.1f}' fill='#e0e0e0'/>",
        )
    xt, xstep = nice_ticks(*x_dom)
    yt, ystep = nice_ticks(*y_dom)
    for t in xt:
        body.append(
            f"<line x1='{sx(t):.1f}' y1='{bottom}' x2='{sx(t):.1f}' y2='{bottom + 4}' stroke='#444'/>"
        )
        body.append(text(sx(t), bottom + 16, tick_text(t, xstep), size=10, extra="class='tick'"))
    for t in yt:
        body.append(f"<line x1='{left - 4}' y1='{sy(t):.1f}' x2='{left}' y2='{sy(t):.1f}' stroke='#444'/>")
        body.append(
            text(left - 7, sy(t) + 3, tick_text(t, ystep), size=10, anchor="end", extra="class='tick'")
        )
    if y_dom[0] < 0 < y_dom[1]:  # zero only where the data reach it: the axes are never forced to 0
        body.append(
            f"<line class='zero' x1='{left}' y1='{sy(0):.1f}' x2='{right}' y2='{sy(0):.1f}' stroke='#999' stroke-dasharray='3 3'/>"
        )
    if x_dom[0] < 0 < x_dom[1]:
        body.append(
            f"<line class='zero' x1='{sx(0):.1f}' y1='{bottom}' x2='{sx(0):.1f}' y2='{top}' stroke='#999' stroke-dasharray='3 3'/>"
        )
    if len(front) > 1:
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in front)
        body.append(f"<polyline points='{coords}' fill='none' stroke='{_ACCENT}' stroke-width='2'/>")
    taken: list[Box] = [
        (sx(float(p["x"])) - 6, sy(float(p["y"])) - 6, sx(float(p["x"])) + 6, sy(float(p["y"])) + 6)
        for p in drawn
    ]
    marks = []
    for p in drawn:
        x, y, colour = sx(float(p["x"])), sy(float(p["y"])), p.get("colour", _MAIN)
        for key, horizontal in (("x_ci", True), ("y_ci", False)):
            ci = interval(p.get(key))
            if ci is None:
                continue
            a, b = (sx(ci[0]), sx(ci[1])) if horizontal else (sy(ci[0]), sy(ci[1]))
            ends = (a, y, b, y) if horizontal else (x, a, x, b)
            body.append(
                "<line class='interval' x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' ".format(*ends)
                + f"stroke='{colour}' stroke-width='1.2'/>"
            )
        look = (
            f"fill='white' stroke='{colour}' stroke-width='2' class='within-noise'"
            if p.get("hollow")
            else f"fill='{colour}'"
        )
        marks.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5' {look}/>")
        tx, ty, anchor = place_label(x, y, str(p.get("label", "")), 11, taken, (0.0, top - 10, width, bottom))
        marks.append(text(tx, ty, p.get("label", ""), size=11, anchor=anchor))
    body += marks  # markers and labels over every whisker
    missing = [str(p.get("label", "")) for p in points if all(p is not q for q in drawn)]
    lines = ([f"{NA}: " + ", ".join(missing)] if missing else []) + notes
    for i, note in enumerate(lines):
        extra = "fill='#888'" if missing and i == 0 else _NOTE
        body.append(text(left, bottom + 56 + 16 * i, note, size=11, anchor="start", extra=extra))
    return document(width, height + (16 if missing else 0), title, body)


def _spans_zero(ci: Any) -> bool:
    pair = interval(ci)
    return pair is not None and pair[0] <= 0.0 <= pair[1]


def gain_tax_chart(points: Sequence[Mapping[str, Any]], title: str, x_label: str, y_label: str) -> str:
    """Scatter of each entry's tax (x) against its gain (y), each with its interval as error bars.

    Each point is {label, x, x_ci: [lo, hi] | None, y, y_ci}; a point whose gain interval includes 0
    moved nothing detectably and is drawn hollow; a point with a missing coordinate is listed as "n/a".
    """
    styled = [{**p, "hollow": _spans_zero(p.get("y_ci"))} for p in points]
    notes = ["bars: 95 % intervals · lower tax and higher gain are better"]
    if any(p["hollow"] for p in styled if as_finite(p.get("x")) is not None):
        notes.append("hollow: the gain's interval includes 0 (no detectable effect)")
    if any(_spans_zero(p.get("x_ci")) for p in points):
        notes.append("a tax interval that reaches 0 (dashed) is within noise")
    return _scatter(styled, title, (x_label, y_label), notes)


def pareto_plot(points: Sequence[Mapping[str, Any]], title: str = "Gain vs tax") -> str:
    """Scatter of on-target gain (y) against nVAT (x); Pareto-efficient points joined along the front.

    Each point is {label, gain, nvat, efficient} with optional ``gain_ci`` (a vertical whisker),
    ``null`` ([mean, q95] of the nVAT permutation null: the grey band spans the family's) and
    ``within_noise`` (nVAT not told from its null). A point within noise, or whose gain interval
    includes 0, is hollow. Plug-in nVAT has no interval of its own (``nvat_ci`` belongs to the
    corrected estimate), so none is drawn across x. Points with a missing coordinate are listed "n/a".
    """
    shaped = []
    for p in points:
        hollow = bool(p.get("within_noise")) or _spans_zero(p.get("gain_ci"))
        colour = _ACCENT if p.get("efficient") else _MAIN
        shaped.append(
            {
                "label": p.get("label", ""),
                "x": p.get("nvat"),
                "y": p.get("gain"),
                "y_ci": p.get("gain_ci"),
                "colour": colour,
                "hollow": hollow,
            }
        )
    nulls = [pair for p in points if (pair := interval(p.get("null"))) is not None]
    band = (min(a for a, _ in nulls), max(b for _, b in nulls)) if nulls else None
    front = sorted(
        (float(q["x"]), float(q["y"]))
        for p, q in zip(points, shaped, strict=True)
        if p.get("efficient") and as_finite(q["x"]) is not None and as_finite(q["y"]) is not None
    )
    notes = [
        "orange: Pareto-efficient"
        + (" · whiskers: the gain's 95 % interval" if any(interval(p.get("gain_ci")) for p in points) else "")
    ]
    if band is not None:
        notes.append("grey band: nVAT permutation null, mean to 95th percentile")
    if any(q["hollow"] for q in shaped):
        notes.append("hollow: nVAT within noise or the gain's interval includes 0")
    return _scatter(shaped, title, ("nVAT (system tax)", "gain G"), notes, front=front, band=band)


# ---------------------------------------------------------------- target × value grid


def target_value_grid(
    rows: Sequence[Mapping[str, Any]], values: Sequence[str], title: str = "Mean shift by target and value"
) -> str:
    """A grid with one row per target (row) and one column per value: each value's mean shift with its CI.

    Every cell (``class='cell'``) shares one y scale; the target's own cell is shaded and its point
    orange; a point whose 95 % interval includes 0 is hollow grey (``class='within-noise'``).
    """
    heads = {v: wrap(v, 12) for v in values}
    names = [f"{r['target']} {r['direction']}" for r in rows]
    left = 20 + max([text_width(n, 11) for n in names] + [40.0]) + 34  # row names, then the tick labels
    cw, ch = 68.0, 64.0
    width = max(left + cw * len(values) + 16, 480.0)
    top = 52 + heading_height(title, width) + 13 * max([len(h) for h in heads.values()] + [1])
    ends = [0.0]
    for r in rows:
        ends += [f for v in values if (f := as_finite((r.get("mean_shift") or {}).get(v))) is not None]
        ends += [e for v in values for e in interval((r.get("mean_shift_ci") or {}).get(v)) or ()]
    lo, hi = padded(ends, share=0.1)
    ticks, step = nice_ticks(lo, hi, 3)
    body: list[str] = []
    for j, v in enumerate(values):
        body.append(text_lines(left + (j + 0.5) * cw, top - 8 - 13 * (len(heads[v]) - 1), heads[v], 10))
    for i, r in enumerate(rows):
        y0 = top + i * ch
        sy = linear((lo, hi), (y0 + ch - 4, y0 + 4))
        body.append(text(20, y0 + ch / 2 + 4, names[i], size=11, anchor="start"))
        for t in ticks:
            body.append(
                text(
                    left - 4,
                    sy(t) + 3,
                    tick_text(t, step),
                    size=9,
                    anchor="end",
                    extra="class='tick' fill='#666'",
                )
            )
        for j, v in enumerate(values):
            x0, cx = left + j * cw, left + (j + 0.5) * cw
            own = v == r["target"]
            body.append(
                f"<rect class='cell' x='{x0 + 1:.1f}' y='{y0 + 1:.1f}' width='{cw - 2:.1f}' height='{ch - 2:.1f}' fill='{'#fdebd9' if own else '#f7f7f7'}'/>"
            )
            body.append(
                f"<line x1='{x0 + 1:.1f}' y1='{sy(0):.1f}' x2='{x0 + cw - 1:.1f}' y2='{sy(0):.1f}' stroke='#bbb'/>"
            )
            f = as_finite((r.get("mean_shift") or {}).get(v))
            if f is None:
                body.append(text(cx, y0 + ch / 2 + 4, NA, size=9, extra="fill='#888'"))
                continue
            ci = interval((r.get("mean_shift_ci") or {}).get(v))
            noise = ci is not None and ci[0] <= 0.0 <= ci[1]
            colour = MUTED if noise else (_ACCENT if own else _MAIN)
            if ci is not None:
                body.append(
                    f"<line class='interval' x1='{cx:.1f}' y1='{sy(ci[0]):.1f}' x2='{cx:.1f}' y2='{sy(ci[1]):.1f}' stroke='{colour}' stroke-width='1.5'/>"
                )
            look = (
                f"fill='white' stroke='{MUTED}' stroke-width='1.5' class='within-noise'"
                if noise
                else f"fill='{colour}'"
            )
            body.append(f"<circle cx='{cx:.1f}' cy='{sy(f):.1f}' r='3.5' {look}/>")
    bottom = top + len(rows) * ch
    notes = [
        "whiskers: 95 % bootstrap interval of the mean shift · one y scale for every cell",
        "shaded: the target's own value · hollow grey: the interval includes 0 (within noise)",
    ]
    body += [
        text(20, bottom + 20 + 16 * k, n, size=11, anchor="start", extra=_NOTE) for k, n in enumerate(notes)
    ]
    return document(width, bottom + 20 + 16 * len(notes), title, body)
