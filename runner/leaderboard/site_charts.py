"""The leaderboard site's SVG figures: the Models view's gain-against-tax chart and each condition's plots.

Drawn by :mod:`runner.report.plots` (scalable SVG, round ticks, intervals, noise drawn pale or hollow);
this module picks what each page shows and labels it.
"""

from __future__ import annotations

from typing import Any, cast

CONDITION_FIGURES = {
    "coupling": "Coupling heatmap (pale cells: inside the null band)",
    "radar": "Circumplex radar of VAT(u) with its null ring",
    "shift": "Mean shift per value with 95 % intervals",
    "gnd": "Gain-normalized deviation with 95 % intervals",
}
"""Each condition's figures, in page order, with the label a screen reader announces."""


def gain_tax_chart(doc: dict[str, Any]) -> str:
    """The Models view's chart: each entry's mean gain against its tax, both with their intervals."""
    from runner.report import plots

    board = doc.get("board", [])
    corrected = any(b.get("tax_basis") == "nvat_corrected" for b in board)
    basis = "nvat_corrected" if corrected else "nvat"
    x_label = (
        "tax: bias-corrected nVAT, mean over conditions" if corrected else "tax: nVAT, mean over conditions"
    )
    name = lambda b: doc["entries"].get(b["entry"], {}).get("display_name", b["entry"])  # noqa: E731
    # one scale: entries with only the raw nVAT are not drawn next to corrected ones, they are listed
    points = [
        {
            "label": name(b),
            "x": b.get("tax"),
            "x_ci": b.get("tax_ci"),
            "y": b.get("gain"),
            "y_ci": b.get("gain_ci"),
        }
        for b in board
        if b.get("tax_basis") == basis
    ]
    points += [
        {"label": f"{name(b)} (no null)", "x": None, "y": None} for b in board if b.get("tax_basis") != basis
    ]
    return plots.gain_tax_chart(points, "Gain against tax, one point per entry", x_label, "gain (directed)")


def condition_figures(
    row: dict[str, Any], values: list[str], circle: dict[str, int]
) -> list[tuple[str, str]]:
    """(label, SVG) of each figure of one condition: heatmap, radar, mean shifts and GND."""
    from runner.metrics.row import ReportRow
    from runner.report.tables import row_plots

    svgs = row_plots(cast(ReportRow, row), values, row["condition"], circle)  # a report row plus site keys
    return [(label, svgs[key]) for key, label in CONDITION_FIGURES.items()]
