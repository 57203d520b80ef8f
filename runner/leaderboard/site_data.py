"""The leaderboard site's data: the versioned JSON document the page reads, and the downloads.

``data/leaderboard.json`` (the document), ``data/leaderboard.js`` (the same JSON assigned to
``window.VAT_LEADERBOARD``, since Chromium refuses ``fetch`` of local files), the conditions as CSV and
Parquet with fixed typed columns, and the model board as ``data/board.csv``. JSON inside a script goes
through :func:`script_json`; contributed strings in the CSV are made inert for spreadsheets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.leaderboard.site_board import finite_num, model_board
from runner.leaderboard.site_rows import SiteData

SCHEMA_VERSION = 1

SUMMARY_COLUMNS = (
    "entry",
    "display_name",
    "model",
    "strategy",
    "target",
    "direction",
    "gain",
    "gain_ci_low",
    "gain_ci_high",
    "nvat",
    "nvat_ci_low",
    "nvat_ci_high",
    "nvat_corrected",
    "nvat_null_mean",
    "nvat_null_p",
    "nvat_signal",
    "nvat_std",
    "gini",
    "gini_ci_low",
    "gini_ci_high",
    "gini_null_mean",
    "hubs",
    "hubs_tested",
    "parsed",
    "planned",
    "n_scenes",
    "status",
    "source",
    "release",
    "run_id",
    "flags",
)
"""The fixed columns of the conditions CSV; :func:`csv_columns` adds the per-value ones."""

_SUMMARY_TYPES = {
    **{
        c: "num"
        for c in SUMMARY_COLUMNS
        if c.startswith(("gain", "nvat", "gini")) and c not in ("nvat_signal",)
    },
    **{c: "int" for c in ("parsed", "planned", "n_scenes")},
}


def script_json(payload: Any) -> str:
    """JSON that is safe inside a ``<script>``: no '</script>', no '<!--', no raw U+2028/U+2029."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def data_document(data: SiteData) -> dict[str, Any]:
    """The versioned JSON document the page reads and the JSON download holds."""
    from runner import __version__
    from runner.metrics.vat import to_json

    rel = data.release
    rows: list[dict[str, Any]] = []
    for r in data.rows:
        rows.append(
            {
                k: r.get(k)
                for k in (
                    "entry",
                    "strategy",
                    "label",
                    "step",
                    "target",
                    "direction",
                    "gain",
                    "gain_raw",
                    "gain_ci",
                    "nvat",
                    "nvat_std",
                    "nvat_subsample_interval",
                    "gini",
                    "hubs",
                    "coverage",
                    "coverage_share",
                    "n_scenes",
                    "status",
                    "source",
                    "release",
                    "run_id",
                    "flags",
                    "anchor",
                    "mean_shift",
                    "gnd",
                    "vat",
                    "coupling",
                    "circumplex_consistency",
                    "ot_abs",
                    "rho_rms",
                    "condition",
                    "replay",
                    "bundle",
                    "mean_shift_ci",
                    "nvat_ci",
                    "nvat_corrected",
                    "rho_rms_ci",
                    "rho_rms_corrected",
                    "gini_ci",
                    "gini_corrected",
                    "interval_method",
                    "null",
                    "signal",
                    "scenes_needed",
                    "hub_test",
                    "hubs_top_k",
                    "rating_source",
                    "rating_fallback_share",
                )
            }
        )
    return to_json(
        {
            "schema_version": SCHEMA_VERSION,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "vat_bench": __version__,
            "release": {
                "id": rel.id,
                "title": rel.title,
                "description": rel.description,
                "status": rel.status,
                "scenes": len(rel.scenes),
                "strategies": rel.strategy_ids,
                "targets": [c.model_dump() for c in rel.targets],
                "metrics": rel.metrics,
            },
            "values": data.values,
            "entries": data.entries,
            "rows": rows,
            "board": model_board(rows, len(rel.strategy_ids) * len(rel.targets)),
        }
    )


def csv_columns(values: Sequence[str]) -> list[tuple[str, str]]:
    """(name, type) of every column of the conditions CSV and Parquet.

    The summary, the tax with its interval and null, then per value its mean shift with interval,
    GND, VAT(u) with its null 95th percentile, and every coupling R[u, w] (u before w in the value
    order).
    """
    cols = [(c, _SUMMARY_TYPES.get(c, "str")) for c in SUMMARY_COLUMNS]
    for v in values:
        cols += [(f"shift_{v}", "num"), (f"shift_ci_low_{v}", "num"), (f"shift_ci_high_{v}", "num")]
        cols += [(f"gnd_{v}", "num"), (f"vat_{v}", "num"), (f"vat_null_q95_{v}", "num")]
    cols += [(f"coupling_{u}__{w}", "num") for i, u in enumerate(values) for w in values[i + 1 :]]
    return cols


BOARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank_lo", "int"),
    ("rank_hi", "int"),
    ("entry", "str"),
    ("display_name", "str"),
    ("model", "str"),
    ("tax", "num"),
    ("tax_ci_low", "num"),
    ("tax_ci_high", "num"),
    ("tax_basis", "str"),
    ("gain", "num"),
    ("gain_ci_low", "num"),
    ("gain_ci_high", "num"),
    ("effect", "str"),
    ("conditions", "int"),
    ("release_conditions", "int"),
    ("signal_share", "num"),
    ("coverage_share", "num"),
    ("status", "str"),
)
"""The model board download (data/board.csv): one line per entry, what the Models view shows."""


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {"num": pa.float64(), "int": pa.int64()}.get(kind, pa.string())


