"""`vat report`'s file formats (CSV, Markdown, LaTeX, JSON) and the SVG plots written beside them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.metrics.row import ReportRow
from runner.report.rows import family_members
from runner.report.signal import (
    coupling_band,
    family_lines,
    finite,
    gain_spans_zero,
    interval_text,
    null_cell,
    null_of,
    num,
    persistence_text,
    signal_cell,
    tested_hubs,
    within_noise,
)

REPORT_FORMATS = ("table", "json", "csv", "markdown", "latex", "results", "eee")
"""`vat report format=`: terminal tables, JSON, tables a paper can paste, the versioned results document,
or its Every Eval Ever records (runner.report.eee)."""

SUMMARY_FIELDS: tuple[tuple[str, Any], ...] = (
    ("model", lambda r: r["display_name"]),
    ("strategy", lambda r: r["label"] if r["step"] is not None else r["strategy"]),
    ("target", lambda r: r["target"]),
    ("direction", lambda r: r["direction"]),
    ("scenes", lambda r: r["n_scenes"]),
    ("gain", lambda r: num(r["gain"], 3)),
    ("gain 95% CI", lambda r: interval_text(r["gain_ci"]) or "–"),
    ("nVAT", lambda r: num(r["nvat"], 3, signed=False)),
    ("nVAT null (p)", lambda r: null_cell(r, "nvat")),
    ("nVAT corrected", lambda r: num(r.get("nvat_corrected"), 3)),
    ("corrected 95% CI", lambda r: interval_text(r.get("nvat_ci")) or "–"),
    ("tax", signal_cell),
    ("Gini", lambda r: num(r["gini"], 3, signed=False)),
    ("Gini null (p)", lambda r: null_cell(r, "gini")),
    ("nVAT ±std (paper)", lambda r: num(r.get("nvat_std"), 3, signed=False)),
    ("hubs", tested_hubs),
    ("GND caveat", lambda r: "gain CI spans 0" if gain_spans_zero(r) else ""),
)


def summary_table(rows: Sequence[ReportRow]) -> tuple[list[str], list[list[str]]]:
    """The summary as (header, cells): one line per condition pair."""
    return [name for name, _ in SUMMARY_FIELDS], [[str(cell(r)) for _, cell in SUMMARY_FIELDS] for r in rows]


def family_table(rows: Sequence[ReportRow], fam: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One family in the Table-2 layout as (header, cells)."""
    members = family_members(rows, fam)
    header = ["model × target", *[m["label"] for m in members]]
    return header, [
        [f"{fam['target']} · {name}", *[cell(m) for m in members]] for name, cell in family_lines(fam)
    ]


def family_title(fam: dict[str, Any]) -> str:
    """The caption of a family table: model, condition and scene selection."""
    return f"{fam['model']} · {fam['family']} · {fam['target']} {fam['direction']} · {fam['scene_selection']}"


