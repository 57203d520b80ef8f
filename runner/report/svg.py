"""SVG primitives shared by the report's and the site's figures: escaping, text, round ticks, labels.

No plotting library: :mod:`runner.report.plots` composes these into whole figures. A document scales to
its container (``width='100%'`` and a ``viewBox``; the height follows the aspect ratio), tick values are
"nice" numbers (1, 2 or 5 × 10^k steps), long labels are wrapped or shortened with their full text kept
in a ``<title>``, and point labels are placed where they do not cover one another.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

FONT = "font-family='Helvetica, Arial, sans-serif'"
NA = "n/a"
MUTED = "#9a9a9a"
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def esc(text: object) -> str:
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


def interval(ci: Any) -> tuple[float, float] | None:
    """A [lo, hi] pair of finite numbers as a tuple, or None when the row has no usable interval."""
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return None
    lo, hi = as_finite(ci[0]), as_finite(ci[1])
    return None if lo is None or hi is None else (min(lo, hi), max(lo, hi))


def text_width(text: object, size: float) -> float:
    """Estimated width in px of ``text`` at ``size`` px in Helvetica (0.56 em a character on average)."""
    return 0.56 * size * len(str(text))


def text(x: float, y: float, s: object, size: float = 12, anchor: str = "middle", extra: str = "") -> str:
    """One escaped ``<text>`` element."""
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size:g}' text-anchor='{anchor}' {extra}>{esc(s)}</text>"
    )


def wrap(label: object, max_chars: int) -> list[str]:
    """``label`` cut into lines of at most ``max_chars``, after a space, '_' or '-' where one is near.

    Joined back together the lines give the label again (the break characters stay at line ends).
    """
    rest, lines = str(label), []
    while len(rest) > max_chars:
        cut = max((rest.rfind(c, 0, max_chars) for c in " _-"), default=-1)
        cut = cut + 1 if cut >= max_chars // 3 else max_chars
        lines.append(rest[:cut])
        rest = rest[cut:]
    return [*lines, rest] if rest or not lines else lines


def text_lines(
    x: float, y: float, lines: Sequence[str], size: float, anchor: str = "middle", extra: str = ""
) -> str:
    """A ``<text>`` of several lines (``<tspan>``s), its first baseline at ``y``."""
    if len(lines) == 1:
        return text(x, y, lines[0], size, anchor, extra)
    spans = "".join(
        f"<tspan x='{x:.1f}' dy='{0 if i == 0 else 1.15 * size:.1f}'>{esc(line)}</tspan>"
        for i, line in enumerate(lines)
    )
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size:g}' text-anchor='{anchor}' {extra}>{spans}</text>"


def label_lines(label: object, max_chars: int, lines: int = 2) -> tuple[list[str], str]:
    """``label`` wrapped to at most ``lines`` lines of ``max_chars``; cut with "…" beyond that.

    Returns the lines and a ``<title>`` with the full text when the label was cut (else "").
    """
    short, full = shortened(label, max_chars * lines)
    out = wrap(short, max_chars)
    while len(out) > lines:  # a break point left short lines: cut once more
        short, full = shortened(label, len(short) - (len(out) - lines) * max_chars // 2 - 1)
        out = wrap(short, max_chars)
    return out, full


def shortened(label: object, max_chars: int) -> tuple[str, str]:
    """The label cut to ``max_chars`` with an ellipsis, and a ``<title>`` with the full text when cut."""
    s = str(label)
    if len(s) <= max_chars:
        return s, ""
    return s[: max_chars - 1] + "…", f"<title>{esc(s)}</title>"


def document(width: float, height: float, title: str, body: list[str], defs: str = "") -> str:
    """Wrap ``body`` in an ``<svg>`` that scales to its container, with a ``<title>`` and a heading.

    ``width='100%'`` and the ``viewBox`` make the figure as wide as the page or cell that holds it; the
    height follows the aspect ratio, so nothing is drawn at a fixed pixel size.
    """
    heading = wrap(title, max(20, int(width / text_width("x", 15))))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {width:.0f} {height:.0f}' "
        f"preserveAspectRatio='xMidYMid meet' {FONT} role='img'>",
        f"<title>{esc(title)}</title>",
        f"<defs>{defs}</defs>" if defs else "",
        f"<rect width='{width:.0f}' height='{height:.0f}' fill='white'/>",
        text_lines(width / 2, 24, heading, 15, extra="font-weight='bold'"),
        *body,
        "</svg>",
    ]
    return "\n".join(part for part in parts if part)


def heading_height(title: str, width: float) -> float:
    """Extra vertical room a title needs beyond its first line (it wraps on narrow figures)."""
    lines = len(wrap(title, max(20, int(width / text_width("x", 15)))))
    return 17.0 * (lines - 1)


# ---------------------------------------------------------------- scales and ticks


def nice_step(span: float, count: int = 5, at_most: bool = False) -> float:
    """The 1, 2 or 5 × 10^k step that cuts ``span`` into about ``count`` intervals.

    The step whose count of intervals is nearest ``count``; with ``at_most``, the smallest step that
    makes no more than ``count`` (a radar's rings).
    """
    if not math.isfinite(span) or span <= 0:
        return 1.0
    exp = math.floor(math.log10(span / max(1, count)))
    steps = [m * 10.0**e for e in (exp - 1, exp, exp + 1) for m in (1, 2, 5)]
    if at_most:
        return min(s for s in steps if span / s <= count * (1 + 1e-9))
    return min(steps, key=lambda s: (abs(span / s - count), s))


def decimals(step: float) -> int:
    """Decimals a tick label needs so that ticks ``step`` apart read distinctly (0.05 → 2, 5 → 0)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def tick_text(value: float, step: float) -> str:
    """A tick label with just the decimals its step needs; never "-0"."""
    out = f"{value:.{decimals(step)}f}"
    return out[1:] if out.startswith("-") and float(out) == 0 else out


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], float]:
    """Tick values inside [lo, hi] at multiples of a 1-2-5 step, and that step."""
    if hi < lo:
        lo, hi = hi, lo
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, decimals(step) + 2) for k in range(first, last + 1)], step


