"""What the leaderboard site shows, gathered: verified bundles and the local store's runs, matched to entries.

Rows come from two sources: bundles in the submissions folder that pass ``vat verify`` (status
"verified" when a matching replay record says so, "checked" otherwise; bundles that fail are left out
with a warning), and every run in the local store (status "local": not verified, usually not the
release's full scene set). Each row is matched to an entry by model string and generation parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.core.errors import VatError
from runner.spec.entries import Entry, Release, load_entries

SiteRow = dict[str, Any]
"""A report row (METRICS.md §7) plus what the site adds: entry, status, source, release, anchor, condition."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.")[:100] or "model"


@dataclass
class SiteData:
    """Everything the site shows."""

    release: Release
    values: list[str]
    circle: dict[str, int]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[SiteRow] = field(default_factory=list)
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
    row: Mapping[str, Any], entry_id: str, status: str, source: str, release: str | None
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
