"""Stage 5b, report: stored judgments → one metrics row per condition pair, grouped into families.

A *row* is one (run, step): model × strategy × target × direction (× checkpoint step). It is the dict of
:func:`runner.metrics.vat.vat_metrics` (METRICS.md §7) plus identity, coverage and labels. A *family* is a
set of rows that differ only in shot count or checkpoint step; it gets the paper's Table-2 layout.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from runner.metrics import bias
from runner.metrics import vat as metrics
from runner.metrics.row import ReportRow
from runner.report.signal import num
from runner.store.states import AUTO_EXPECTED_SHARE, PairedStates, coverage, paired_states
from runner.store.store import Store

EMBEDDED_NOTE = (
    "{model} is a 135M-parameter model embedded for demonstration: its judgments show the pipeline "
    "working, they are not a measurement of anything. For real numbers run a capable judge, e.g. "
    "`vat run model=openai_gpt4o_mini` (OPENAI_API_KEY) or `vat run model.name=hosted_vllm/<model> "
    "model.api_base=http://host:8000/v1`."
)
SIMULATED_NOTE = "{model} is a SIMULATED judge with planted value structure, for validating the metrics only."
MOCK_NOTE = (
    "{model} is a fake judge that answers by hashing the prompt: its numbers mean nothing (tests only)."
)


def model_caveat(model: str) -> str | None:
    """The warning every report shows for the embedded or simulated models (None for real judges)."""
    if model.startswith("local/"):
        return EMBEDDED_NOTE.format(model=model)
    if model.startswith("sim/"):
        return SIMULATED_NOTE.format(model=model)
    if model.startswith("mock/"):
        return MOCK_NOTE.format(model=model)
    return None


def _runs(store: Store, model: str | None) -> list[dict[str, Any]]:
    sql = "SELECT run_id, model, strategy, target, direction, split, n_scenes, config, created_at FROM runs"
    rows = store.query(
        sql + (" WHERE model = ?" if model else "") + " ORDER BY model, target, direction, strategy",
        [model] if model else None,
    )
    keys = ("run_id", "model", "strategy", "target", "direction", "split", "n_scenes", "config", "created_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def family_of(strategy: str) -> tuple[str, int | None]:
    """('fewshot', k) for ``fewshot_<k>`` strategies; (strategy, None) otherwise."""
    match = re.fullmatch(r"(.+?)_(\d+)", strategy)
    return (match.group(1), int(match.group(2))) if match else (strategy, None)


def build_rows(
    store: Store,
    values: Sequence[str],
    params: dict[str, Any],
    model: str | None = None,
    circle_index: dict[str, int] | None = None,
) -> list[ReportRow]:
    """Compute one metrics row per (run, checkpoint step) in the store, over items paired by identity.

    A condition pair with no item answered in both conditions (an aborted or all-unparseable run) is
    left out with a warning naming the run, so one bad run cannot stop the report of the others.
    """
    runs = _runs(store, model)
    if not runs:
        return []
    params = dict(params)
    rating = params.pop("rating", "auto")
    run_ids = [r["run_id"] for r in runs]
    states = paired_states(store, run_ids, list(values), rating=rating)
    cover = coverage(store, run_ids)
    rows: list[ReportRow] = []
    kept: list[PairedStates] = []
    for run in runs:
        keys = sorted(k for k in states if k[0] == run["run_id"])
        if not keys:
            _skip(run, None, "it has no item planned in both conditions", cover)
        for key in keys:
            ps = states[key]
            why = _unusable(ps)
            if why:
                _skip(run, ps.step, why, cover)
                continue
            rows.append(_row(run, ps, values, params, rating, circle_index, cover))
            kept.append(ps)
    _attach_prompt_sensitivity(rows, kept, params)
    return rows


def _unusable(ps: PairedStates) -> str | None:
    """Why a condition pair cannot give a row (None when it can)."""
    if "mixed_units" in ps.flags:
        return "it mixes questions that name a value with questions that do not (two sample units)"
    if ps.n_items == 0:
        return "no item has a rating in both conditions"
    if not np.isfinite(ps.post - ps.pre).any():
        return "no value has both polarities answered in both conditions in any scene"
    return None


def _skip(run: dict[str, Any], step: int | None, why: str, cover: dict[str, dict[str, int]]) -> None:
    from runner.core import display

    c = cover.get(run["run_id"], {})
    at = "" if step is None or step < 0 else f" step {step}"
    display.warn(
        f"run {run['run_id']} ({run['model']}, {run['strategy']}, {run['target']} {run['direction']}){at} "
        f"is left out of the report: {why} ({c.get('parsed', 0)} of {c.get('planned', 0)} requests parsed)"
    )


def _row(
    run: dict[str, Any],
    ps: PairedStates,
    values: Sequence[str],
    params: dict[str, Any],
    rating: str,
    circle_index: dict[str, int] | None,
    cover: dict[str, dict[str, int]],
) -> ReportRow:
    """The report row of one condition pair: metrics, identity, unit, rating source, coverage, bias."""
    clustered = ps.unit == "scene_action"
    # Scene–action samples of one scene are not independent: intervals and nulls resample whole scenes.
    groups = ps.clusters if clustered else None
    vm = metrics.vat_metrics(
        ps.pre,
        ps.post,
        list(values),
        run["target"],
        run["direction"],
        circle_index=circle_index,
        groups=groups,
        **params,
    )
    step = ps.step
    fam, k = family_of(run["strategy"])
    cfg = json.loads(run["config"]) if isinstance(run["config"], str) else (run["config"] or {})
    finite = np.isfinite(ps.post - ps.pre).any(axis=1)
    flags = list(vm["flags"]) + ps.flags
    acq = bias.acquiescence(
        ps.acquiescence,
        b=int(params.get("bootstrap_b", 1000)),
        seed=int(params.get("seed", 0)),
        level=float(params.get("ci_level", 0.95)),
    )
    flags += [f"acquiescence_bias:{cond}" for cond, a in acq.items() if a["biased"]]
    label = f"k={k}" if k is not None else (f"step={step}" if step >= 0 else run["strategy"])
    row: ReportRow = {
        **vm,
        "run_id": run["run_id"],
        "model": run["model"],
        "display_name": (cfg.get("model") or {}).get("display_name") or run["model"],
        "strategy": run["strategy"],
        "family": fam if step < 0 else "checkpoint",
        "k": k,
        "step": None if step < 0 else step,
        "target": run["target"],
        "direction": run["direction"],
        "split": run["split"],
        "scenes": sorted({ps.scenes[c] for c in ps.clusters[finite]}),
        "n_scenes": len({int(c) for c in ps.clusters[finite]}),
        "n_samples": int(finite.sum()),
        "unit": ps.unit,
        "unit_params": _unit_params(ps),
        "variants": ps.variants,
        "variant": ps.variants[0] if len(ps.variants) == 1 else None,
        # What was asked (compile records it when it is not today's action question).
        "elicitation": dict(cfg.get("elicitation") or {"ask": "action"}),
        "coverage": cover.get(run["run_id"], {}),
        "coverage_by_value": ps.coverage_by_value,
        "n_items_paired": ps.n_items,
        "rating_source": ps.rating_source,
        "rating_fallback_share": ps.rating_fallback_share,
        "rating_rule": {"mode": rating, "expected_min_share": AUTO_EXPECTED_SHARE},
        "acquiescence": acq,
        "prompt_sensitivity": None,
        "micro_consistency": _micro_consistency(ps, values, params),
        "flags": list(dict.fromkeys(flags)),
        "caveat": model_caveat(run["model"]),
        "label": label,
    }
    return row


def _micro_consistency(
    ps: PairedStates, values: Sequence[str], params: dict[str, Any]
) -> dict[str, Any] | None:
    """The 56-D vs 10-D check of a scene-unit pair whose values have several micro-values (else None)."""
    m = ps.micro
    if m is None or ps.unit != "scene" or len(m.ids) <= len(values):
        return None
    return metrics.micro_consistency(
        m.post - m.pre,
        m.value_of,
        list(values),
        min_scenes=int(params.get("min_scenes", 5)),
        seed=int(params.get("seed", 0)),
        alpha=float(params.get("alpha", 0.05)),
    )


def micro_text(row: ReportRow) -> str | None:
    """One line on the 56-D vs 10-D check, or None when the row has none."""
    mc = row.get("micro_consistency")
    if not mc:
        return None
    if mc.get("not_computed"):
        return (
            f"{mc['n_micro']} micro-values vs {len(row['vat'])} values: not computed ({mc['not_computed']})"
        )
    null = mc["null"]
    verdict = "beats chance" if mc["beats_chance"] else "within chance: the micro-values add no support"
    return (
        f"{mc['n_micro']} micro-values vs {len(row['vat'])} values: VAT(u) rank agreement "
        f"{num(mc['vat_rank_agreement'], 2)} (chance {num(null['mean'], 2)}, q95 {num(null['q95'], 2)}, "
        f"p {num(null['p'], 3, signed=False)}) — {verdict}"
    )


def _unit_params(ps: PairedStates) -> dict[str, Any]:
    """What one sample is, where its value and its sign come from, and what clusters inference uses."""
    if ps.unit == "scene_action":
        return {
            "sample": "(scene, action)",
            "value": "asked value; states average its asked micro-values",
            "sign": "the answer's own (how far the action honours or goes against the value)",
            "cluster": "scene",
            "n_clusters": len(ps.scenes),
        }
    return {
        "sample": "scene",
        "value": "the action's value label",
        "sign": "polarity (express +1, suppress -1)",
        "cluster": "scene",
        "n_clusters": len(ps.scenes),
    }


def _attach_prompt_sensitivity(
    rows: list[ReportRow], states: list[PairedStates], params: dict[str, Any]
) -> None:
    """``prompt_sensitivity`` of every row: across the wordings inside its run, else across its sibling runs.

    Sibling runs are rows of the same model, strategy, target, direction, step, split, unit and
    elicitation (what is asked), each asked in one wording, with different wordings; they are compared
    on their common samples.
    """
    seed, min_scenes = int(params.get("seed", 0)), int(params.get("min_scenes", 5))
    for row, ps in zip(rows, states, strict=True):
        if len(ps.by_variant) > 1:
            deltas = {v: post - pre for v, (pre, post) in ps.by_variant.items()}
            sens = bias.prompt_sensitivity(
                deltas,
                ps.clusters,
                ps.values.index(row["target"]),
                _sign(row),
                seed=seed,
                min_scenes=min_scenes,
            )
            row["prompt_sensitivity"] = sens and {**sens, "source": "variants within the run"}
    siblings: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row["variant"] is not None:
            key = (
                row["model"],
                row["strategy"],
                row["target"],
                row["direction"],
                row["step"],
                row["split"],
                row["unit"],
                _asked(row["elicitation"] or {}),
            )
            siblings[key].append(i)
    for members in siblings.values():
        # Siblings judge one wording each; a row of several wordings (variant None) is not one of them.
        by_variant = {v: i for i in members if (v := rows[i]["variant"]) is not None}
        if len(by_variant) < 2:
            continue
        sens = _across_runs(by_variant, rows, states, seed, min_scenes)
        for i in by_variant.values():
            if rows[i]["prompt_sensitivity"] is None:
                rows[i]["prompt_sensitivity"] = sens


def _across_runs(
    by_variant: dict[str, int],
    rows: list[ReportRow],
    states: list[PairedStates],
    seed: int,
    min_scenes: int,
) -> dict[str, Any] | None:
    """Prompt sensitivity over sibling runs (one wording each), on the samples they share."""
    common = sorted(set.intersection(*(set(states[i].samples) for i in by_variant.values())))
    if not common:
        return None
    deltas, scene_of = {}, {}
    for variant, i in by_variant.items():
        ps = states[i]
        pos = np.searchsorted(ps.samples, common)
        deltas[variant] = (ps.post - ps.pre)[pos]
        scene_of.update({s: ps.scenes[ps.clusters[p]] for s, p in zip(common, pos, strict=True)})
    scenes = sorted(set(scene_of.values()))
    clusters = np.searchsorted(scenes, [scene_of[s] for s in common])
    first = rows[next(iter(by_variant.values()))]
    sens = bias.prompt_sensitivity(
        deltas,
        clusters,
        states[next(iter(by_variant.values()))].values.index(first["target"]),
        _sign(first),
        seed=seed,
        min_scenes=min_scenes,
    )
    return sens and {
        **sens,
        "source": "sibling runs",
        "runs": {v: rows[i]["run_id"] for v, i in by_variant.items()},
    }


def _asked(elicitation: dict[str, Any]) -> tuple[str, Any]:
    """What an elicitation asks, without its wording: the question type (and which micro-values)."""
    ask = elicitation.get("ask", "action")
    return ask, elicitation.get("micro_values") if ask == "micro_value" else None


def _sign(row: ReportRow) -> int:
    return 1 if row["direction"] in ("reinforce", 1, "+1", "1") else -1


def families(rows: Sequence[ReportRow]) -> list[dict[str, Any]]:
    """Group rows that differ only in k or checkpoint step; compute family metrics for groups of ≥ 2.

    A family holds one scene selection: rows of the same condition judged on different scene sets
    (a ``max_scenes=2`` run next to the full release) go to different families, because their taxes
    and hubs are not comparable. Within a family a label (``k=4``) appears once: a repeated run of the
    same condition on the same scenes keeps the row listed last.
    """
    groups: dict[tuple[Any, ...], dict[str, ReportRow]] = defaultdict(dict)
    for r in rows:
        if r["k"] is not None or r["step"] is not None:
            key = (r["model"], r["family"], r["target"], r["direction"], selection_key(r))
            groups[key][r["label"]] = r
    out = []
    for (model, fam, target, direction, _sel), by_label in sorted(groups.items(), key=lambda kv: kv[0][:4]):
        if len(by_label) < 2:
            continue
        members = sorted(by_label.values(), key=lambda r: (r["k"] or 0, r["step"] or 0))
        out.append(
            {
                "model": model,
                "family": fam,
                "target": target,
                "direction": direction,
                "n_scenes": members[0].get("n_scenes"),
                "scene_selection": selection_key(members[0]),
                "labels": [m["label"] for m in members],
                "run_ids": [m["run_id"] for m in members],
                # hub persistence counts the rows' `hubs`: tested hubs in rows that carry a hub test,
                # the descriptive top-k (chance, under no coupling) in rows from before it
                "hub_basis": "tested" if all("hub_test" in m for m in members) else "top-k (untested)",
                **metrics.family_metrics(members),
            }
        )
    return out


def selection_key(row: ReportRow) -> str:
    """A short, stable name of the scene set a row was computed on (its count and a hash of its ids)."""
    import hashlib

    scenes = sorted(row.get("scenes") or [])
    digest = hashlib.sha256("\n".join(scenes).encode()).hexdigest()[:8]
    return f"{len(scenes)} scenes #{digest}"


def family_members(rows: Sequence[ReportRow], fam: dict[str, Any]) -> list[ReportRow]:
    """The rows of one family, in its label order."""
    by_id = {r["run_id"]: r for r in rows}
    picked = [by_id[i] for i in fam.get("run_ids", []) if i in by_id]
    by_label = {r["label"]: r for r in picked}
    return [by_label[label] for label in fam["labels"] if label in by_label]


# ---------------------------------------------------------------- filters

FILTER_KEYS = ("model", "strategy", "target", "direction")
"""Row fields `vat report` filters on (``target=security strategy=fewshot_8 report.model=...``)."""


def filter_rows(rows: Sequence[ReportRow], filters: Mapping[str, Sequence[str]]) -> list[ReportRow]:
    """The rows whose every filtered field is one of the allowed values (an empty filter allows all)."""
    return [
        r for r in rows if all(not allowed or str(r.get(key)) in allowed for key, allowed in filters.items())
    ]


def stored_models(store: Store) -> list[str]:
    """Every model with a run in the store (for messages that say what is there)."""
    if not store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'runs'"):
        return []
    return [m for (m,) in store.query("SELECT DISTINCT model FROM runs ORDER BY model")]


def no_rows_message(
    store_path: str,
    model: str | None,
    filters: dict[str, Sequence[str]],
    rows: Sequence[ReportRow],
    models: Sequence[str],
) -> str:
    """Why `vat report` has nothing to show, in one sentence that names what the store does hold."""
    if not models:
        return f"no completed runs in {store_path}; run `vat run` first"
    if model and model not in models:
        return f"no run in {store_path} matches report.model={model}; the store holds runs of: {', '.join(models)}"
    asked = " ".join(f"{k}={','.join(v)}" for k, v in filters.items() if v)
    held = {k: sorted({str(r.get(k)) for r in rows}) for k, v in filters.items() if v}
    listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in held.items())
    return f"no condition in {store_path} matches {asked}; the store holds {listed or 'no completed condition pairs'}"
