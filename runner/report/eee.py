"""The community "Every Eval Ever" (EEE) records of a report: ``vat report format=eee``.

EEE (the EvalEval coalition's shared format, schema version 0.2.1) stores one record per model: who ran
the evaluation, the model, and a list of ``evaluation_results``, each one score with its metric's
direction and range and, optionally, its uncertainty. This module maps VAT Bench's versioned results
document (runner.results_doc) onto it: one record per model, one evaluation result per condition pair
and metric, the intervals carried as ``score_details.uncertainty.confidence_interval``.
``runner/report/eee.schema.json`` holds the facts of the EEE schema that these records rely on (required
fields, enums, the string-only ``additional_details`` maps); docs/package.md describes the mapping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

EEE_SCHEMA_VERSION = "0.2.1"
"""The EEE schema version the records follow (its ``eval.schema.json`` at that version)."""


@dataclass(frozen=True)
class Metric:
    """One VAT metric as EEE needs it: direction, range, and the row field that holds its interval."""

    key: str
    description: str
    lower_is_better: bool
    interval: str | None
    interval_method: str | None
    bound: str  # "gain" [-2, 2] | "nvat" [0, sqrt(|V|-1)] | "signed_nvat" | "unit" [0, 1] | "signed_unit"


METRICS: tuple[Metric, ...] = (
    Metric(
        "gain",
        "directed gain G = d·m(t): mean shift of the target value's state, positive = moved the intended way",
        False,
        "gain_ci",
        "paired percentile bootstrap over scenes",
        "gain",
    ),
    Metric(
        "nvat",
        "nVAT = ||R - I||_F / sqrt(|V|), plug-in (biased upward under noise; read nvat_corrected)",
        True,
        None,
        None,
        "nvat",
    ),
    Metric(
        "nvat_corrected",
        "null-corrected nVAT (signed root; negative = less coupling than chance gives)",
        True,
        "nvat_ci",
        None,
        "signed_nvat",
    ),
    Metric("rho_rms", "root mean square off-target coupling, plug-in", True, None, None, "unit"),
    Metric(
        "rho_rms_corrected", "null-corrected rho_rms (signed root)", True, "rho_rms_ci", None, "signed_unit"
    ),
    Metric(
        "gini", "Gini of VAT(u) over values (centralization of the tax), plug-in", False, None, None, "unit"
    ),
    Metric(
        "gini_corrected",
        "Gini of the null-corrected VAT(u); 0 unless nVAT beats its null",
        False,
        "gini_ci",
        None,
        "unit",
    ),
)
"""The metrics exported per condition pair, in this order (docs/METRICS.md §3-§8 define them).