def render_table(header: Sequence[str], cells: Sequence[Sequence[str]], fmt: str, caption: str = "") -> str:
    """One table as CSV, GitHub Markdown or a LaTeX ``tabular`` (booktabs), ready to paste."""
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
        return buf.getvalue()
    if fmt == "markdown":
        lines = [f"**{_md(caption)}**", ""] if caption else []
        lines.append("| " + " | ".join(_md(h) for h in header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        spec = "l" + "r" * (len(header) - 1)
        lines = ["\\begin{table}[t]", "\\centering", "\\small", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        lines.append(" & ".join(_tex(h) for h in header) + " \\\\")
        lines.append("\\midrule")
        lines += [" & ".join(_tex(c) for c in row) + " \\\\" for row in cells]
        lines += ["\\bottomrule", "\\end{tabular}"]
        if caption:
            lines.append(f"\\caption{{{_tex(caption)}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(REPORT_FORMATS)}")


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "–": "--",
    "−": "$-$",
    "·": r"$\cdot$",
}


def _tex(text: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def paper_tables(rows: Sequence[ReportRow], fams: Sequence[dict[str, Any]], fmt: str) -> str:
    """Every table of a report in one format: the summary, then each family.

    CSV holds the summary only, since one CSV file holds one table; the families are in the JSON,
    Markdown and LaTeX output.
    """
    header, cells = summary_table(rows)
    parts = [render_table(header, cells, fmt, "VAT summary (one row per condition pair)")]
    if fmt != "csv":
        for fam in fams:
            caption = f"Table 2 layout · {family_title(fam)} · hub persistence ({fam['hub_basis']}): {persistence_text(fam)}"
            parts.append(render_table(*family_table(rows, fam), fmt, caption))
    return "\n".join(parts)


def report_json(
    rows: Sequence[ReportRow], fams: Sequence[dict[str, Any]], filters: dict[str, Sequence[str]]
) -> dict[str, Any]:
    """`vat report format=json`: rows, families and the filters that selected them.

    Every row is METRICS.md §7's dict; every family carries its Pareto flags and hub persistence.
    """
    return {
        "filters": {k: list(v) for k, v in filters.items() if v},
        "rows": list(rows),
        "families": list(fams),
    }


def write_plots(
    rows: Sequence[ReportRow], fams: Sequence[dict[str, Any]], values: Sequence[str], folder: Path
) -> list[Path]:
    """Write every SVG plot of a report into ``folder``.

    Each row's (:func:`row_plots`), each family's Pareto plot, and per model and strategy run on
    several targets the target × value grid.
    """
    from runner.report import plots

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rows:
        stem = f"{_slug(r['model'])}__{r['strategy']}{'' if r['step'] is None else '_' + str(r['step'])}__{r['target']}_{r['direction']}"
        title = f"{r['display_name']} · {r['label']} · {r['target']} {r['direction']}"
        for name, svg in row_plots(r, values, title).items():
            path = folder / f"{stem}__{name}.svg"
            path.write_text(svg)
            written.append(path)
    for fam in fams:
        pts = [
            {
                "label": r["label"],
                "gain": r["gain"],
                "nvat": r["nvat"],
                "efficient": fam["pareto"].get(r["label"], False),
                "gain_ci": r.get("gain_ci"),
                "null": [(null_of(r, "nvat") or {}).get(k) for k in ("mean", "q95")],
                "within_noise": within_noise(r, "nvat") is True,
            }
            for r in family_members(rows, fam)
        ]
        selection = _slug(fam["scene_selection"].replace(" scenes #", "sc-"))
        path = (
            folder
            / f"{_slug(fam['model'])}__{fam['family']}__{fam['target']}_{fam['direction']}__{selection}__pareto.svg"
        )
        path.write_text(plots.pareto_plot(pts, f"Gain vs nVAT · {family_title(fam)}"))
        written.append(path)
    from runner.report.figures.panels import panel_groups

    for group in panel_groups(rows, values):  # one model and strategy run on several targets
        first = group[0]
        step = "" if first["step"] is None else "_" + str(first["step"])
        path = folder / f"{_slug(first['model'])}__{first['strategy']}{step}__targets.svg"
        title = f"Mean shift by target and value · {first['display_name']} · {first['label']}"
        path.write_text(plots.target_value_grid(group, values, title))
        written.append(path)
    return written


def row_plots(
    row: ReportRow, values: Sequence[str], title: str, circle_index: dict[str, int] | None = None
) -> dict[str, str]:
    """The four figures of one row, each drawn against its noise.

    Coupling (cells inside the null band muted), VAT(u) radar (null ring), mean shifts (95 %
    intervals) and GND (a caveat when the gain's interval spans 0). Shared by `vat report
    report.plots=true` and the site's entry pages.
    """
    from runner.report import plots

    values = list(values)
    null_ring = {v: (null_of(row, "vat", v) or {}).get("q95") for v in values}
    hubs = (row.get("hubs") or []) if "hub_test" in row else []  # only tested hubs are drawn bold
    return {
        "coupling": plots.coupling_heatmap(
            row.get("coupling") or [[None] * len(values)] * len(values),
            values,
            f"Coupling R · {title}",
            band=coupling_band(row.get("n_scenes")),
        ),
        "radar": plots.circumplex_radar(
            row.get("vat") or {},
            values,
            f"VAT(u) on the circle · {title}",
            circle_index=circle_index,
            null=null_ring if any(x is not None for x in null_ring.values()) else None,
            hubs=hubs,
        ),
        "shift": plots.shift_bars(
            row.get("mean_shift") or {},
            row.get("mean_shift_ci") or {},
            row["target"],
            f"Mean shift · {title}",
        ),
        "gnd": plots.gnd_bars(
            row.get("gnd") or {},
            row["target"],
            f"GND · {title}",
            intervals=gnd_intervals(row),
            caveat="gain's 95 % interval spans 0: GND is not interpretable" if gain_spans_zero(row) else None,
        ),
    }


def gnd_intervals(row: ReportRow) -> dict[str, list[float]]:
    """GND(w)'s whiskers: the bootstrap interval of m(w) divided by |G_raw| (GND = m(w)/|G_raw|).

    The gain's own uncertainty is not propagated (the figure's caveat covers a gain that spans 0).
    """
    g = abs(finite(row.get("gain_raw")) or 0.0)
    out: dict[str, list[float]] = {}
    for value, ci in (row.get("mean_shift_ci") or {}).items():
        lo, hi = (finite(ci[0]), finite(ci[1])) if ci and len(ci) == 2 else (None, None)
        if g > 0 and lo is not None and hi is not None:
            out[value] = [lo / g, hi / g]
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]
