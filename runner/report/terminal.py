"""`vat report`'s terminal tables: the summary, one detail block per row and the Table-2 layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.metrics.row import ReportRow
from runner.report.rows import family_members, micro_text
from runner.report.signal import (
    GAIN_CAVEAT,
    family_lines,
    gain_spans_zero,
    interval_text,
    null_of,
    num,
    persistence_text,
    rating_text,
    signal_cell,
    tax_text,
    tested_hubs,
)


def print_tables(rows: Sequence[ReportRow], fams: Sequence[dict[str, Any]], values: Sequence[str]) -> None:
    """Rich tables: a summary per condition pair, per-value detail, and Table-2-shaped families."""
    from rich.table import Table

    from runner.core.display import escape, out

    summary = Table(
        title="VAT summary (one row per model × strategy × target × direction)", title_justify="left"
    )
    for col in (
        "model",
        "strategy",
        "target",
        "dir",
        "gain [95% CI]",
        "nVAT, null (p), corrected [95% CI]",
        "tax",
        "Gini, null (p)",
        "±std (paper)",
        "hubs",
        "coverage",
        "flags",
    ):
        summary.add_column(col, overflow="fold")
    for r in rows:
        cov = r["coverage"]
        summary.add_row(
            escape(r["display_name"]),
            r["label"] if r["step"] is not None else r["strategy"],
            r["target"],
            "+" if r["direction"] == "reinforce" else "−",
            f"{num(r['gain'])} {interval_text(r['gain_ci'])}",
            tax_text(r, "nvat").removeprefix("nVAT "),
            signal_cell(r),
            tax_text(r, "gini").removeprefix("Gini "),
            num(r.get("nvat_std"), signed=False),
            escape(tested_hubs(r)),
            f"{cov.get('parsed', 0)}/{cov.get('planned', 0)}",
            ", ".join(r["flags"]) or "",
        )
    out.print(summary)
    for r in rows:
        _print_detail(r, values)
    for fam in fams:
        _print_family(rows, fam)


def _print_detail(r: ReportRow, values: Sequence[str]) -> None:
    """Per-value detail of one row: shift with its interval, GND, VAT(u) against its null, amplification."""
    from rich.table import Table

    from runner.core.display import escape, out

    caveat = gain_spans_zero(r)
    caption = [f"* {GAIN_CAVEAT}" if caveat else "", micro_text(r) or ""]
    detail = Table(
        title=f"{escape(r['display_name'])} · {r['label']} · {r['target']} {r['direction']} "
        f"· {r['n_scenes']} scenes · {rating_text(r)}",
        title_justify="left",
        caption="\n".join(c for c in caption if c) or None,
        caption_justify="left",
    )
    mark = "*" if caveat else ""
    for col in (
        "value",
        "mean shift [95% CI]",
        f"GND{mark}",
        "VAT(u)",
        "null q95 (p)",
        f"amplification{mark}",
    ):
        detail.add_column(col, justify="right" if col != "value" else "left")
    for v in values:
        name = f"[bold]{v}[/bold] (target)" if v == r["target"] else v
        null = null_of(r, "vat", v)
        detail.add_row(
            name,
            f"{num(r['mean_shift'][v])} {interval_text(r['mean_shift_ci'][v])}",
            num(r["gnd"][v], 2),
            num(r["vat"][v], 3, signed=False),
            f"{num(null.get('q95'), 3, signed=False)} ({num(null.get('p'), 2, signed=False)})"
            if null
            else "–",
            num(r["amplification"][v], 2, signed=False),
        )
    out.print(detail)


def _print_family(rows: Sequence[ReportRow], fam: dict[str, Any]) -> None:
    """One family in the paper's Table-2 layout, with Pareto efficiency and hub persistence."""
    from rich.table import Table

    from runner.core.display import escape, out

    members = family_members(rows, fam)
    t2 = Table(
        title=f"Table 2 layout · {escape(fam['model'])} · {fam['target']} {fam['direction']} · {fam['scene_selection']}",
        title_justify="left",
    )
    t2.add_column("model × target")
    for m in members:
        t2.add_column(m["label"], justify="right")
    for name, cell in family_lines(fam):
        t2.add_row(f"{fam['target']} · {name}", *[cell(m) for m in members])
    out.print(t2)
    out.print(
        f"hub persistence ({fam['hub_basis']}): {persistence_text(fam)} · "
        f"profile stability (Kendall τ_b): {num(fam['profile_stability'], 2)}"
    )
