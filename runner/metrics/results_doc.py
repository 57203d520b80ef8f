"""One versioned results document per report: ``vat report format=results``.

``{"schema": "vat-bench/results", "schema_version": 1, "provenance": {...}, "rows": [...],
"families": [...]}``: every row field of ``format=json`` (null and interval fields included), the
family metrics, and where the numbers came from. ``runner/results.schema.json`` is its JSON Schema;
docs/package.md describes it.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from runner.core.paths import git_revision

SCHEMA = "vat-bench/results"
SCHEMA_VERSION = 1
"""Raised whenever a reader must know: a field renamed, removed or given another meaning."""


def schema() -> dict[str, Any]:
    """The document's JSON Schema (``runner/results.schema.json``, shipped in the wheel)."""
    return json.loads((resources.files("runner") / "results.schema.json").read_text(encoding="utf-8"))


def run_provenance(store: Any, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """What `vat run` recorded for each of ``run_ids`` (git revision, versions, overrides), in that order."""
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    found = {
        rid: (
            str(created) if created is not None else None,
            json.loads(prov) if isinstance(prov, str) else prov,
        )
        for rid, created, prov in store.query(
            f"SELECT run_id, created_at, provenance FROM runs WHERE run_id IN ({marks})", list(run_ids)
        )
    }
    return [
        {
            "run_id": rid,
            "created_at": found.get(rid, (None, None))[0],
            "provenance": found.get(rid, (None, None))[1],
        }
        for rid in dict.fromkeys(run_ids)
    ]


def _version() -> str | None:
    try:
        return importlib.metadata.version("vat-bench")
    except importlib.metadata.PackageNotFoundError:
        return None


def build(
    rows: Sequence[Mapping[str, Any]],
    families: Sequence[Mapping[str, Any]],
    *,
    filters: Mapping[str, Sequence[str]],
    metrics: Mapping[str, Any],
    values: Sequence[str],
    runs: Sequence[Mapping[str, Any]],
    store: str,
) -> dict[str, Any]:
    """The results document of one report (rows and families exactly as ``format=json`` has them)."""
    rev = git_revision()
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "provenance": {
            "generator": {
                "name": "vat-bench",
                "version": _version(),
                "git_revision": rev,
                "source": "git checkout" if rev else "not a git checkout",
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "store": store,
            "filters": {k: list(v) for k, v in filters.items() if v},
            "metrics": dict(metrics),
            "values": list(values),
            "runs": [dict(r) for r in runs],
        },
        "rows": [dict(r) for r in rows],
        "families": [dict(f) for f in families],
    }


def problems(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the schema, one line each (empty when it is valid); needs jsonschema.

    jsonschema always comes with LiteLLM (one of its requirements), so it is not declared separately.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
