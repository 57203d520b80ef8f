"""Hand-written SVG figures for reports and the leaderboard site: no plotting library, no network.

Every function returns a complete ``<svg>`` document as a string. Every piece of text (titles, value
ids, labels) is contributed data and goes through :func:`html.escape`, so a label can never inject
markup into the site. Missing numbers (None or NaN) are drawn as "n/a", never as zero.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SIZE = 480
FONT = "font-family='Helvetica, Arial, sans-serif'"
NA = "n/a"
_BLUE = (33, 102, 172)
_WHITE = (247, 247, 247)
_RED = (178, 24, 43)
_GREY = "#bdbdbd"
_ACCENT = "#d95f02"
_MAIN = "#1f78b4"


def _esc(text: object) -> str:
    """Escape text for use in SVG content or a quoted attribute."""
    return html.escape(str(text), quote=True)


def as_finite(x: Any) -> float | None:
    """Return a finite float, or None for None, NaN, infinities and non-numbers (the SVG and paper figures)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fixed(x: Any, digits: int = 2) -> str:
    """Format with ``digits`` decimals, or "n/a" when missing."""
    f = as_finite(x)
    return NA if f is None else f"{f:.{digits}f}"


def _text(x: float, y: float, s: object, size: int = 12, anchor: str = "middle", extra: str = "") -> str:
    """One escaped ``<text>`` element."""
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' {extra}>{_esc(s)}</text>"


def _document(width: float, height: float, title: str, body: list[str], defs: str = "") -> str:
    """Wrap ``body`` in an ``<svg>`` with a ``<title>`` (for accessibility) and a visible heading."""
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' {FONT} role='img'>",
        f"<title>{_esc(title)}</title>",
        f"<defs>{defs}</defs>" if defs else "",
        f"<rect width='{width:.0f}' height='{height:.0f}' fill='white'/>",
        _text(width / 2, 24, title, size=15, extra="font-weight='bold'"),
        *body,
        "</svg>",
    ]
    return "\n".join(part for part in parts if part)


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
    for v in (1.0, 0.0, -1.0):
        body.append(
            _text(x + 20, y + (1 - v) / 2 * height + 4, f"{v:+.0f}" if v else "0", size=11, anchor="start")
        )
    return defs, body