def _write_table(path: Path, columns: Sequence[tuple[str, str]], flat: list[dict[str, Any]]) -> None:
    """One CSV (or Parquet, by suffix) with exactly these columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        schema = pa.schema([(c, _arrow_type(k)) for c, k in columns])
        pq.write_table(pa.Table.from_pylist(flat, schema=schema), path)
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c for c, _ in columns], lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_downloads(doc: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write data/leaderboard.{json,js,csv,parquet} and data/board.csv; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"leaderboard.{k}" for k in ("json", "js", "csv", "parquet")}
    paths["board"] = folder / "board.csv"
    paths["json"].write_text(
        json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    paths["js"].write_text(
        "// VAT Bench leaderboard data (schema_version "
        + str(SCHEMA_VERSION)
        + "); the same document as leaderboard.json.\n"
        "window.VAT_LEADERBOARD = " + script_json(doc) + ";\n",
        encoding="utf-8",
    )
    columns = csv_columns(doc["values"])
    flat = [_flat(r, doc["entries"], doc["values"]) for r in doc["rows"]]
    _write_table(paths["csv"], columns, flat)
    _write_table(paths["parquet"], columns, flat)
    _write_table(
        paths["board"], BOARD_COLUMNS, [_board_flat(b, doc["entries"]) for b in doc.get("board", [])]
    )
    return paths


def _pair(ci: Any) -> list[Any]:
    return list(ci) if isinstance(ci, list | tuple) and len(ci) == 2 else [None, None]


def _flat(r: dict[str, Any], entries: dict[str, Any], values: Sequence[str] = ()) -> dict[str, Any]:
    ci = _pair(r.get("gain_ci"))
    nci = _pair(r.get("nvat_ci"))
    cov = r.get("coverage") or {}
    e = entries.get(r["entry"], {})
    null = r.get("null") or {}
    flat = {
        "entry": r["entry"],
        "display_name": _cell(e.get("display_name")),
        "model": _cell(e.get("model")),
        "strategy": r["strategy"] if r.get("step") is None else f"{r['strategy']}@{r['step']}",
        "target": r["target"],
        "direction": r["direction"],
        "gain": r.get("gain"),
        "gain_ci_low": ci[0],
        "gain_ci_high": ci[1],
        "nvat": r.get("nvat"),
        "nvat_ci_low": nci[0],
        "nvat_ci_high": nci[1],
        "nvat_corrected": r.get("nvat_corrected"),
        "nvat_null_mean": (null.get("nvat") or {}).get("mean"),
        "nvat_null_p": (null.get("nvat") or {}).get("p"),
        "nvat_signal": _bool_text((r.get("signal") or {}).get("nvat")),
        "nvat_std": r.get("nvat_std"),
        "gini": r.get("gini"),
        "gini_ci_low": _pair(r.get("gini_ci"))[0],
        "gini_ci_high": _pair(r.get("gini_ci"))[1],
        "gini_null_mean": (null.get("gini") or {}).get("mean"),
        "hubs": " ".join(r.get("hubs") or []),
        "hubs_tested": _bool_text("hub_test" in r and r.get("hub_test") is not None),
        "parsed": cov.get("parsed"),
        "planned": cov.get("planned"),
        "n_scenes": r.get("n_scenes"),
        "status": r["status"],
        "source": r["source"],
        "release": r.get("release"),
        "run_id": r.get("run_id"),
        "flags": " ".join(r.get("flags") or []),
    }
    shift, shift_ci = r.get("mean_shift") or {}, r.get("mean_shift_ci") or {}
    gnd, vat, vat_null = r.get("gnd") or {}, r.get("vat") or {}, null.get("vat") or {}
    for v in values:
        lo, hi = _pair(shift_ci.get(v))
        flat.update(
            {
                f"shift_{v}": shift.get(v),
                f"shift_ci_low_{v}": lo,
                f"shift_ci_high_{v}": hi,
                f"gnd_{v}": gnd.get(v),
                f"vat_{v}": vat.get(v),
                f"vat_null_q95_{v}": (vat_null.get(v) or {}).get("q95"),
            }
        )
    coupling = r.get("coupling") or []
    for i, u in enumerate(values):
        for j in range(i + 1, len(values)):
            cell = coupling[i][j] if i < len(coupling) and j < len(coupling[i]) else None
            flat[f"coupling_{u}__{values[j]}"] = finite_num(cell)
    return flat


def _bool_text(x: Any) -> str | None:
    return None if not isinstance(x, bool) else ("yes" if x else "no")


def _board_flat(b: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    e = entries.get(b["entry"], {})
    tci, gci = _pair(b.get("tax_ci")), _pair(b.get("gain_ci"))
    return {
        **{k: b.get(k) for k, _ in BOARD_COLUMNS},
        "display_name": _cell(e.get("display_name")),
        "model": _cell(e.get("model")),
        "tax_ci_low": tci[0],
        "tax_ci_high": tci[1],
        "gain_ci_low": gci[0],
        "gain_ci_high": gci[1],
        "effect": _bool_text(b.get("effect")),
    }


def _cell(text: str | None) -> str | None:
    """A contributed string made inert for spreadsheets: a leading = + - @ would start a formula."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text
