"""Stage 5b, report: the front door of `vat report`'s building blocks.

The report is built in four modules, one job each: :mod:`~runner.report.rows` (stored judgments → one
metrics row per condition pair, and families), :mod:`~runner.report.signal` (what is signal and the
shared cell text), :mod:`~runner.report.terminal` (the terminal tables) and
:mod:`~runner.report.formats` (CSV, Markdown, LaTeX, JSON and the plots). Callers may import from here
or from the module itself.
"""

from __future__ import annotations

from runner.report.formats import (
    REPORT_FORMATS,
    SUMMARY_FIELDS,
    family_table,
    family_title,
    paper_tables,
    render_table,
    report_json,
    row_plots,
    summary_table,
    write_plots,
)
from runner.report.rows import (
    EMBEDDED_NOTE,
    FILTER_KEYS,
    MOCK_NOTE,
    SIMULATED_NOTE,
    build_rows,
    families,
    family_members,
    family_of,
    filter_rows,
    micro_text,
    model_caveat,
    no_rows_message,
    selection_key,
    stored_models,
)
from runner.report.signal import (
    GAIN_CAVEAT,
    TAX_LABELS,
    coupling_band,
    family_lines,
    finite,
    gain_spans_zero,
    interval_text,
    null_cell,
    null_of,
    num,
    persistence_text,
    rating_text,
    signal_cell,
    tax_text,
    tested_hubs,
    within_noise,
)
from runner.report.terminal import (
    print_tables,
)

__all__ = [
    "EMBEDDED_NOTE",
    "FILTER_KEYS",
    "GAIN_CAVEAT",
    "MOCK_NOTE",
    "REPORT_FORMATS",
    "SIMULATED_NOTE",
    "SUMMARY_FIELDS",
    "TAX_LABELS",
    "build_rows",
    "coupling_band",
    "families",
    "family_lines",
    "family_members",
    "family_of",
    "family_table",
    "family_title",
    "filter_rows",
    "finite",
    "gain_spans_zero",
    "interval_text",
    "micro_text",
    "model_caveat",
    "no_rows_message",
    "null_cell",
    "null_of",
    "num",
    "paper_tables",
    "persistence_text",
    "print_tables",
    "rating_text",
    "render_table",
    "report_json",
    "row_plots",
    "selection_key",
    "signal_cell",
    "stored_models",
    "summary_table",
    "tax_text",
    "tested_hubs",
    "within_noise",
    "write_plots",
]
