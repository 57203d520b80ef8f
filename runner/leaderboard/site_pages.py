"""The leaderboard site's HTML pages: the board, each entry's conditions and the release's scenes.

Every contributed string (display names, providers, links, scene texts, model strings) is escaped:
:func:`html.escape` in the HTML the Python writes (``textContent`` in the DOM the page's JS builds).
Links are emitted only for http(s) URLs. Templates live in ``leaderboard/template/``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, cast

from runner.core.paths import template_dir
from runner.leaderboard.site_board import finite_num
from runner.leaderboard.site_charts import condition_figures, gain_tax_chart
from runner.leaderboard.site_data import SCHEMA_VERSION
from runner.leaderboard.site_rows import SiteRow
from runner.metrics.row import ReportRow
from runner.spec.entries import Release

_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`]+$")


def esc(text: Any) -> str:
    """HTML-escape any value (quotes too, so the result is safe inside attributes)."""
    return html.escape("" if text is None else str(text), quote=True)


def safe_link(url: str | None, text: str | None = None) -> str:
    """An ``<a>`` for an http(s) URL (escaped), or the escaped text alone for anything else."""
    label = esc(text if text is not None else url or "")
    if url and _SAFE_URL.fullmatch(url):
        return f'<a href="{esc(url)}" rel="noopener noreferrer nofollow">{label}</a>'
    return label


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


def _fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    v = finite_num(x)
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
        tax_text,
        tested_hubs,
    )

    title = f"{display_name} · {row['condition']}"
    svgs = condition_figures(row, values, circle)
    report_row = cast(ReportRow, row)  # a site row is a report row with the site's keys added
    ci = row.get("gain_ci") or [None, None]
    facts = [
        ("gain", f"{_fmt(row.get('gain'), signed=True)} [{_fmt(ci[0], 2, True)}, {_fmt(ci[1], 2, True)}]"),
        ("nVAT", tax_text(report_row, "nvat").removeprefix("nVAT ")),
        ("Gini", tax_text(report_row, "gini").removeprefix("Gini ")),
        ("± std (paper's 80 % subsample sd, not a CI)", _fmt(row.get("nvat_std"))),
        ("hubs", tested_hubs(report_row)),
        ("scenes", str(row.get("n_scenes") or "–")),
        (
            "coverage",
            f"{(row.get('coverage') or {}).get('parsed', 0)}/{(row.get('coverage') or {}).get('planned', 0)} parsed",
        ),
        ("rating", rating_text(report_row).removeprefix("rating: ")),
        ("run", row.get("run_id") or "–"),
    ]
    if gain_spans_zero(report_row):
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
    entry: dict[str, Any], rows: list[SiteRow], doc: dict[str, Any], circle: dict[str, int]
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
