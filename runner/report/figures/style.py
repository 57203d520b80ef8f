"""Print sizes, the rc style and the colours every paper figure shares (runner.report.figures)."""

from __future__ import annotations

from typing import Any

SINGLE = 3.3
"""Single-column width, inches (ACL, NeurIPS, IEEE two-column pages)."""
DOUBLE = 6.9
"""Double-column (full-page) width, inches."""
DPI = 300
STYLE: dict[Any, Any] = {  # Any keys: matplotlib types rc names as a Literal of every setting
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "pdf.fonttype": 42,  # TrueType in the PDF: editable text, accepted by every publisher's checker
    "savefig.dpi": DPI,
}
MAIN = "#1f78b4"
ACCENT = "#d95f02"
GREY = "#9e9e9e"
