"""What in a row is signal and what is noise, and the text of the cells every report format shares.

A tax statistic is "within noise" when its permutation null covers it (METRICS.md §8); a gain interval
that spans zero gets a caveat. The terminal, Markdown, LaTeX, CSV and the site read these, so a verdict
is worded once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from runner.metrics.row import ReportRow

TAX_LABELS = {"nvat": "nVAT", "rho_rms": "rho_rms", "gini": "Gini"}


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (not a bool), else None."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) else None


def null_of(row: ReportRow, key: str, value: str | None = None) -> dict[str, Any] | None:
    """The permutation null {mean, q95, p} of a tax statistic (of VAT(``value``) when ``value`` is given)."""
    null = row.get("null") or {}
    entry = (null.get("vat") or {}).get(value) if value is not None else null.get(key)
    return entry if isinstance(entry, dict) else None


def within_noise(row: ReportRow, key: str) -> bool | None:
    """True when the statistic cannot be told from its null, False when it can, None when unknown.

    The row's own ``signal`` verdict wins; then a ``<key>_within_noise`` flag; then the null's p-value
    against the alpha of the row's hub test (0.05 when none).
    """
    signal = row.get("signal") or {}
    if isinstance(signal.get(key), bool):
        return not signal[key]
    if f"{key}_within_noise" in (row.get("flags") or []):
        return True
    null = null_of(row, key)
    p = finite((null or {}).get("p"))
    if p is None:
        return None
    return p >= float((row.get("hub_test") or {}).get("alpha") or 0.05)


def tax_text(row: ReportRow, key: str, digits: int = 2) -> str:
    """A tax number with its null, its bias-corrected estimate and interval, and its verdict.

    E.g. ``nVAT 0.52, null 0.47 (p 0.21), corrected +0.05 [0.00, 0.20] · within noise · needs ~180
    scenes``. The ``<key>_ci`` interval belongs to the corrected estimate (METRICS.md §8), so it is
    printed after it; a row without a null says so instead of showing a bare number.
    """
    fields: Mapping[str, Any] = row  # keys built from `key`: read as a plain mapping
    text = f"{TAX_LABELS.get(key, key)} {num(finite(fields.get(key)), digits, signed=False)}"
    null = null_of(row, key)
    if null is None:
        return text + " (no null in this row)"
    text += f", null {num(null.get('mean'), digits, signed=False)} (p {num(null.get('p'), 2, signed=False)})"
    corrected = finite(fields.get(f"{key}_corrected"))
    if corrected is not None:
        text += f", corrected {corrected:+.{digits}f}"
    ci = fields.get(f"{key}_ci")
    if ci and finite(ci[0]) is not None and finite(ci[1]) is not None:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    if within_noise(row, key):
        text += " · within noise"
        needed = (row.get("scenes_needed") or {}).get(key)
        if needed:
            text += f" · needs ~{int(needed)} scenes"
    return text


def gain_spans_zero(row: ReportRow) -> bool:
    """True when the gain's interval contains 0: GND and amplification divide by a gain that may be 0."""
    ci = row.get("gain_ci") or [None, None]
    lo, hi = finite(ci[0]), finite(ci[1])
    return lo is not None and hi is not None and lo <= 0.0 <= hi


GAIN_CAVEAT = (
    "the gain's 95 % interval spans 0, so GND and amplification (shift ÷ gain) are not interpretable"
)


def coupling_band(n_scenes: Any) -> float | None:
    """Half-width of the null band of one coupling R[u, w] over n scenes: 1.96/√(n − 1).

    Under no coupling a Spearman correlation over n scenes has sd ≈ 1/√(n − 1) (METRICS.md §5b), so
    |R| below this is within the 95 % band of noise and plots mute it.
    """
    n = finite(n_scenes)
    return 1.96 / float(np.sqrt(n - 1)) if n is not None and n > 1 else None


def tested_hubs(row: ReportRow) -> str:
    """The hubs as a report shows them.

    The tested ones, 'none (tested)' when the test found none, or an old row's descriptive top-k
    (labelled as untested).
    """
    hubs = list(row.get("hubs") or [])
    if "hub_test" in row:
        return ", ".join(hubs) if hubs else "none (tested)"
    return (", ".join(hubs) + " (top-k, untested)") if hubs else "–"


def num(x: Any, digits: int = 3, signed: bool = True) -> str:
    """A number as a table cell: ``digits`` decimals, signed by default; "–" for a missing one."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def interval_text(ci: Any) -> str:
    """A 95 % interval as "[+0.01, +0.20]"; empty when the row has none."""
    if not ci or ci[0] is None:
        return ""
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def signal_cell(row: ReportRow) -> str:
    """'signal', 'within noise', or 'no null' (a row from before the permutation null)."""
    verdict = within_noise(row, "nvat")
    return "no null" if verdict is None else ("within noise" if verdict else "signal")


def rating_text(row: ReportRow) -> str:
    """Which rating both conditions of the pair used, e.g. 'rating: expected (fallback 3 %)'."""
    share = finite(row.get("rating_fallback_share"))
    return f"rating: {row.get('rating_source') or '–'}" + (
        f" (fallback {share:.0%})" if share is not None else ""
    )


def persistence_text(fam: dict[str, Any]) -> str:
    """Hub persistence of a family as 'security 1.00, power 0.50' ('–' when no value was ever a hub)."""
    return ", ".join(f"{v} {p:.2f}" for v, p in fam["hub_persistence"].items() if p > 0) or "–"


def family_lines(fam: dict[str, Any]) -> list[tuple[str, Any]]:
    """(row name, cell function) of a Table-2 layout; shared by the terminal, Markdown, LaTeX and CSV."""
    return [
        ("Gain", lambda m: num(m["gain"], 3)),
        ("nVAT", lambda m: num(m["nvat"], 3, signed=False)),
        ("nVAT null (p)", lambda m: null_cell(m, "nvat")),
        ("nVAT corrected", lambda m: num(m.get("nvat_corrected"), 3)),
        ("corrected 95% CI", lambda m: interval_text(m.get("nvat_ci")) or "–"),
        ("Gini", lambda m: num(m["gini"], 3, signed=False)),
        ("±std (paper)", lambda m: num(m.get("nvat_std"), 3, signed=False)),
        ("Pareto-efficient", lambda m: "yes" if fam["pareto"].get(m["label"]) else "no"),
    ]


def null_cell(row: ReportRow, key: str) -> str:
    """The null mean of ``key`` and its p-value, "0.120 (0.43)"; "–" without a null."""
    null = null_of(row, key)
    return (
        f"{num(null.get('mean'), 3, signed=False)} ({num(null.get('p'), 2, signed=False)})" if null else "–"
    )