def nice_ceiling(x: float, count: int = 5) -> tuple[float, float]:
    """A round top ≥ ``x`` for a scale from 0, and the 1-2-5 step of its rings or gridlines."""
    if x <= 0 or not math.isfinite(x):
        return 1.0, 0.25
    step = nice_step(x, count, at_most=True)
    return math.ceil(x / step - 1e-9) * step, step


def padded(values: Sequence[float], share: float = 0.08, minimum: float = 0.05) -> tuple[float, float]:
    """The range of ``values`` with ``share`` of its width added each side: the axis fits the data.

    A single value (or identical ones) gets ± ``minimum`` (or 10 % of its size) so it is not on an edge.
    """
    lo, hi = min(values), max(values)
    pad = (hi - lo) * share if hi > lo else max(minimum, abs(lo) * 0.1)
    return lo - pad, hi + pad


def linear(domain: tuple[float, float], pixels: tuple[float, float]) -> Callable[[float], float]:
    """Data → pixel map of ``domain`` (lo, hi) onto ``pixels`` (where lo goes, where hi goes)."""
    width = (domain[1] - domain[0]) or 1.0

    def scale(v: float) -> float:
        return pixels[0] + (v - domain[0]) / width * (pixels[1] - pixels[0])

    return scale


# ---------------------------------------------------------------- placing point labels


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(
    x: float, y: float, label: str, size: float, taken: list[Box], bounds: Box
) -> tuple[float, float, str]:
    """Where to write a point's label: (x, y, anchor) clear of ``taken`` boxes and inside ``bounds``.

    Tries right-above, right-below, left-above, left-below, then further out; the chosen box is added
    to ``taken`` so the next label avoids it. The point's own marker is in ``taken`` already.
    """
    w, h = text_width(label, size), size
    tries = []
    for dy in (-7.0, 7.0 + h, -7.0 - h, 7.0 + 2 * h, -7.0 - 2 * h):
        tries += [(x + 8, y + dy, "start"), (x - 8, y + dy, "end")]
    best = tries[0]
    for tx, ty, anchor in tries:
        x0 = tx if anchor == "start" else tx - w
        box = (x0, ty - h, x0 + w, ty + 2)
        inside = box[0] >= bounds[0] and box[2] <= bounds[2] and box[1] >= bounds[1] and box[3] <= bounds[3]
        if inside and not any(_overlaps(box, t) for t in taken):
            taken.append(box)
            return tx, ty, anchor
    tx, ty, anchor = best
    if x + 8 + w > bounds[2]:  # nothing is clear: at least stay on the canvas
        tx, anchor = x - 8, "end"
    x0 = tx if anchor == "start" else tx - w
    taken.append((x0, ty - h, x0 + w, ty + 2))
    return tx, ty, anchor
