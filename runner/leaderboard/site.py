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

from runner import display
from runner.errors import VatError
from runner.leaderboard import template_dir
from runner.leaderboard.entries import Entry, Release, load_entries

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
    "nvat_std",
    "gini",
    "hubs",
    "parsed",
    "planned",
    "n_scenes",
    "status",
    "source",
    "release",
    "run_id",
    "flags",
)
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
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index: Any = None
    """The spec index (for the scenes page)."""


def _entry_facts(entry: Entry) -> dict[str, Any]:
    from runner.report import model_caveat

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
    from runner.report import model_caveat

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
    from runner.compile import gen_params
    from runner.report import build_rows
    from runner.store import open_store

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
    from runner.load import load_index

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
    from runner.metrics import to_json

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
                    "gain_ci",
                    "nvat",
                    "nvat_std",
                    "nvat_interval",
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
        }
    )


def write_downloads(doc: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write data/leaderboard.{json,js,csv,parquet}; return their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"leaderboard.{k}" for k in ("json", "js", "csv", "parquet")}
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
    flat = [_flat(r, doc["entries"]) for r in doc["rows"]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    paths["csv"].write_text(buf.getvalue(), encoding="utf-8")
    schema = pa.schema(
        [
            (
                c,
                pa.float64()
                if c in ("gain", "gain_ci_low", "gain_ci_high", "nvat", "nvat_std", "gini")
                else pa.int64()
                if c in ("parsed", "planned", "n_scenes")
                else pa.string(),
            )
            for c in SUMMARY_COLUMNS
        ]
    )
    pq.write_table(pa.Table.from_pylist(flat, schema=schema), paths["parquet"])
    return paths


def _flat(r: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    ci = r.get("gain_ci") or [None, None]
    cov = r.get("coverage") or {}
    e = entries.get(r["entry"], {})
    return {
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
        "nvat_std": r.get("nvat_std"),
        "gini": r.get("gini"),
        "hubs": " ".join(r.get("hubs") or []),
        "parsed": cov.get("parsed"),
        "planned": cov.get("planned"),
        "n_scenes": r.get("n_scenes"),
        "status": r["status"],
        "source": r["source"],
        "release": r.get("release"),
        "run_id": r.get("run_id"),
        "flags": " ".join(r.get("flags") or []),
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
        empty=""
        if doc["rows"]
        else '<p class="empty">No results yet: run <code>make demo</code> or add verified bundles.</p>',
    )
    scripts = '<script src="data/leaderboard.js"></script><script src="assets/app.js"></script>'
    return _page(f"VAT Bench leaderboard · {doc['release']['id']}", body, "", "board", doc, scripts)


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
    from runner import plots

    title = f"{display_name} · {row['condition']}"
    svgs = [
        (
            "Coupling heatmap",
            plots.coupling_heatmap(
                row.get("coupling") or [[None] * len(values)] * len(values),
                values,
                f"Coupling R · {row['condition']}",
            ),
        ),
        (
            "Circumplex radar of VAT(u)",
            plots.circumplex_radar(
                row.get("vat") or {},
                values,
                f"VAT(u) on the circle · {row['condition']}",
                circle_index=circle,
            ),
        ),
        (
            "Gain-normalized deviation",
            plots.gnd_bars(row.get("gnd") or {}, row["target"], f"GND · {row['condition']}"),
        ),
    ]
    ci = row.get("gain_ci") or [None, None]
    facts = [
        ("gain", f"{_fmt(row.get('gain'), signed=True)} [{_fmt(ci[0], 2, True)}, {_fmt(ci[1], 2, True)}]"),
        ("nVAT", f"{_fmt(row.get('nvat'))} ± {_fmt(row.get('nvat_std'))}"),
        ("Gini", _fmt(row.get("gini"))),
        ("hubs", ", ".join(row.get("hubs") or []) or "–"),
        ("scenes", str(row.get("n_scenes") or "–")),
        (
            "coverage",
            f"{(row.get('coverage') or {}).get('parsed', 0)}/{(row.get('coverage') or {}).get('planned', 0)} parsed",
        ),
        ("run", row.get("run_id") or "–"),
    ]
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


def entry_page(
    entry: dict[str, Any], rows: list[dict[str, Any]], doc: dict[str, Any], circle: dict[str, int]
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
        f'<dl class="entry-facts">{fact_html}</dl>{_caveats(doc, [entry["id"]])}'
        f'<nav class="toc" aria-label="Conditions"><h2>Conditions</h2><ul>{toc or "<li>none</li>"}</ul></nav>{sections}'
    )
    return _page(f"{entry['display_name']} · VAT Bench", body, "../", "board", doc)


def scenes_page(doc: dict[str, Any], release: Release, index: Any) -> str:
    """The release's scored scenes, each pinned at its version, with its text."""
    from runner.specs import COUNTRIES, TOPICS

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