Gini has no better direction (it describes where the tax falls); EEE requires a boolean, so it says
``false`` and ``metric_config.additional_details.better`` says "neither".
"""


def schema() -> dict[str, Any]:
    """The EEE facts the records are checked against (``runner/report/eee.schema.json``, shipped in the wheel)."""
    return json.loads((resources.files("runner.report") / "eee.schema.json").read_text(encoding="utf-8"))


def problems(record: Any) -> list[str]:
    """Every way ``record`` breaks the EEE schema facts, one line each (empty when it is valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _bounds(kind: str, n_values: int) -> tuple[float, float]:
    top = math.sqrt(max(n_values - 1, 1))  # every off-diagonal |R| = 1
    return {
        "gain": (-2.0, 2.0),  # value states lie in [-1, 1], so a shift lies in [-2, 2]
        "nvat": (0.0, top),
        "signed_nvat": (-top, top),
        "unit": (0.0, 1.0),
        "signed_unit": (-1.0, 1.0),
    }[kind]


def _strings(d: Mapping[str, Any]) -> dict[str, str]:
    """EEE's ``additional_details``: every value a string (lists joined, None left out)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, list | tuple):
            out[k] = ",".join(str(x) for x in v)
        elif isinstance(v, dict):
            out[k] = json.dumps(v, sort_keys=True)
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = str(v)
    return out


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _epoch(iso: str | None) -> str | None:
    """An ISO time as EEE's timestamp: Unix epoch seconds, as a string (naive times read as UTC)."""
    if not iso:
        return None
    t = datetime.fromisoformat(iso)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return f"{t.timestamp():.1f}"


def condition_name(row: Mapping[str, Any]) -> str:
    """The condition a row measures, e.g. ``security reinforce · fewshot_2`` (a checkpoint: ``· step 3``)."""
    name = f"{row['target']} {row['direction']} · {row['strategy']}"
    if row.get("step") is not None:
        name += f" · step {row['step']}"
    if row.get("variant") not in (None, "base"):
        name += f" · {row['variant']}"
    return name


def _uncertainty(row: Mapping[str, Any], m: Metric) -> dict[str, Any]:
    params = row.get("params") or {}
    unc: dict[str, Any] = {"num_samples": int(row["n_scenes"])}
    ci = row.get(m.interval) if m.interval else None
    lo, hi = (
        (_number(ci[0]), _number(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
    )
    if lo is not None and hi is not None:
        unc["confidence_interval"] = {
            "lower": lo,
            "upper": hi,
            "confidence_level": float(params.get("ci_level", 0.95)),
            "method": m.interval_method or str(row.get("interval_method") or "delete-one-scene jackknife"),
        }
        if m.key == "gain" and params.get("bootstrap_b"):
            unc["num_bootstrap_samples"] = int(params["bootstrap_b"])
    return unc


def _score_details(row: Mapping[str, Any], m: Metric, score: float) -> dict[str, Any]:
    details: dict[str, Any] = {"run_id": row.get("run_id"), "unit": row.get("unit")}
    base = m.key.removesuffix("_corrected")
    null = (row.get("null") or {}).get(base) or {}
    if null:
        details["null_mean"] = null.get("mean")
        details["null_p"] = null.get("p")
    if base in (row.get("signal") or {}):
        details["beats_null"] = row["signal"][base]
    if m.interval:
        ci = row.get(m.interval)
        if not (isinstance(ci, list | tuple) and all(_number(x) is not None for x in ci)):
            details["interval"] = "not computable for this row (too few scenes or a degenerate column)"
    return {
        "score": score,
        "details": _strings(details),
        "uncertainty": _uncertainty(row, m),
    }


def _result(row: Mapping[str, Any], m: Metric, score: float, n_values: int) -> dict[str, Any]:
    lo, hi = _bounds(m.bound, n_values)
    stamp = _epoch(row.get("_created_at"))
    result: dict[str, Any] = {
        "evaluation_name": f"{m.key} · {condition_name(row)}",
        "source_data": {
            "dataset_name": "VAT Bench scenes",
            "source_type": "other",
            "additional_details": _strings(
                {
                    "split": row.get("split"),
                    "n_scenes": row.get("n_scenes"),
                    "scenes": row.get("scenes"),
                    "values_spec": (row.get("_specs") or {}).get("values"),
                }
            ),
        },
        "metric_config": {
            "evaluation_description": m.description,
            "lower_is_better": m.lower_is_better,
            "score_type": "continuous",
            "min_score": lo,
            "max_score": hi,
            "additional_details": _strings(
                {
                    "metric": m.key,
                    "better": "neither"
                    if m.key.startswith("gini")
                    else ("lower" if m.lower_is_better else "higher"),
                    "target": row.get("target"),
                    "direction": row.get("direction"),
                    "strategy": row.get("strategy"),
                    "family": row.get("family"),
                    "k": row.get("k"),
                    "step": row.get("step"),
                    "label": row.get("label"),
                    "variant": row.get("variant"),
                    "rating_source": row.get("rating_source"),
                    "caveat": row.get("caveat"),
                    "definition": "docs/METRICS.md of vat-bench",
                }
            ),
        },
        "score_details": _score_details(row, m, score),
    }
    if stamp:
        result["evaluation_timestamp"] = stamp
    return result


def _model_info(model: str, display_name: str, caveat: str | None) -> dict[str, Any]:
    provider = model.split("/", 1)[0] if "/" in model else "unknown"
    info: dict[str, Any] = {
        "name": display_name,
        "id": model,
        "developer": provider,
        "inference_platform": provider,
    }
    if caveat:
        info["additional_details"] = {"caveat": caveat}
    return info


def records(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The EEE records of a results document: one per model, in the order the models first appear.

    A metric whose value is undefined for a row (NaN, null in the document: e.g. a gain below
    ``metrics.epsilon``) is left out, since EEE requires a number; every interval that exists is carried.
    """
    prov = doc["provenance"]
    gen = prov["generator"]
    n_values = len(prov.get("values") or []) or 10
    runs = {r["run_id"]: r for r in prov.get("runs", [])}
    retrieved = _epoch(prov["created_at"]) or "0"
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for row in doc["rows"]:
        by_model.setdefault(row["model"], []).append(row)
    out = []
    for model, rows in by_model.items():
        results = []
        created = []
        for row in rows:
            run = runs.get(row["run_id"]) or {}
            enriched = {
                **row,
                "_created_at": run.get("created_at"),
                "_specs": (run.get("provenance") or {}).get("specs"),
            }
            if run.get("created_at"):
                created.append(run["created_at"])
            for m in METRICS:
                score = _number(row.get(m.key))
                if score is not None:
                    results.append(_result(enriched, m, score, n_values))
        record: dict[str, Any] = {
            "schema_version": EEE_SCHEMA_VERSION,
            "evaluation_id": f"vat-bench/{model}/{retrieved}",
            "retrieved_timestamp": retrieved,
            "source_metadata": {
                "source_name": "VAT Bench",
                "source_type": "evaluation_run",
                "source_organization_name": "unknown",
                "evaluator_relationship": "third_party",
                "additional_details": _strings(
                    {
                        "store": prov.get("store"),
                        "filters": prov.get("filters") or None,
                        "results_schema": f"{doc['schema']}@{doc['schema_version']}",
                    }
                ),
            },
            "model_info": _model_info(
                model, str(rows[0].get("display_name") or model), rows[0].get("caveat")
            ),
            "eval_library": {
                "name": "vat-bench",
                "version": gen.get("version") or "unknown",
                "additional_details": _strings(
                    {"git_revision": gen.get("git_revision"), "source": gen.get("source")}
                ),
            },
            "evaluation_results": results,
        }
        if created:
            record["evaluation_timestamp"] = _epoch(min(created))
        out.append(record)
    return out
