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
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.core import display
from runner.core.errors import VatError
from runner.core.paths import template_dir
from runner.metrics.row import ReportRow
from runner.spec.entries import Entry, Release, load_entries

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
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`]+$")


# ---------------------------------------------------------------- escaping


def esc(text: Any) -> str:
    """HTML-escape any value (quotes too, so the result is safe inside attributes)."""
    return html.escape("" if text is None else str(text), quote=True)


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


def safe_link(url: str | None, text: str | None = None) -> str:
    """An ``<a>`` for an http(s) URL (escaped), or the escaped text alone for anything else."""
    label = esc(text if text is not None else url or "")
    if url and _SAFE_URL.fullmatch(url):
        return f'<a href="{esc(url)}" rel="noopener noreferrer nofollow">{label}</a>'
    return label


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.")[:100] or "model"


# ---------------------------------------------------------------- collecting rows


@dataclass
class SiteData:
    """Everything the site shows."""

    release: Release
    values: list[str]
    circle: dict[str, int]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[ReportRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index: Any = None
    """The spec index (for the scenes page)."""


def _entry_facts(entry: Entry) -> dict[str, Any]:
    from runner.report.tables import model_caveat

    return {
        "id": entry.id,
        "display_name": entry.display_name,
        "model": entry.model,
        "provider": entry.provider,
        "licence": entry.licence,
        "link": entry.link,
        "contact": entry.contact,
        "description": entry.description,
        "caveat": model_caveat(entry.model),
        "page": f"entries/{entry.id}.html",
        "registered": True,
    }


def _local_entry(model: str, display_name: str) -> dict[str, Any]:
    """A stand-in entry for a store run whose model has no entry file."""
    from runner.report.tables import model_caveat

    ident = f"local__{_slug(model)}"
    return {
        "id": ident,
        "display_name": display_name or model,
        "model": model,
        "provider": "local run (no entry file)",
        "licence": "unknown",
        "link": None,
        "contact": None,
        "description": None,
        "caveat": model_caveat(model),
        "page": f"entries/{ident}.html",
        "registered": False,
    }


def _summary(
    row: dict[str, Any], entry_id: str, status: str, source: str, release: str | None
) -> dict[str, Any]:
    cov = row.get("coverage") or {}
    planned = int(cov.get("planned") or 0)
    parsed = int(cov.get("parsed") or 0)
    return {
        **row,
        "entry": entry_id,
        "status": status,
        "source": source,
        "release": release,
        "coverage_share": parsed / planned if planned else None,
        "condition": f"{row['strategy']}{'' if row.get('step') is None else '@' + str(row['step'])} · {row['target']} {row['direction']}",
        "anchor": _slug(
            f"{row['strategy']}-{row.get('step') or ''}-{row['target']}-{row['direction']}-{source}-{row['run_id']}"
        ),
    }


def bundle_rows(folder: Path, data: SiteData, overrides: Sequence[str]) -> None:
    """Verify every bundle in ``folder`` (no replay) and add the rows of those that pass."""
    from runner.leaderboard.bundle import JUDGMENTS, MANIFEST, open_bundle, read_sidecar, verify_folder

    if not folder.is_dir():
        return
    candidates = [
        p
        for p in sorted(folder.iterdir())
        if (p.is_dir() and (p / MANIFEST).exists()) or p.name.endswith(".tar.gz")
    ]
    for path in candidates:
        try:
            with open_bundle(path) as unpacked:
                verdict, rp, _ = verify_folder(unpacked, path, overrides)
                hashes = verdict.hashes
                assert (unpacked / JUDGMENTS).exists()
        except VatError as exc:
            data.skipped.append(f"{path.name}: {exc}")
            continue
        if not verdict.ok or rp is None:
            data.skipped.append(f"{path.name}: " + "; ".join(verdict.reasons[:2]))
            continue
        if rp.release.id != data.release.id:
            continue
        record = read_sidecar(path, hashes)
        status = "verified" if record and record.get("verified") else "checked"
        data.entries.setdefault(rp.entry.id, _entry_facts(rp.entry))
        for row in verdict.rows:
            summary = _summary(row, rp.entry.id, status, "bundle", rp.release.id)
            summary["replay"] = (record or {}).get("replay")
            summary["bundle"] = path.name
            data.rows.append(summary)


def store_rows(store_path: Path, data: SiteData, params: dict[str, Any], entries: dict[str, Entry]) -> None:
    """Add a row per run of the local store, matched to an entry by model and generation parameters."""
    from runner.compile.plan import gen_params
    from runner.report.tables import build_rows
    from runner.store.store import open_store

    if not store_path.exists():
        return
    with open_store(store_path, read_only=True) as store:
        if not store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'runs'"):
            return
        rows = build_rows(store, data.values, params, circle_index=data.circle)
        configs = {
            rid: json.loads(cfg) if isinstance(cfg, str) else cfg
            for rid, cfg in store.query("SELECT run_id, config FROM runs")
        }
    seen = {(r["entry"], r["run_id"]) for r in data.rows}
    for row in rows:
        model_cfg = (configs.get(row["run_id"]) or {}).get("model") or {}
        entry = _match_entry(row["model"], model_cfg, entries, gen_params)
        facts = (
            _entry_facts(entry)
            if entry
            else _local_entry(row["model"], row.get("display_name") or row["model"])
        )
        if (facts["id"], row["run_id"]) in seen:
            continue  # the same run is already on the board from a bundle
        data.entries.setdefault(facts["id"], facts)
        data.rows.append(_summary(row, facts["id"], "local", "local", None))


def _match_entry(
    model: str, model_cfg: dict[str, Any], entries: dict[str, Entry], gen_params: Any
) -> Entry | None:
    """The entry with this model string whose generation parameters match the run's (if any)."""
    try:
        run_params = gen_params(model_cfg)
    except (KeyError, TypeError, ValueError):
        run_params = None
    for entry in entries.values():
        if entry.model == model and (run_params is None or gen_params(entry.model_conf()) == run_params):
            return entry
    return None


def collect(
    release: Release,
    submissions: Path | None,
    store_path: Path | None,
    params: dict[str, Any],
    overrides: Sequence[str] = (),
    spec_dir: str = "spec",
) -> SiteData:
    """Gather the release, the entries and every row (bundles first, then the local store)."""
    from runner.spec.load import load_index

    index = load_index(spec_dir, check_lock=False)
    data = SiteData(
        release=release,
        values=index.value_ids,
        circle={v.id: v.circle_index for v in index.values},
        index=index,
    )
    entries, _ = load_entries()
    if submissions is not None:
        bundle_rows(submissions, data, overrides)
    if store_path is not None:
        store_rows(store_path, data, params, entries)
    return data


# ---------------------------------------------------------------- the model-level board

Z95 = 1.959964
"""Normal quantile of a 95 % interval: turns a per-condition interval into a standard error."""
STATUS_ORDER = {"verified": 0, "checked": 1, "local": 2}


def condition_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same condition: strategy, checkpoint step, target, direction."""
    return (row["strategy"], row.get("step"), row["target"], row["direction"])


def _tax_of(row: dict[str, Any]) -> tuple[float | None, list[float] | None, str]:
    """The tax a board ranks on for one row: the bias-corrected nVAT with its interval.

    ``nvat_ci`` is the interval of the corrected estimate (METRICS.md §8). Rows from before the null
    have only the raw nVAT and no interval: their basis says so.
    """
    raw, corrected, ci = _num(row.get("nvat")), _num(row.get("nvat_corrected")), row.get("nvat_ci")
    has_ci = bool(ci) and _num(ci[0]) is not None and _num(ci[1]) is not None
    if corrected is not None:
        return corrected, ([ci[0], ci[1]] if has_ci else None), "nvat_corrected"
    return raw, None, "nvat"


def _mean_with_interval(
    points: Sequence[tuple[float | None, Sequence[Any] | None]],
) -> tuple[float | None, list[float] | None]:
    """Mean of per-condition estimates and a 95 % interval propagated from theirs.

    Each condition's standard error is its interval width / (2 · 1.96); the mean's is
    √(Σ se²) / n, treating conditions as independent (they are separate interventions, but they
    share scenes, so this is a lower bound when their errors correlate; the release notes say so).
    No interval when any condition lacks one.
    """
    vals = [v for v, _ in points if v is not None]
    if not vals or len(vals) != len(points):
        return None, None
    mean = sum(vals) / len(vals)
    ses = [
        (ci[1] - ci[0]) / (2 * Z95)
        for _, ci in points
        if ci and _num(ci[0]) is not None and _num(ci[1]) is not None
    ]
    if len(ses) != len(points):
        return mean, None
    half = Z95 * (sum(se * se for se in ses) ** 0.5) / len(ses)
    return mean, [mean - half, mean + half]


def rank_bounds(intervals: Sequence[list[float] | None]) -> list[tuple[int, int]]:
    """Rank ranges as LMArena shows them, lower is better.

    Entry i ranks at best 1 + the number of entries whose whole interval lies below i's, at worst
    n − the number whose whole interval lies above. An entry without an interval can be anywhere
    (1..n) and bounds no other entry.
    """
    n = len(intervals)
    out = []
    for ci in intervals:
        if ci is None:
            out.append((1, n))
            continue
        better = sum(1 for o in intervals if o is not None and o[1] < ci[0])
        worse = sum(1 for o in intervals if o is not None and o[0] > ci[1])
        out.append((1 + better, n - worse))
    return out


def model_board(rows: Sequence[ReportRow], release_conditions: int) -> list[dict[str, Any]]:
    """One line per entry, ranked by its mean bias-corrected tax over the release's conditions.

    Per entry: the rows of its best status only (verified, else checked, else local), one per
    condition; ``tax`` is the mean bias-corrected nVAT with a propagated 95 % interval, ``gain`` the
    mean directed gain likewise. An entry whose gain interval includes 0 moved nothing detectably, so
    its low tax means nothing: it is listed after the ranked entries, unranked, as is an entry with
    only the raw nVAT when others have the corrected one (one basis per board). Rank bounds come from
    the tax intervals of the ranked entries (:func:`rank_bounds`); ties within uncertainty share a range.
    """
    by_entry: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: STATUS_ORDER.get(r["status"], 3)):
        best = by_entry.setdefault(r["entry"], {})
        first = next(iter(best.values()), None)
        if first is not None and first["status"] != r["status"]:
            continue  # a worse status of an entry that has better rows
        best.setdefault(condition_key(r), r)
    lines = []
    for entry, conds in by_entry.items():
        members = list(conds.values())
        taxes = [_tax_of(r) for r in members]
        tax, tax_ci = _mean_with_interval([(t, ci) for t, ci, _ in taxes])
        gain, gain_ci = _mean_with_interval([(_num(r.get("gain")), r.get("gain_ci")) for r in members])
        signal = [
            r["signal"]["nvat"] for r in members if isinstance((r.get("signal") or {}).get("nvat"), bool)
        ]
        planned = sum(int((r.get("coverage") or {}).get("planned") or 0) for r in members)
        parsed = sum(int((r.get("coverage") or {}).get("parsed") or 0) for r in members)
        lines.append(
            {
                "entry": entry,
                "status": members[0]["status"],
                "conditions": len(members),
                "release_conditions": release_conditions,
                "tax": tax,
                "tax_ci": tax_ci,
                "tax_basis": "nvat_corrected" if all(b == "nvat_corrected" for *_, b in taxes) else "nvat",
                "gain": gain,
                "gain_ci": gain_ci,
                "effect": gain_ci is not None and gain_ci[0] > 0,
                "signal_share": sum(signal) / len(signal) if signal else None,
                "coverage_share": parsed / planned if planned else None,
                "anchors": [r["anchor"] for r in members],
            }
        )
    # one basis per board: once any entry has the bias-corrected tax, raw nVATs (rows from before the
    # null) are not comparable with it and stay unranked
    basis = "nvat_corrected" if any(ln["tax_basis"] == "nvat_corrected" for ln in lines) else "nvat"
    for ln in lines:
        ln["unranked_because"] = (
            "its gain's interval includes 0 (no detectable effect)"
            if not ln["effect"]
            else (
                "it has no permutation null (rebuild from a newer store)"
                if ln["tax_basis"] != basis
                else None
            )
        )
    order = lambda ln: (_sort_num(ln["tax"]), ln["entry"])  # noqa: E731
    ranked = sorted((ln for ln in lines if ln["unranked_because"] is None), key=order)
    unranked = sorted((ln for ln in lines if ln["unranked_because"] is not None), key=order)
    for line, (lo, hi) in zip(ranked, rank_bounds([ln["tax_ci"] for ln in ranked]), strict=True):
        line.update(rank_lo=lo, rank_hi=hi, ranked=True)
    for line in unranked:
        line.update(rank_lo=None, rank_hi=None, ranked=False)
    return ranked + unranked


def _sort_num(x: Any) -> float:
    v = _num(x)
    return float("inf") if v is None else v


# ---------------------------------------------------------------- the data document


def _num(x: Any) -> float | None:
    return (
        x
        if isinstance(x, int | float) and not isinstance(x, bool) and x == x and abs(x) != float("inf")
        else None
    )


def data_document(data: SiteData) -> dict[str, Any]:
    """The versioned JSON document the page reads and the JSON download holds."""
    from runner import __version__
    from runner.metrics.vat import to_json

    rel = data.release
    rows = []
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
            flat[f"coupling_{u}__{values[j]}"] = _num(cell)
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


# ---------------------------------------------------------------- pages


def render(template: str, **parts: str) -> str:
    """Fill ``{{ name }}`` placeholders with already-escaped HTML; a missing part is a bug, not a blank."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parts:
            raise KeyError(f"template placeholder {name!r} has no value")
        return parts[name]

    return re.sub(r"\{\{\s*([a-z_]+)\s*\}\}", fill, template)


def _page(title: str, body: str, root: str, active: str, doc: dict[str, Any], scripts: str = "") -> str:
    layout = (template_dir() / "layout.html").read_text(encoding="utf-8")
    rel = doc["release"]
    links = (
        ("board", "index.html", "Leaderboard"),
        ("scenes", "scenes.html", "Scenes"),
        ("downloads", "index.html#downloads", "Downloads"),
    )
    current = ' aria-current="page"'
    nav = "".join(
        f'<a href="{root}{href}"{current if key == active else ""}>{label}</a>' for key, href, label in links
    )
    return render(
        layout,
        title=esc(title),
        root=root,
        nav=nav,
        release=esc(rel["title"] if rel["id"] in rel["title"] else f"{rel['title']} ({rel['id']})"),
        body=body,
        scripts=scripts,
        generated=esc(doc["generated_at"]),
        schema=str(SCHEMA_VERSION),
        version=esc(doc["vat_bench"]),
    )


def _caveats(doc: dict[str, Any], entry_ids: Sequence[str] | None = None) -> str:
    ids = entry_ids if entry_ids is not None else [r["entry"] for r in doc["rows"]]
    notes = sorted({doc["entries"][i]["caveat"] for i in ids if doc["entries"].get(i, {}).get("caveat")})
    return "".join(
        f'<aside class="caveat" role="note"><strong>Caveat.</strong> {esc(n)}</aside>' for n in notes
    )


def index_page(doc: dict[str, Any]) -> str:
    """The leaderboard table page (the table itself is built by app.js from the data document)."""
    body = render(
        (template_dir() / "index.html").read_text(encoding="utf-8"),
        release_title=esc(doc["release"]["title"]),
        release_description=esc(doc["release"]["description"]),
        release_facts=esc(
            f"{doc['release']['scenes']} scenes · strategies {', '.join(doc['release']['strategies'])} · "
            f"{len(doc['release']['targets'])} targets"
        ),
        caveats=_caveats(doc),
        chart=gain_tax_chart(doc),
        empty=""
        if doc["rows"]
        else '<p class="empty">No results yet: run <code>make demo</code> or add verified bundles.</p>',
    )
    scripts = '<script src="data/leaderboard.js"></script><script src="assets/app.js"></script>'
    return _page(f"VAT Bench leaderboard · {doc['release']['id']}", body, "", "board", doc, scripts)


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


def _fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    v = _num(x)
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


STATUS_TEXT = {
    "verified": "verified: integrity checks passed and a replay against the provider agreed",
    "checked": "checked: recomputed from the submitted judgments; not replayed against the provider",
    "local": "local: a run in this machine's store; not a submission, not verified",
}


def _badge(status: str) -> str:
    return f'<span class="badge badge-{esc(status)}" title="{esc(STATUS_TEXT.get(status, status))}">{esc(status)}</span>'


def _condition_section(
    row: dict[str, Any], values: list[str], circle: dict[str, int], display_name: str
) -> str:
    from runner.report.tables import (
        GAIN_CAVEAT,
        gain_spans_zero,
        rating_text,
        row_plots,
        tax_text,
        tested_hubs,
    )

    title = f"{display_name} · {row['condition']}"
    labels = {
        "coupling": "Coupling heatmap (pale cells: inside the null band)",
        "radar": "Circumplex radar of VAT(u) with its null ring",
        "shift": "Mean shift per value with 95 % intervals",
        "gnd": "Gain-normalized deviation",
    }
    svgs = [(labels[k], svg) for k, svg in row_plots(row, values, row["condition"], circle).items()]
    ci = row.get("gain_ci") or [None, None]
    facts = [
        ("gain", f"{_fmt(row.get('gain'), signed=True)} [{_fmt(ci[0], 2, True)}, {_fmt(ci[1], 2, True)}]"),
        ("nVAT", tax_text(row, "nvat").removeprefix("nVAT ")),
        ("Gini", tax_text(row, "gini").removeprefix("Gini ")),
        ("± std (paper's 80 % subsample sd, not a CI)", _fmt(row.get("nvat_std"))),
        ("hubs", tested_hubs(row)),
        ("scenes", str(row.get("n_scenes") or "–")),
        (
            "coverage",
            f"{(row.get('coverage') or {}).get('parsed', 0)}/{(row.get('coverage') or {}).get('planned', 0)} parsed",
        ),
        ("rating", rating_text(row).removeprefix("rating: ")),
        ("run", row.get("run_id") or "–"),
    ]
    if gain_spans_zero(row):
        facts.append(("caveat", GAIN_CAVEAT))
    if row.get("flags"):
        facts.append(("flags", ", ".join(row["flags"])))
    if row.get("replay"):
        rp = row["replay"]
        when = str(rp.get("replayed_at") or "")[:10]
        facts.append(("replay", f"{rp.get('agreed')}/{rp.get('requested')} agreed, {when}"))
    fact_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
    figures = "".join(f'<figure class="plot" aria-label="{esc(label)}">{svg}</figure>' for label, svg in svgs)
    per_value = _per_value_table(row, values)
    return (
        f'<section class="condition" id="{esc(row["anchor"])}" aria-label="{esc(title)}">'
        f"<h2>{esc(row['condition'])} {_badge(row['status'])}</h2>"
        f'<dl class="facts">{fact_html}</dl><div class="plots">{figures}</div>{per_value}</section>'
    )


def _per_value_table(row: dict[str, Any], values: list[str]) -> str:
    head = "<tr><th scope=col>value</th><th scope=col>mean shift</th><th scope=col>GND</th><th scope=col>VAT(u)</th></tr>"
    body = []
    for v in values:
        cls = ' class="target"' if v == row["target"] else ""
        body.append(
            f"<tr{cls}><th scope=row>{esc(v)}{' (target)' if cls else ''}</th>"
            f"<td>{_fmt((row.get('mean_shift') or {}).get(v), signed=True)}</td>"
            f"<td>{_fmt((row.get('gnd') or {}).get(v), 2, True)}</td>"
            f"<td>{_fmt((row.get('vat') or {}).get(v))}</td></tr>"
        )
    return f'<details class="per-value"><summary>Per-value numbers</summary><table class="numbers">{head}{"".join(body)}</table></details>'


def board_text(line: dict[str, Any], ranked_count: int) -> str:
    """One entry's place on the board in words: rank range, tax and gain with their intervals."""
    if line.get("ranked"):
        lo, hi = line["rank_lo"], line["rank_hi"]
        rank = f"rank {lo}" if lo == hi else f"rank {lo}–{hi} (tied within uncertainty)"
        rank += f" of {ranked_count}"
    else:
        rank = f"not ranked: {line.get('unranked_because') or 'no tax'}"
    tci, gci = line.get("tax_ci") or [None, None], line.get("gain_ci") or [None, None]
    return (
        f"{rank} · tax {_fmt(line.get('tax'), signed=True)} [{_fmt(tci[0], 2, True)}, {_fmt(tci[1], 2, True)}]"
        f" · gain {_fmt(line.get('gain'), signed=True)} [{_fmt(gci[0], 2, True)}, {_fmt(gci[1], 2, True)}]"
        f" · {line['conditions']} of {line['release_conditions']} release conditions"
    )


def _board_line(doc: dict[str, Any], entry_id: str) -> str:
    board = doc.get("board") or []
    line = next((b for b in board if b["entry"] == entry_id), None)
    if line is None:
        return ""
    ranked = sum(1 for b in board if b.get("ranked"))
    return f'<p class="board-line"><strong>On the board:</strong> {esc(board_text(line, ranked))}</p>'


def entry_page(
    entry: dict[str, Any], rows: list[ReportRow], doc: dict[str, Any], circle: dict[str, int]
) -> str:
    """One entry: its facts, then per condition the numbers, heatmap, radar and GND chart."""
    facts = [
        ("Model", f"<code>{esc(entry['model'])}</code>"),
        ("Provider", esc(entry.get("provider"))),
        ("Licence", esc(entry.get("licence"))),
        ("Link", safe_link(entry.get("link")) if entry.get("link") else "–"),
        ("Contact", esc(entry.get("contact") or "–")),
    ]
    fact_html = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    desc = f'<p class="lede">{esc(entry["description"])}</p>' if entry.get("description") else ""
    if not entry.get("registered"):
        desc += '<p class="lede">This model has no entry file in <code>leaderboard/entries/</code>; it appears because it was run in the local store.</p>'
    toc = "".join(
        f'<li><a href="#{esc(r["anchor"])}">{esc(r["condition"])}</a> {_badge(r["status"])}</li>'
        for r in rows
    )
    sections = "".join(_condition_section(r, doc["values"], circle, entry["display_name"]) for r in rows)
    body = (
        f'<p class="crumbs"><a href="../index.html">← Leaderboard</a></p>'
        f'<h1 class="entry-name">{esc(entry["display_name"])}</h1>{desc}'
        f'<dl class="entry-facts">{fact_html}</dl>{_board_line(doc, entry["id"])}{_caveats(doc, [entry["id"]])}'
        f'<nav class="toc" aria-label="Conditions"><h2>Conditions</h2><ul>{toc or "<li>none</li>"}</ul></nav>{sections}'
    )
    return _page(f"{entry['display_name']} · VAT Bench", body, "../", "board", doc)


def scenes_page(doc: dict[str, Any], release: Release, index: Any) -> str:
    """The release's scored scenes, each pinned at its version, with its text."""
    from runner.spec.models import COUNTRIES, TOPICS

    rows = []
    for pin in release.scenes:
        sid, version = pin.split("@")
        scene = index.scenes.get(sid)
        if scene is None:
            rows.append(f"<tr><td><code>{esc(pin)}</code></td><td colspan=4>not in this spec tree</td></tr>")
            continue
        note = (
            ""
            if scene.version == int(version)
            else f' <span class="badge badge-local">spec has @{scene.version}</span>'
        )
        actions = "".join(
            f"<li><span class=pol>{esc(a.value)} · {esc(a.polarity.value)}</span> {esc(a.text)}</li>"
            for a in scene.actions
        )
        rows.append(
            f"<tr><td><code>{esc(pin)}</code>{note}</td><td>{esc(COUNTRIES.get(scene.country, scene.country))}</td>"
            f"<td>{esc(TOPICS.get(scene.topic, scene.topic))}</td><td>{len(scene.actions)}</td>"
            f"<td><p>{esc(scene.text)}</p><details><summary>Actions</summary><ul class=actions>{actions}</ul></details></td></tr>"
        )
    body = (
        f"<h1>Scenes of {esc(release.title)}</h1>"
        f'<p class="lede">{len(release.scenes)} scenes, each pinned as <code>id@version</code>; every entry judges every '
        f"action of each scene before and after each intervention. Scenes are contributed by pull request (see CONTRIBUTING.md).</p>"
        '<div class="table-wrap"><table class="scenes"><thead><tr><th scope=col>scene</th><th scope=col>country</th>'
        "<th scope=col>topic</th><th scope=col>actions</th><th scope=col>text</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return _page(f"Scenes · {release.id} · VAT Bench", body, "", "scenes", doc)


# ---------------------------------------------------------------- the build


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
