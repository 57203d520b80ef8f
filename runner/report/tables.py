"""Stage 5b, report: stored judgments → one metrics row per condition pair → tables, JSON and plots.

A *row* is one (run, step): model × strategy × target × direction (× checkpoint step). It is the dict of
:func:`runner.metrics.vat.vat_metrics` (METRICS.md §7) plus identity, coverage and labels. A *family* is a
set of rows that differ only in shot count or checkpoint step; it gets the paper's Table-2 layout.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runner.metrics import bias
from runner.metrics import vat as metrics
from runner.metrics.row import ReportRow
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
        f"{_f(mc['vat_rank_agreement'], 2)} (chance {_f(null['mean'], 2)}, q95 {_f(null['q95'], 2)}, "
        f"p {_f(null['p'], 3, signed=False)}) — {verdict}"
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


# ---------------------------------------------------------------- what is signal

TAX_LABELS = {"nvat": "nVAT", "rho_rms": "rho_rms", "gini": "Gini"}


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) else None


def null_of(row: ReportRow, key: str, value: str | None = None) -> dict[str, Any] | None:
    """The permutation null {mean, q95, p} of a tax statistic (of VAT(``value``) when ``value`` is given)."""
    null = row.get("null") or {}
    entry = (null.get("vat") or {}).get(value) if value is not None else null.get(key)
    return entry if isinstance(entry, dict) else None


def within_noise(row: ReportRow, key: str) -> bool | None:
    """True when the statistic cannot be told from its null, False when it can, None when unknown.

    The row's own ``signal`` verdict wins; then a ``<key>_within_noise`` flag; then the null's p-value
    against the alpha of the row's hub test (0.05 when none).
    """
    signal = row.get("signal") or {}
    if isinstance(signal.get(key), bool):
        return not signal[key]
    if f"{key}_within_noise" in (row.get("flags") or []):
        return True
    null = null_of(row, key)
    p = _finite((null or {}).get("p"))
    if p is None:
        return None
    return p >= float((row.get("hub_test") or {}).get("alpha") or 0.05)


def tax_text(row: ReportRow, key: str, digits: int = 2) -> str:
    """A tax number with its null, its bias-corrected estimate and interval, and its verdict.

    E.g. ``nVAT 0.52, null 0.47 (p 0.21), corrected +0.05 [0.00, 0.20] · within noise · needs ~180
    scenes``. The ``<key>_ci`` interval belongs to the corrected estimate (METRICS.md §8), so it is
    printed after it; a row without a null says so instead of showing a bare number.
    """
    fields: Mapping[str, Any] = row  # keys built from `key`: read as a plain mapping
    text = f"{TAX_LABELS.get(key, key)} {_f(_finite(fields.get(key)), digits, signed=False)}"
    null = null_of(row, key)
    if null is None:
        return text + " (no null in this row)"
    text += f", null {_f(null.get('mean'), digits, signed=False)} (p {_f(null.get('p'), 2, signed=False)})"
    corrected = _finite(fields.get(f"{key}_corrected"))
    if corrected is not None:
        text += f", corrected {corrected:+.{digits}f}"
    ci = fields.get(f"{key}_ci")
    if ci and _finite(ci[0]) is not None and _finite(ci[1]) is not None:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    if within_noise(row, key):
        text += " · within noise"
        needed = (row.get("scenes_needed") or {}).get(key)
        if needed:
            text += f" · needs ~{int(needed)} scenes"
    return text


def gain_spans_zero(row: ReportRow) -> bool:
    """True when the gain's interval contains 0: GND and amplification divide by a gain that may be 0."""
    ci = row.get("gain_ci") or [None, None]
    lo, hi = _finite(ci[0]), _finite(ci[1])
    return lo is not None and hi is not None and lo <= 0.0 <= hi


GAIN_CAVEAT = (
    "the gain's 95 % interval spans 0, so GND and amplification (shift ÷ gain) are not interpretable"
)


def coupling_band(n_scenes: Any) -> float | None:
    """Half-width of the null band of one coupling R[u, w] over n scenes: 1.96/√(n − 1).

    Under no coupling a Spearman correlation over n scenes has sd ≈ 1/√(n − 1) (METRICS.md §5b), so
    |R| below this is within the 95 % band of noise and plots mute it.
    """
    n = _finite(n_scenes)
    return 1.96 / float(np.sqrt(n - 1)) if n is not None and n > 1 else None