def coupling_heatmap(
    coupling: Sequence[Sequence[Any]] | Any,
    values: Sequence[str],
    title: str = "Coupling R",
    band: float | None = None,
) -> str:
    """Heatmap of the coupling matrix R (in ``values`` order) on a diverging −1..1 scale, values printed.

    With ``band`` (the half-width of the null band, e.g. 1.96/√(n − 1)), off-diagonal cells with
    |R| < band are within noise: drawn pale and hatched-free grey text, and a note says so.
    """
    n = max(1, len(values))
    left, top = 120.0, 130.0
    cell = max(14.0, min(40.0, (SIZE - left - 60) / n))
    width, height = left + n * cell + 60, max(SIZE, top + n * cell + 20)
    body: list[str] = []
    for i, row_value in enumerate(values):
        y = top + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, row_value, size=11, anchor="end"))
        cx = left + i * cell + cell / 2
        body.append(
            _text(
                cx,
                top - 6,
                row_value,
                size=11,
                anchor="start",
                extra=f"transform='rotate(-45 {cx:.1f} {top - 6:.1f})'",
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
            ink = "#9a9a9a" if muted else ("white" if r is not None and abs(r) > 0.6 else "#222")
            body.append(
                _text(
                    x + cell / 2,
                    y + cell / 2 + 3.5,
                    fixed(r),
                    size=max(8, min(11, int(cell / 3.2))),
                    extra=f"fill='{ink}'",
                )
            )
    defs, legend = _legend_bar(left + n * cell + 14, top, min(n * cell, 200.0))
    if band is not None:
        height += 24
        body.append(
            _text(
                left,
                top + n * cell + 18,
                f"pale: |R| < {band:.2f}, inside the 95 % band of noise",
                size=11,
                anchor="start",
                extra="fill='#666'",
            )
        )
    return _document(width, height, title, body + legend, defs)


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
    """Radar of VAT(u) with each value at its Schwartz-circle angle, on a concentric grid.

    A value's position is ``circle_index[value]`` (default: its position in ``values``) out of
    ``circle_size``; a missing VAT sits at the centre and its label says "n/a". ``null`` maps each value
    to its null 95th percentile: drawn as a dashed grey ring, so a spoke beyond it beats noise; tested
    ``hubs`` are labelled in bold.
    """
    index = circle_index if circle_index is not None else {v: i for i, v in enumerate(values)}
    placed = sorted((index[v], v) for v in values if v in index)
    cx, cy, radius = SIZE / 2, SIZE / 2 + 20, 150.0
    finite = [f for v in values if (f := as_finite(vat.get(v))) is not None]
    ring = {v: f for v in values if (f := as_finite((null or {}).get(v))) is not None}
    scale = max(finite + list(ring.values()) + [1e-9]) if finite or ring else 1.0
    body: list[str] = []
    for k in (1, 2, 3, 4):  # grid rings at quarters of the largest VAT
        body.append(
            f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='{radius * k / 4:.1f}' fill='none' stroke='#ddd'/>"
        )
        body.append(
            _text(
                cx + 3,
                cy - radius * k / 4 - 2,
                fixed(scale * k / 4),
                size=9,
                anchor="start",
                extra="fill='#888'",
            )
        )
    points: list[tuple[float, float]] = []
    ring_points: list[tuple[float, float]] = []
    for pos, v in placed:
        theta = 2 * math.pi * pos / circle_size
        ex, ey = _polar(cx, cy, radius, theta)
        body.append(f"<line x1='{cx:.1f}' y1='{cy:.1f}' x2='{ex:.1f}' y2='{ey:.1f}' stroke='#ddd'/>")
        lx, ly = _polar(cx, cy, radius + 22, theta)
        anchor = "middle" if abs(math.sin(theta)) < 0.3 else ("start" if math.sin(theta) > 0 else "end")
        bold = "font-weight='bold'" if v in hubs else ""
        body.append(_text(lx, ly + 4, v, size=11, anchor=anchor, extra=bold))
        f = as_finite(vat.get(v))
        body.append(_text(lx, ly + 17, fixed(f), size=9, anchor=anchor, extra="fill='#666'"))
        points.append(_polar(cx, cy, radius * (f or 0.0) / scale, theta))
        if v in ring:
            ring_points.append(_polar(cx, cy, radius * ring[v] / scale, theta))
    if ring_points:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in ring_points)
        body.append(
            f"<polygon class='null-ring' points='{coords}' fill='none' stroke='#777' stroke-width='1.5' stroke-dasharray='5 4'/>"
        )
        body.append(
            _text(
                SIZE / 2,
                SIZE + 32,
                "dashed: null 95th percentile of VAT(u) (columns permuted)",
                size=11,
                extra="fill='#666'",
            )
        )
    if points:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(
            f"<polygon points='{coords}' fill='{_MAIN}' fill-opacity='0.3' stroke='{_MAIN}' stroke-width='2'/>"
        )
    return _document(SIZE, SIZE + (48 if ring_points else 40), title, body)


def gnd_bars(
    gnd: Mapping[str, Any],
    target: str,
    title: str = "Gain-normalized deviation",
    intervals: Mapping[str, Any] | None = None,
    caveat: str | None = None,
) -> str:
    """Horizontal bars of GND(w) around a zero line; the target highlighted; missing shown as "n/a".

    ``intervals`` maps a value to its [lo, hi] (drawn as a whisker); ``caveat`` is printed in red under
    the bars (e.g. when the gain's interval spans 0 and GND cannot be read).
    """
    items = list(gnd.items())
    left, right, top, bar = 130.0, SIZE - 60.0, 50.0, 26.0
    finite = [abs(f) for _, x in items if (f := as_finite(x)) is not None]
    whiskers = {
        v: (lo, hi)
        for v, ci in (intervals or {}).items()
        if ci and (lo := as_finite(ci[0])) is not None and (hi := as_finite(ci[1])) is not None
    }
    # 15 % headroom so the number printed past the longest bar or whisker stays clear of the labels
    scale = 1.15 * max(
        finite + [abs(e) for pair in whiskers.values() for e in pair] + [1.0 if not intervals else 1e-9]
    )
    zero = (left + right) / 2
    half = (right - left) / 2
    body = [
        f"<line x1='{zero:.1f}' y1='{top - 6:.1f}' x2='{zero:.1f}' y2='{top + len(items) * bar:.1f}' stroke='#444'/>"
    ]
    for i, (value, x) in enumerate(items):
        y = top + i * bar
        is_target = value == target
        weight = "font-weight='bold'" if is_target else ""
        body.append(_text(left - 8, y + bar / 2 + 4, value, size=12, anchor="end", extra=weight))
        f = as_finite(x)
        if f is None:
            body.append(_text(zero + 6, y + bar / 2 + 4, NA, size=11, anchor="start", extra="fill='#888'"))
            continue
        length = half * abs(f) / scale
        x0 = zero if f >= 0 else zero - length
        colour = _ACCENT if is_target else _MAIN
        body.append(
            f"<rect x='{x0:.1f}' y='{y + 4:.1f}' width='{length:.1f}' height='{bar - 8:.1f}' fill='{colour}'/>"
        )
        reach = length
        if value in whiskers:
            lo, hi = (zero + half * e / scale for e in whiskers[value])
            mid = y + bar / 2
            body.append(
                f"<line class='interval' x1='{lo:.1f}' y1='{mid:.1f}' x2='{hi:.1f}' y2='{mid:.1f}' stroke='#222' stroke-width='1.5'/>"
                f"<line x1='{lo:.1f}' y1='{mid - 5:.1f}' x2='{lo:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>"
                f"<line x1='{hi:.1f}' y1='{mid - 5:.1f}' x2='{hi:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>"
            )
            reach = max(length, abs((hi if f >= 0 else lo) - zero))
        tx, anchor = (zero + reach + 4, "start") if f >= 0 else (zero - reach - 4, "end")
        body.append(_text(tx, y + bar / 2 + 4, fixed(f), size=10, anchor=anchor, extra=weight))
    height = max(SIZE, top + len(items) * bar + (74 if caveat else 50))
    note = f"target: {target}" + (" · whiskers: 95 % interval" if whiskers else " (GND = ±1 by definition)")
    body.append(_text(zero, top + len(items) * bar + 24, note, size=11))
    if caveat:
        body.append(_text(zero, top + len(items) * bar + 44, caveat, size=11, extra="fill='#b2182b'"))
    return _document(SIZE, height, title, body)


def shift_bars(
    mean_shift: Mapping[str, Any],
    intervals: Mapping[str, Any],
    target: str,
    title: str = "Mean shift by value",
) -> str:
    """Bars of the mean shift m(w) of every value with its 95 % bootstrap interval as a whisker."""
    return gnd_bars(mean_shift, target, title, intervals=intervals)


def gain_tax_chart(points: Sequence[Mapping[str, Any]], title: str, x_label: str, y_label: str) -> str:
    """Scatter of each entry's tax (x) against its gain (y), each with its interval as error bars.

    Each point is {label, x, x_ci: [lo, hi] | None, y, y_ci}; a point with a missing coordinate is
    listed as "n/a" under the chart.
    """
    left, right, top, bottom = 70.0, SIZE + 120 - 30.0, 50.0, SIZE - 90.0
    drawn = [p for p in points if as_finite(p.get("x")) is not None and as_finite(p.get("y")) is not None]

    def span(key: str) -> list[float]:
        out = []
        for p in drawn:
            out.append(float(p[key]))
            ci = p.get(f"{key}_ci") or [None, None]
            out += [f for f in (as_finite(ci[0]), as_finite(ci[1])) if f is not None]
        return out or [0.0, 1.0]

    xs, ys = span("x"), span("y")
    x_lo, x_hi = min(xs + [0.0]), max(xs + [0.0]) + 0.05
    y_lo, y_hi = min(ys + [0.0]) - 0.02, max(ys + [0.0]) + 0.02

    sx, sy = _linear_scales((x_lo, x_hi), (y_lo, y_hi), (left, right), (bottom, top))
    body = [
        *_axis_lines(left, right, top, bottom),
        f"<line x1='{left}' y1='{sy(0.0):.1f}' x2='{right}' y2='{sy(0.0):.1f}' stroke='#bbb' stroke-dasharray='3 3'/>",
        f"<line x1='{sx(0.0):.1f}' y1='{bottom}' x2='{sx(0.0):.1f}' y2='{top}' stroke='#bbb' stroke-dasharray='3 3'/>",
        _text((left + right) / 2, bottom + 38, x_label, size=12),
        _y_label(y_label, top, bottom),
    ]
    body += _tick_labels((x_lo, x_hi), (y_lo, y_hi), sx, sy, left, bottom)
    for p in drawn:
        x, y = float(p["x"]), float(p["y"])
        for key, horizontal in (("x_ci", True), ("y_ci", False)):
            ci = p.get(key) or [None, None]
            lo, hi = as_finite(ci[0]), as_finite(ci[1])
            if lo is None or hi is None:
                continue
            if horizontal:
                body.append(
                    f"<line class='interval' x1='{sx(lo):.1f}' y1='{sy(y):.1f}' x2='{sx(hi):.1f}' y2='{sy(y):.1f}' stroke='{_MAIN}'/>"
                )
            else:
                body.append(
                    f"<line class='interval' x1='{sx(x):.1f}' y1='{sy(lo):.1f}' x2='{sx(x):.1f}' y2='{sy(hi):.1f}' stroke='{_MAIN}'/>"
                )
        body.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='5' fill='{_MAIN}'/>")
        body.append(_text(sx(x) + 8, sy(y) - 7, p.get("label", ""), size=11, anchor="start"))
    missing = [str(p.get("label", "")) for p in points if p not in drawn]
    if missing:
        body.append(
            _text(
                left, SIZE - 40, f"{NA}: " + ", ".join(missing), size=11, anchor="start", extra="fill='#888'"
            )
        )
    body.append(
        _text(
            left,
            SIZE - 20,
            "bars: 95 % intervals · lower tax and higher gain are better",
            size=11,
            anchor="start",
            extra="fill='#666'",
        )
    )
    return _document(SIZE + 120, SIZE, title, body)


def _ticks(lo: float, hi: float) -> list[float]:
    """Five evenly spaced tick positions from ``lo`` to ``hi``."""
    return [lo + (hi - lo) * k / 4 for k in range(5)]


def pareto_plot(points: Sequence[Mapping[str, Any]], title: str = "Gain vs tax") -> str:
    """Scatter of on-target gain (y) against nVAT (x); Pareto-efficient points joined along the front.

    Each point is {label, gain, nvat, efficient}; points with a missing coordinate are listed as "n/a".
    """
    left, right, top, bottom = 70.0, SIZE - 30.0, 50.0, SIZE - 80.0
    drawn = [
        (p, g, t)
        for p in points
        if (g := as_finite(p.get("gain"))) is not None and (t := as_finite(p.get("nvat"))) is not None
    ]
    xs = [t for _, _, t in drawn] or [0.0, 1.0]
    ys = [g for _, g, _ in drawn] or [0.0, 1.0]
    x_lo, x_hi = min(xs + [0.0]), max(xs) * 1.1 or 1.0
    y_lo, y_hi = min(ys + [0.0]), max(ys + [0.0]) * 1.1 or 1.0

    sx, sy = _linear_scales((x_lo, x_hi), (y_lo, y_hi), (left, right), (bottom, top))
    body = [
        *_axis_lines(left, right, top, bottom),
        _text((left + right) / 2, bottom + 38, "nVAT (system tax)", size=12),
        _y_label("gain G", top, bottom),
    ]
    body += _tick_labels((x_lo, x_hi), (y_lo, y_hi), sx, sy, left, bottom)
    front = sorted((t, g) for p, g, t in drawn if p.get("efficient"))
    if len(front) > 1:
        coords = " ".join(f"{sx(t):.1f},{sy(g):.1f}" for t, g in front)
        body.append(f"<polyline points='{coords}' fill='none' stroke='{_ACCENT}' stroke-width='2'/>")
    for p, g, t in drawn:
        colour = _ACCENT if p.get("efficient") else _MAIN
        body.append(f"<circle cx='{sx(t):.1f}' cy='{sy(g):.1f}' r='5' fill='{colour}'/>")
        body.append(_text(sx(t) + 8, sy(g) - 6, p.get("label", ""), size=11, anchor="start"))
    missing = [str(p.get("label", "")) for p in points if all(p is not q for q, _, _ in drawn)]
    if missing:
        body.append(
            _text(
                left, SIZE - 20, f"{NA}: " + ", ".join(missing), size=11, anchor="start", extra="fill='#888'"
            )
        )
    body.append(
        _text(right, SIZE - 20, "orange: Pareto-efficient", size=11, anchor="end", extra=f"fill='{_ACCENT}'")
    )
    return _document(SIZE, SIZE, title, body)


def _linear_scales(
    xs: tuple[float, float], ys: tuple[float, float], px: tuple[float, float], py: tuple[float, float]
) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """Data → pixel maps for an x range onto ``px`` (left, right) and a y range onto ``py`` (bottom, top)."""

    def sx(t: float) -> float:
        return px[0] + (t - xs[0]) / ((xs[1] - xs[0]) or 1.0) * (px[1] - px[0])

    def sy(g: float) -> float:
        return py[0] - (g - ys[0]) / ((ys[1] - ys[0]) or 1.0) * (py[0] - py[1])

    return sx, sy


def _axis_lines(left: float, right: float, top: float, bottom: float) -> list[str]:
    """The x axis along the bottom and the y axis up the left side."""
    return [
        f"<line x1='{left}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='#444'/>",
        f"<line x1='{left}' y1='{bottom}' x2='{left}' y2='{top}' stroke='#444'/>",
    ]


def _y_label(label: str, top: float, bottom: float) -> str:
    """The y axis title, turned to read upwards along the left edge."""
    middle = (top + bottom) / 2
    return _text(18, middle, label, size=12, extra=f"transform='rotate(-90 18 {middle:.1f})'")


def _tick_labels(
    xs: tuple[float, float],
    ys: tuple[float, float],
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    left: float,
    bottom: float,
) -> list[str]:
    """Two-decimal tick labels under the x axis and left of the y axis."""
    out = [_text(sx(t), bottom + 16, f"{t:.2f}", size=10) for t in _ticks(*xs)]
    return out + [_text(left - 6, sy(g) + 3, f"{g:.2f}", size=10, anchor="end") for g in _ticks(*ys)]
