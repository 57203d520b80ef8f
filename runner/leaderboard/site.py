"""``vat leaderboard build``: the static leaderboard site, from verified bundles and the local store.

One folder that works from ``file://`` with no server and no network: HTML pages, one CSS and one JS
file (relative links), SVG plots inline, and the data as a versioned JSON document. Chromium refuses
``fetch`` of local files, so the page reads the data from ``data/leaderboard.js`` (the same JSON,
assigned to ``window.VAT_LEADERBOARD``); ``data/leaderboard.json``, ``.csv`` and ``.parquet`` are the
downloads.

Every contributed string (display names, providers, links, scene texts, model strings) is escaped:
:func:`html.escape` in the HTML the Python writes, ``textContent`` in the DOM the JS builds, and
:func:`script_json` for JSON inside a script (``<``, ``>``, ``&``, U+2028 and U+2029 escaped, so no
string can close the script or end a JS line). Links are emitted only for http(s) URLs.

Rows come from two sources: bundles in the submissions folder that pass ``vat verify`` (status
"verified" when a matching replay record says so, "checked" otherwise; bundles that fail are left out
with a warning), and every run in the local store (status "local": not verified, usually not the
release's full scene set). Each row is matched to an entry by model string and generation parameters.

The work is split by job, and this module (the build) re-exports every public name of the parts:
:mod:`~runner.leaderboard.site_rows` gathers the rows, :mod:`~runner.leaderboard.site_board` ranks the
entries, :mod:`~runner.leaderboard.site_data` writes the data document and downloads,
:mod:`~runner.leaderboard.site_charts` picks the SVG figures and :mod:`~runner.leaderboard.site_pages`
writes the HTML.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runner.core import display
from runner.core.errors import VatError
from runner.core.paths import template_dir
from runner.leaderboard.site_board import STATUS_ORDER, Z95, condition_key, model_board, rank_bounds
from runner.leaderboard.site_charts import gain_tax_chart
from runner.leaderboard.site_data import (
    BOARD_COLUMNS,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    csv_columns,
    data_document,
    script_json,
    write_downloads,
)
from runner.leaderboard.site_pages import (
    STATUS_TEXT,
    board_text,
    entry_page,
    esc,
    index_page,
    render,
    safe_link,
    scenes_page,
)
from runner.leaderboard.site_rows import SiteData, bundle_rows, collect, store_rows

__all__ = [
    "BOARD_COLUMNS",
    "SCHEMA_VERSION",
    "STATUS_ORDER",
    "STATUS_TEXT",
    "SUMMARY_COLUMNS",
    "SiteData",
    "Z95",
    "board_text",
    "build_site",
    "bundle_rows",
    "collect",
    "condition_key",
    "csv_columns",
    "data_document",
    "entry_page",
    "esc",
    "gain_tax_chart",
    "index_page",
    "model_board",
    "rank_bounds",
    "render",
    "report_skipped",
    "safe_link",
    "scenes_page",
    "script_json",
    "store_rows",
    "write_downloads",
]


def build_site(data: SiteData, out: Path) -> Path:
    """Write the site into ``out`` (replacing a previous build there); return the path of index.html."""
    doc = data_document(data)
    _prepare(out)
    (out / "assets").mkdir(parents=True)
    (out / "entries").mkdir()
    for name in ("style.css", "app.js"):
        shutil.copyfile(template_dir() / name, out / "assets" / name)
    write_downloads(doc, out / "data")
    (out / "index.html").write_text(index_page(doc), encoding="utf-8")
    (out / "scenes.html").write_text(scenes_page(doc, data.release, data.index), encoding="utf-8")
    for entry_id, entry in doc["entries"].items():
        rank = {"verified": 0, "checked": 1, "local": 2}
        rows = sorted(
            (r for r in doc["rows"] if r["entry"] == entry_id),
            key=lambda r: (
                rank.get(r["status"], 3),
                r["strategy"],
                r.get("step") or 0,
                r["target"],
                r["direction"],
            ),
        )
        (out / "entries" / f"{entry_id}.html").write_text(
            entry_page(entry, rows, doc, data.circle), encoding="utf-8"
        )
    return out / "index.html"


def _prepare(out: Path) -> None:
    """Empty ``out`` if it is a previous site build; refuse to wipe any other folder."""
    if out.exists():
        if any(out.iterdir()) and not (out / "data" / "leaderboard.json").exists():
            raise VatError(
                f"{out} exists and is not a previous site build; choose another out= (nothing was deleted)", 2
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def report_skipped(data: SiteData) -> None:
    """Warn about each bundle left out of the site."""
    for line in data.skipped:
        display.warn(f"bundle left out of the site: {line}")