def tested_hubs(row: ReportRow) -> str:
    """The hubs as a report shows them.

    The tested ones, 'none (tested)' when the test found none, or an old row's descriptive top-k
    (labelled as untested).
    """
    hubs = list(row.get("hubs") or [])
    if "hub_test" in row:
        return ", ".join(hubs) if hubs else "none (tested)"
    return (", ".join(hubs) + " (top-k, untested)") if hubs else "–"


# ---------------------------------------------------------------- terminal tables


def _f(x: Any, digits: int = 3, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _signal_cell(row: ReportRow) -> str:
    """'signal', 'within noise', or 'no null' (a row from before the permutation null)."""
    verdict = within_noise(row, "nvat")
    return "no null" if verdict is None else ("within noise" if verdict else "signal")


def print_tables(rows: Sequence[ReportRow], fams: Sequence[dict[str, Any]], values: Sequence[str]) -> None:
    """Rich tables: a summary per condition pair, per-value detail, and Table-2-shaped families."""
    from rich.table import Table

    from runner.core.display import escape, out

    summary = Table(
        title="VAT summary (one row per model × strategy × target × direction)", title_justify="left"
    )
    for col in (
        "model",
        "strategy",
        "target",
        "dir",
        "gain [95% CI]",
        "nVAT, null (p), corrected [95% CI]",
        "tax",
        "Gini, null (p)",
        "±std (paper)",
        "hubs",
        "coverage",
        "flags",
    ):
        summary.add_column(col, overflow="fold")
    for r in rows:
        cov = r["coverage"]
        summary.add_row(
            escape(r["display_name"]),
            r["label"] if r["step"] is not None else r["strategy"],
            r["target"],
            "+" if r["direction"] == "reinforce" else "−",
            f"{_f(r['gain'])} {_ci(r['gain_ci'])}",
            tax_text(r, "nvat").removeprefix("nVAT "),
            _signal_cell(r),
            tax_text(r, "gini").removeprefix("Gini "),
            _f(r.get("nvat_std"), signed=False),
            escape(tested_hubs(r)),
            f"{cov.get('parsed', 0)}/{cov.get('planned', 0)}",
            ", ".join(r["flags"]) or "",
        )
    out.print(summary)
    for r in rows:
        _print_detail(r, values)
    for fam in fams:
        _print_family(rows, fam)


def _print_detail(r: ReportRow, values: Sequence[str]) -> None:
    """Per-value detail of one row: shift with its interval, GND, VAT(u) against its null, amplification."""
    from rich.table import Table

    from runner.core.display import escape, out

    caveat = gain_spans_zero(r)
    caption = [f"* {GAIN_CAVEAT}" if caveat else "", micro_text(r) or ""]
    detail = Table(
        title=f"{escape(r['display_name'])} · {r['label']} · {r['target']} {r['direction']} "
        f"· {r['n_scenes']} scenes · {rating_text(r)}",
        title_justify="left",
        caption="\n".join(c for c in caption if c) or None,
        caption_justify="left",
    )
    mark = "*" if caveat else ""
    for col in (
        "value",
        "mean shift [95% CI]",
        f"GND{mark}",
        "VAT(u)",
        "null q95 (p)",
        f"amplification{mark}",
    ):
        detail.add_column(col, justify="right" if col != "value" else "left")
    for v in values:
        name = f"[bold]{v}[/bold] (target)" if v == r["target"] else v
        null = null_of(r, "vat", v)
        detail.add_row(
            name,
            f"{_f(r['mean_shift'][v])} {_ci(r['mean_shift_ci'][v])}",
            _f(r["gnd"][v], 2),
            _f(r["vat"][v], 3, signed=False),
            f"{_f(null.get('q95'), 3, signed=False)} ({_f(null.get('p'), 2, signed=False)})" if null else "–",
            _f(r["amplification"][v], 2, signed=False),
        )
    out.print(detail)


def rating_text(row: ReportRow) -> str:
    """Which rating both conditions of the pair used, e.g. 'rating: expected (fallback 3 %)'."""
    share = _finite(row.get("rating_fallback_share"))
    return f"rating: {row.get('rating_source') or '–'}" + (
        f" (fallback {share:.0%})" if share is not None else ""
    )


def _print_family(rows: Sequence[ReportRow], fam: dict[str, Any]) -> None:
    """One family in the paper's Table-2 layout, with Pareto efficiency and hub persistence."""
    from rich.table import Table

    from runner.core.display import escape, out

    members = family_members(rows, fam)
    t2 = Table(
        title=f"Table 2 layout · {escape(fam['model'])} · {fam['target']} {fam['direction']} · {fam['scene_selection']}",
        title_justify="left",
    )
    t2.add_column("model × target")
    for m in members:
        t2.add_column(m["label"], justify="right")
    for name, cell in _family_lines(fam):
        t2.add_row(f"{fam['target']} · {name}", *[cell(m) for m in members])
    out.print(t2)
    out.print(
        f"hub persistence ({fam['hub_basis']}): {persistence_text(fam)} · "
        f"profile stability (Kendall τ_b): {_f(fam['profile_stability'], 2)}"
    )


def persistence_text(fam: dict[str, Any]) -> str:
    """Hub persistence of a family as 'security 1.00, power 0.50' ('–' when no value was ever a hub)."""
    return ", ".join(f"{v} {p:.2f}" for v, p in fam["hub_persistence"].items() if p > 0) or "–"


def _family_lines(fam: dict[str, Any]) -> list[tuple[str, Any]]:
    """(row name, cell function) of a Table-2 layout; shared by the terminal, Markdown, LaTeX and CSV."""
    return [
        ("Gain", lambda m: _f(m["gain"], 3)),
        ("nVAT", lambda m: _f(m["nvat"], 3, signed=False)),
        ("nVAT null (p)", lambda m: _null_cell(m, "nvat")),
        ("nVAT corrected", lambda m: _f(m.get("nvat_corrected"), 3)),
        ("corrected 95% CI", lambda m: _ci(m.get("nvat_ci")) or "–"),
        ("Gini", lambda m: _f(m["gini"], 3, signed=False)),
        ("±std (paper)", lambda m: _f(m.get("nvat_std"), 3, signed=False)),
        ("Pareto-efficient", lambda m: "yes" if fam["pareto"].get(m["label"]) else "no"),
    ]


def _null_cell(row: ReportRow, key: str) -> str:
    null = null_of(row, key)
    return f"{_f(null.get('mean'), 3, signed=False)} ({_f(null.get('p'), 2, signed=False)})" if null else "–"


# ---------------------------------------------------------------- paper tables: csv, markdown, latex, json

REPORT_FORMATS = ("table", "json", "csv", "markdown", "latex", "results", "eee")
"""`vat report format=`: terminal tables, JSON, tables a paper can paste, the versioned results document,
or its Every Eval Ever records (runner.report.eee)."""

SUMMARY_FIELDS: tuple[tuple[str, Any], ...] = (
    ("model", lambda r: r["display_name"]),
    ("strategy", lambda r: r["label"] if r["step"] is not None else r["strategy"]),
    ("target", lambda r: r["target"]),
    ("direction", lambda r: r["direction"]),
    ("scenes", lambda r: r["n_scenes"]),
    ("gain", lambda r: _f(r["gain"], 3)),
    ("gain 95% CI", lambda r: _ci(r["gain_ci"]) or "–"),
    ("nVAT", lambda r: _f(r["nvat"], 3, signed=False)),
    ("nVAT null (p)", lambda r: _null_cell(r, "nvat")),
    ("nVAT corrected", lambda r: _f(r.get("nvat_corrected"), 3)),
    ("corrected 95% CI", lambda r: _ci(r.get("nvat_ci")) or "–"),
    ("tax", _signal_cell),
    ("Gini", lambda r: _f(r["gini"], 3, signed=False)),
    ("Gini null (p)", lambda r: _null_cell(r, "gini")),
    ("nVAT ±std (paper)", lambda r: _f(r.get("nvat_std"), 3, signed=False)),
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
        [f"{fam['target']} · {name}", *[cell(m) for m in members]] for name, cell in _family_lines(fam)
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
    """Write the SVG plots of each row (:func:`row_plots`) and each family (Pareto) into ``folder``."""
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
            caveat="gain's 95 % interval spans 0: GND is not interpretable" if gain_spans_zero(row) else None,
        ),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]
