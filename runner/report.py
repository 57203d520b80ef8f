"""Stage 5b, report: stored judgments → one metrics row per condition pair → tables, JSON and plots.

A *row* is one (run, step): model × strategy × target × direction (× checkpoint step). It is the dict of
:func:`runner.metrics.vat_metrics` (METRICS.md §7) plus identity, coverage and labels. A *family* is a
set of rows that differ only in shot count or checkpoint step; it gets the paper's Table-2 layout.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runner import bias, metrics
from runner.states import AUTO_EXPECTED_SHARE, PairedStates, coverage, paired_states
from runner.store import Store

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
) -> list[dict[str, Any]]:
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
    rows, kept = [], []
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
    from runner import display

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
) -> dict[str, Any]:
    """The report row of one condition pair: metrics, identity, unit, rating source, coverage, bias."""
    clustered = ps.unit == "scene_action"
    # Scene–action samples of one scene are not independent: intervals and nulls resample whole scenes.
    groups = ps.clusters if clustered else None
    row = metrics.vat_metrics(
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
    flags = list(row.get("flags") or []) + ps.flags
    acq = bias.acquiescence(
        ps.acquiescence,
        b=int(params.get("bootstrap_b", 1000)),
        seed=int(params.get("seed", 0)),
        level=float(params.get("ci_level", 0.95)),
    )
    flags += [f"acquiescence_bias:{cond}" for cond, a in acq.items() if a["biased"]]
    row.update(
        {
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
            "flags": list(dict.fromkeys(flags)),
            "caveat": model_caveat(run["model"]),
        }
    )
    row["label"] = f"k={k}" if k is not None else (f"step={step}" if step >= 0 else run["strategy"])
    return row


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
    rows: list[dict[str, Any]], states: list[PairedStates], params: dict[str, Any]
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
                _asked(row["elicitation"]),
            )
            siblings[key].append(i)
    for members in siblings.values():
        by_variant = {rows[i]["variant"]: i for i in members}
        if len(by_variant) < 2:
            continue
        sens = _across_runs(by_variant, rows, states, seed, min_scenes)
        for i in by_variant.values():
            if rows[i]["prompt_sensitivity"] is None:
                rows[i]["prompt_sensitivity"] = sens


def _across_runs(
    by_variant: dict[str, int],
    rows: list[dict[str, Any]],
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


def _sign(row: dict[str, Any]) -> int:
    return 1 if row["direction"] in ("reinforce", 1, "+1", "1") else -1


def families(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows that differ only in k or checkpoint step; compute family metrics for groups of ≥ 2."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["k"] is not None or r["step"] is not None:
            groups[(r["model"], r["family"], r["target"], r["direction"])].append(r)
    out = []
    for (model, fam, target, direction), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda r: (r["k"] or 0, r["step"] or 0))
        fam_metrics = metrics.family_metrics(members)
        out.append(
            {
                "model": model,
                "family": fam,
                "target": target,
                "direction": direction,
                "labels": [m["label"] for m in members],
                **fam_metrics,
            }
        )
    return out


# ---------------------------------------------------------------- terminal tables


def _f(x: Any, digits: int = 3, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def print_tables(
    rows: Sequence[dict[str, Any]], fams: Sequence[dict[str, Any]], values: Sequence[str]
) -> None:
    """Rich tables: a summary per condition pair, per-value detail, and Table-2-shaped families."""
    from rich.table import Table

    from runner.display import escape, out

    summary = Table(
        title="VAT summary (one row per model × strategy × target × direction)", title_justify="left"
    )
    for col in (
        "model",
        "strategy",
        "target",
        "dir",
        "gain [95% CI]",
        "nVAT ± std",
        "Gini",
        "hubs",
        "circ.",
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
            f"{_f(r['nvat'], signed=False)} ± {_f(r['nvat_std'], signed=False)}",
            _f(r["gini"], signed=False),
            ", ".join(r["hubs"] or []),
            _f(r["circumplex_consistency"], 2),
            f"{cov.get('parsed', 0)}/{cov.get('planned', 0)}",
            ", ".join(r["flags"]) or "",
        )
    out.print(summary)
    for r in rows:
        detail = Table(
            title=f"{escape(r['display_name'])} · {r['label']} · {r['target']} {r['direction']} "
            f"· {r['n_scenes']} scenes",
            title_justify="left",
        )
        for col in ("value", "mean shift [95% CI]", "GND", "VAT(u)", "amplification"):
            detail.add_column(col, justify="right" if col != "value" else "left")
        for v in values:
            name = f"[bold]{v}[/bold] (target)" if v == r["target"] else v
            detail.add_row(
                name,
                f"{_f(r['mean_shift'][v])} {_ci(r['mean_shift_ci'][v])}",
                _f(r["gnd"][v], 2),
                _f(r["vat"][v], 3, signed=False),
                _f(r["amplification"][v], 2, signed=False),
            )
        out.print(detail)
    for fam in fams:
        members = [
            r
            for r in rows
            if r["model"] == fam["model"]
            and r["target"] == fam["target"]
            and r["direction"] == fam["direction"]
            and r["label"] in fam["labels"]
        ]
        t2 = Table(
            title=f"Table 2 layout · {escape(fam['model'])} · {fam['target']} {fam['direction']}",
            title_justify="left",
        )
        t2.add_column("model × target")
        for m in members:
            t2.add_column(m["label"], justify="right")
        for name, key in (("Gain", "gain"), ("nVAT", "nvat"), ("Gini", "gini"), ("±std", "nvat_std")):
            t2.add_row(f"{fam['target']} · {name}", *[_f(m[key], 3, signed=key == "gain") for m in members])
        t2.add_row("Pareto-efficient", *["yes" if fam["pareto"].get(m["label"]) else "no" for m in members])
        out.print(t2)
        persist = ", ".join(f"{v} {p:.2f}" for v, p in fam["hub_persistence"].items() if p > 0)
        out.print(
            f"hub persistence: {persist or '–'} · profile stability (Kendall τ_b): {_f(fam['profile_stability'], 2)}"
        )


def write_plots(
    rows: Sequence[dict[str, Any]], fams: Sequence[dict[str, Any]], values: Sequence[str], folder: Path
) -> list[Path]:
    """Write the SVG plots of each row (heatmap, radar, GND) and each family (Pareto) into ``folder``."""
    from runner import plots

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rows:
        stem = f"{_slug(r['model'])}__{r['strategy']}{'' if r['step'] is None else '_' + str(r['step'])}__{r['target']}_{r['direction']}"
        title = f"{r['display_name']} · {r['label']} · {r['target']} {r['direction']}"
        for name, svg in (
            ("coupling", plots.coupling_heatmap(r["coupling"], list(values), f"Coupling R · {title}")),
            ("radar", plots.circumplex_radar(r["vat"], list(values), f"VAT(u) on the circle · {title}")),
            ("gnd", plots.gnd_bars(r["gnd"], r["target"], f"GND · {title}")),
        ):
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
            for r in rows
            if r["model"] == fam["model"]
            and r["target"] == fam["target"]
            and r["direction"] == fam["direction"]
            and r["label"] in fam["labels"]
        ]
        path = (
            folder / f"{_slug(fam['model'])}__{fam['family']}__{fam['target']}_{fam['direction']}__pareto.svg"
        )
        path.write_text(
            plots.pareto_plot(pts, f"Gain vs nVAT · {fam['model']} · {fam['target']} {fam['direction']}")
        )
        written.append(path)
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]
