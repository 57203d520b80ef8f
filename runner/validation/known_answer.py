"""Known-answer validation (`vat validate-metrics`): the pipeline must recover a planted value structure.

For each simulated judge profile (``conf/sim/*.yaml``; the generative model is in
``runner/providers/sim.py``) this runs ``sim/<profile>`` through the ordinary pipeline — compile, LiteLLM,
the DuckDB store, value states, :func:`runner.metrics.vat.vat_metrics` via the report — on the shipped scenes,
and compares each measured metric with what the planted parameters imply:

- **planted**: the metric's population value, computed by simulating the same generative model on
  40 000 scenes (vectorised; values with no planted shift get exactly 0 shift and 0 coupling);
- **expected at n**: the 99.9 % range of the metric over 2 000 simulated datasets with as many scenes
  as were measured (finite-sample metrics such as nVAT or mean |GND| sit above their population value:
  noise alone correlates shifts);
- **measured**: the pipeline's report row, with its 95 % bootstrap CI where the report has one.

Checks (all must pass for exit code 0):

- *value states = generative model*: the value states the pipeline stored and aggregated (LiteLLM,
  DuckDB, ``runner.store.states``) equal, to 1e-9, those computed straight from the simulated judge's answers
  to the same requests (:func:`reference_states`) — exact, no chance involved (temperature 0 only);
- *mean shifts*: every value's planted mean shift (the target's is the gain) lies within the measured
  mean ± z·se, z for simultaneous 99.9 % over the values (Bonferroni; a gate that is run on every
  change must rarely fail by chance, while a real fault — a flipped polarity, a wrong pairing, a lost
  intervention — moves shifts by many standard errors). How many values fall within the simultaneous
  95 % intervals is shown as well;
- *mean |GND| off target*, *nVAT*, *coupling pattern* (Pearson correlation of the measured coupling
  matrix with the planted one, over value pairs) and *circumplex consistency*: inside the 99.9 % range
  expected at n; for a circle-shaped profile the circumplex consistency must also be positive, as the
  theory says, in either direction;
- *taxed values*: a value u ≠ target is **taxed** when VAT(u) exceeds the 99th percentile of the
  largest off-target VAT(u) over 2 000 column-wise permutations of the shifts (a permutation destroys
  every coupling and keeps each value's shifts: family-wise 1 % false alarms). Only planted-coupled
  values may be taxed, a profile with no off-target effect must have none, and a planted hub (a value
  with a ``coupling`` entry) must be taxed where the model says it is taxed in ≥ 99 % of datasets of
  this size;
- *top hub*: the report's first hub must be the top hub of at least one simulated dataset of this
  size (when any value is planted-coupled).

- *instrument* (``instrument=fast`` by default, ``full``, ``off``): over fresh simulated datasets at
  the shipped sizes (:func:`instrument_study`), the report's calibrated tax (METRICS.md §8) must cover
  the planted nVAT, rho_rms and Gini in ≥ 90 % of datasets, its corrected nVAT² must average 0 where
  nothing is coupled, its tested hubs must name an uncoupled value in ≤ 5 % of datasets, and a planted
  hub must be found in ≥ 80 % at the larger size — each a 1 % binomial test of the frequency.

Chance alone fails a profile's checks with probability about 0.1 % per mean-shift family and per range
check, 1 % per instrument check, plus the 1 % of the taxed-value test where some off-target value is uncoupled: about 3 % for the
three shipped profiles together. The simulated data change only when scenes (or their ids) change —
the judge's noise is drawn from item and condition identities, not from prompt wording.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from runner.core import display
from runner.core.errors import VatError
from runner.execute.providers.sim import Profile
from runner.metrics import vat as metrics
from runner.validation.population import (
    EXPECTED_REPS,
    Frame,
    expected_at,
    planted,
    summarise,
    taxed_values,
)

RANGE_LEVEL = 0.999
SHIFT_LEVEL = 0.999
SHOWN_LEVEL = 0.95
_TIE = 0.02  # planted VATs within this of each other count as tied (Monte Carlo error of the population)


def strategy_dose(profile: Profile, strategy: Any) -> float:
    """The dose the simulated judge reads from a strategy: k/(k + k_half) for fewshot, else a constant."""
    kind = strategy.kind.value
    if kind == "fewshot":
        return profile.dose("fewshot", int(strategy.params.get("k", 4)))
    if kind == "system_prompt":
        return profile.dose("system_prompt")
    raise VatError(
        f"validate-metrics runs fewshot or system_prompt strategies, not {strategy.id!r} ({kind}); "
        "set strategy=fewshot_4 or strategy=system_prompt",
        2,
    )


# ---------------------------------------------------------------------------------------------------
# Planted vs measured
# ---------------------------------------------------------------------------------------------------


@dataclass
class Check:
    """One row of the planted-vs-measured table."""

    quantity: str
    planted: str
    expected: str
    measured: str
    ok: bool | None
    """None: shown, not checked (nothing planted to compare with)."""


@dataclass
class ProfileResult:
    """The validation of one profile."""

    profile: str
    model: str
    strategy: str
    target: str
    direction: str
    dose: float
    n_scenes: int
    run_id: str
    checks: list[Check] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.ok is not False for c in self.checks)


def fmt_number(x: float, digits: int = 3) -> str:
    """A signed number with ``digits`` decimals, or a dash for a missing or infinite one."""
    return "–" if x is None or not math.isfinite(x) else f"{x:+.{digits}f}"


def _range(x: np.ndarray, level: float = RANGE_LEVEL) -> tuple[float, float]:
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan, math.nan
    return float(np.quantile(a, (1 - level) / 2)), float(np.quantile(a, 1 - (1 - level) / 2))


def _in(x: float, lo_hi: tuple[float, float]) -> bool:
    return math.isfinite(x) and lo_hi[0] <= x <= lo_hi[1]


def _range_check(name: str, key: str, pop: dict, exp: dict, meas: dict, extra: str = "") -> Check:
    """A finite-sample metric: measured must lie in the range expected at n (:data:`RANGE_LEVEL`)."""
    lo_hi = _range(exp[key])
    value = float(meas[key][0])
    planted_value = float(pop[key][0])
    if not math.isfinite(planted_value) and key in ("pattern", "circumplex"):
        return Check(
            name,
            "– (nothing planted)",
            f"[{fmt_number(lo_hi[0])}, {fmt_number(lo_hi[1])}]",
            fmt_number(value) + extra,
            None,
        )
    return Check(
        name,
        fmt_number(planted_value),
        f"[{fmt_number(lo_hi[0])}, {fmt_number(lo_hi[1])}]",
        fmt_number(value) + extra,
        _in(value, lo_hi),
    )


def _hub_names(vat: np.ndarray, fr: Frame, k: int = 3) -> list[str]:
    """Planted top-k hubs (target excluded), ties with the k-th included; none when nothing is coupled."""
    off = [(float(vat[u]), fr.values[u]) for u in range(len(vat)) if u != fr.t and vat[u] > _TIE]
    off.sort(reverse=True)
    if not off:
        return []
    cut = off[min(k, len(off)) - 1][0] - _TIE
    return [name for v, name in off if v >= cut]


def compare(
    profile: Profile,
    shift: np.ndarray,
    fr: Frame,
    delta: np.ndarray,
    row: dict[str, Any],
    reps: int = EXPECTED_REPS,
) -> tuple[list[Check], list[dict[str, Any]]]:
    """The checks and per-value detail of one measured run (``delta``: scenes × values shifts)."""
    pop = planted(profile, shift, fr)
    r_ref = pop["coupling"][0]
    exp = expected_at(profile, shift, fr, len(delta), r_ref, reps)
    meas = summarise(delta[None], fr, r_ref)
    n = np.isfinite(delta).sum(axis=0)
    se = np.nanstd(delta, axis=0, ddof=1) / np.sqrt(n)
    z = _simultaneous_z(SHIFT_LEVEL, len(fr.values))
    m_pop, m_meas = pop["mean_shift"][0], meas["mean_shift"][0]
    within = np.abs(m_meas - m_pop) <= z * se
    shown = np.abs(m_meas - m_pop) <= _simultaneous_z(SHOWN_LEVEL, len(fr.values)) * se
    checks = [_gain_check(row, pop, exp, within[fr.t])]
    checks.append(
        Check(
            f"mean shifts in simultaneous {SHIFT_LEVEL:.1%} CI",
            "m(v) per value (below)",
            "",
            f"{int(within.sum())}/{len(within)} values ({SHOWN_LEVEL:.0%}: {int(shown.sum())}/{len(shown)})",
            bool(within.all()),
        )
    )
    checks.append(_range_check("mean |GND| off target", "ot_abs", pop, exp, meas))
    checks.append(_range_check("coupling pattern r(R, R_planted)", "pattern", pop, exp, meas))
    checks.append(_range_check("nVAT", "nvat", pop, exp, meas, f" ± {row.get('nvat_std') or math.nan:.3f}"))
    checks.append(_circumplex_check(profile, pop, exp, meas))
    checks += _hub_checks(profile, shift, fr, delta, row, pop, exp)
    detail = [
        {
            "value": v,
            "planted_shift": float(m_pop[i]),
            "measured_shift": float(m_meas[i]),
            "ci": [float(m_meas[i] - z * se[i]), float(m_meas[i] + z * se[i])],
            "within": bool(within[i]),
            "planted_gnd": float(pop["gnd"][0, i]),
            "measured_gnd": float(meas["gnd"][0, i]),
            "planted_vat": float(pop["vat"][0, i]),
            "measured_vat": float(meas["vat"][0, i]),
        }
        for i, v in enumerate(fr.values)
    ]
    return checks, detail


def _circumplex_check(profile: Profile, pop: dict, exp: dict, meas: dict) -> Check:
    """In range at n; and positive, as the theory says, when the spillover follows the circle.

    A circle-shaped profile moves the target's neighbours with it and its opposites against it, in
    either direction: "positive = neighbours move with the target" (METRICS.md §5) must then hold for a
    suppressing intervention too, whatever the population value of the metric as implemented.
    """
    check = _range_check("circumplex consistency", "circumplex", pop, exp, meas)
    iv = profile.doc.intervention
    if iv.offtarget == "circle" and iv.amplitude > 0 and not any(iv.coupling.values()):
        check.planted += " (theory: > 0)"
        check.ok = bool(check.ok) and float(meas["circumplex"][0]) > 0
    return check


def _simultaneous_z(level: float, k: int) -> float:
    """The z of a two-sided interval with simultaneous coverage ``level`` over ``k`` values (Bonferroni)."""
    return NormalDist().inv_cdf(1 - (1 - level) / (2 * k))


def _gain_check(row: dict[str, Any], pop: dict, exp: dict, within: bool) -> Check:
    lo_hi = _range(exp["gain"])
    ci = row.get("gain_ci") or [math.nan, math.nan]
    return Check(
        "gain",
        fmt_number(float(pop["gain"][0])),
        f"[{fmt_number(lo_hi[0])}, {fmt_number(lo_hi[1])}]",
        f"{fmt_number(row['gain'])} [{fmt_number(ci[0])}, {fmt_number(ci[1])}]",
        bool(within),
    )


def _hub_checks(
    profile: Profile, shift: np.ndarray, fr: Frame, delta: np.ndarray, row: dict, pop: dict, exp: dict
) -> list[Check]:
    """Top hub and taxed values against the planted coupling and what is expected at n scenes."""
    planted_hubs = _hub_names(pop["vat"][0], fr)
    counts = Counter(fr.values[i] for i in exp["top_hub"])
    share = {v: c / len(exp["top_hub"]) for v, c in counts.most_common(3)}
    typical = ", ".join(f"{v} {p:.0%}" for v, p in share.items() if p >= 0.005)
    measured_hubs = list(row.get("hubs_top_k") or [])
    # Plausible under the planted model: the top hub of at least one simulated dataset of this size.
    hub_ok = bool(measured_hubs) and counts[measured_hubs[0]] > 0 if planted_hubs else None
    checks = [
        Check(
            "hubs (top 3)",
            ", ".join(planted_hubs) or "none",
            f"top hub: {typical}",
            ", ".join(measured_hubs),
            hub_ok,
        )
    ]
    coupled = {fr.values[u] for u in range(len(shift)) if u != fr.t and shift[u] != 0}
    hubs = sorted(v for v, h in profile.doc.intervention.coupling.items() if h != 0 and v != fr.target)
    taxed, threshold, _ = taxed_values(delta, fr)
    # A planted hub must be found only where the model says it nearly always is (≥ 99 % of datasets).
    power = {h: float(np.mean(exp["vat"][:, fr.values.index(h)] > threshold)) for h in hubs}
    required = {h for h, p in power.items() if p >= 0.99}
    ok = set(taxed) <= coupled and required <= set(taxed)
    if not coupled:
        planted_text = "none"
    elif hubs:
        planted_text = ", ".join(hubs) + " (hub)"
    else:
        planted_text = f"any of {len(coupled)}"
    expected = ", ".join(f"{h} taxed in {p:.0%}" for h, p in power.items())
    checks.append(
        Check(f"taxed values (VAT > {threshold:.3f})", planted_text, expected, ", ".join(taxed) or "none", ok)
    )
    return checks


# ---------------------------------------------------------------------------------------------------
# Running the pipeline
# ---------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """One profile's run, composed and resolved: config, spec index, profile, frame and planted shift."""

    name: str
    cfg: Any
    overrides: list[str]
    index: Any
    profile: Profile
    fr: Frame
    shift: np.ndarray
    dose: float


def prepare(name: str, base: list[str], store_path: str) -> Prepared:
    """Compose the run of ``sim/<name>`` (profile's strategy, target, direction unless ``base`` sets them)."""
    from runner.config import compose
    from runner.execute.providers import sim
    from runner.spec.load import load_index

    index = load_index(compose(base).spec_dir, check_lock=False)
    circle = {v.id: v.circle_index for v in index.values}
    profile = sim.load_profile(name, index.value_ids, circle)
    given = {o.split("=", 1)[0] for o in base}
    v = profile.doc.validation
    defaults = (("strategy", v.strategy), ("target", v.target), ("direction", v.direction))
    mine = [f"model.name=sim/{name}"] + [f"{k}={x}" for k, x in defaults if k not in given]
    overrides = mine + base + [f"store.path={store_path}"]
    cfg = compose(overrides)
    strategy = index.strategies.get(cfg.strategy)
    if strategy is None:
        raise VatError(f"strategy={cfg.strategy!r} is not defined in spec/strategies/", 2)
    d = 1 if cfg.direction.value == "reinforce" else -1
    dose = strategy_dose(profile, strategy)
    fr = Frame(list(index.value_ids), index.value_ids.index(cfg.target), d, circle)
    return Prepared(name, cfg, overrides, index, profile, fr, profile.shift(cfg.target, d, dose), dose)


def reference_states(prep: Prepared, requests: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Value states (pre, post, scene ids) computed straight from the generative model, without the pipeline.

    Each request is answered by a fresh :class:`~runner.execute.providers.sim.SimJudge`, its rating read as the
    pipeline reads it (expected rating from the same logprobs, else the digit), and the states averaged by
    :func:`runner.metrics.vat.value_states` — an independent reference for the SQL of ``runner.store.states``.
    """
    from runner.execute.parse import expected_rating, top_logprobs_of_answer
    from runner.execute.providers.sim import SimJudge, logprobs_payload

    judge = SimJudge(prep.index)
    model = prep.cfg.model
    # Read the config once: OmegaConf attribute access costs ~50 µs, far more than an answer.
    temperature, top_n = float(model.temperature), int(model.top_logprobs)
    mode = str(
        prep.cfg.metrics.rating
    )  # as runner.store.states reads it: text, expected, or auto (expected first)
    use_logprobs = bool(model.logprobs) and mode != "text"
    scenes = sorted({r.scene_id for r in requests})
    micro = sorted({r.micro_value or "" for r in requests})
    out = {}
    for condition in ("pre", "post"):
        rows = [r for r in requests if r.condition == condition]
        e = []
        for r in rows:
            ans = judge.answer(r.model.removeprefix("sim/"), r.messages, temperature)
            rating = math.nan if mode == "expected" else float(ans.rating)
            if use_logprobs:
                top = top_logprobs_of_answer(logprobs_payload(ans, top_n))
                rating = expected_rating(top) or rating
            e.append((1.0 if r.polarity == "express" else -1.0) * (rating - 3.0) / 2.0)
        out[condition] = metrics.value_states(
            [scenes.index(r.scene_id) for r in rows],
            [prep.fr.values.index(r.value) for r in rows],
            [micro.index(r.micro_value or "") if r.micro_value else -1 for r in rows],
            e,
            len(scenes),
            len(prep.fr.values),
        )
    return out["pre"], out["post"], scenes


def _row(prep: Prepared, e_pre: np.ndarray, e_post: np.ndarray) -> dict[str, Any]:
    """The report row of a pair of value-state arrays (what `vat report` computes from the store)."""
    params = {k: v for k, v in dict(prep.cfg.metrics).items() if k != "rating"}
    return metrics.vat_metrics(
        e_pre, e_post, prep.fr.values, prep.fr.target, prep.fr.d, circle_index=prep.fr.circle_index, **params
    )


def _result(prep: Prepared, delta: np.ndarray, row: dict[str, Any], run_id: str, reps: int) -> ProfileResult:
    checks, detail = compare(prep.profile, prep.shift, prep.fr, delta, row, reps)
    return ProfileResult(
        profile=prep.name,
        model=f"sim/{prep.name}",
        strategy=str(prep.cfg.strategy),
        target=prep.fr.target,
        direction=str(prep.cfg.direction.value),
        dose=prep.dose,
        n_scenes=len(delta),
        run_id=run_id,
        checks=checks,
        values=detail,
    )


def run_profile(name: str, base: list[str], store_path: str, reps: int = EXPECTED_REPS) -> ProfileResult:
    """Run ``sim/<name>`` through the pipeline into ``store_path`` and compare with the planted values.

    Also checks that the pipeline's value states equal :func:`reference_states` exactly (temperature 0).
    """
    from runner.execute.providers import sim
    from runner.pipeline import execute_run
    from runner.report import tables as report
    from runner.store.states import value_states
    from runner.store.store import open_store

    prep = prepare(name, base, store_path)
    cfg = prep.cfg
    sim.configure(prep.index)
    display.note(
        f"sim/{name}: {cfg.strategy}, {cfg.target} {cfg.direction.value}, split {cfg.selection.split}"
    )
    compiled, stats = execute_run(cfg, prep.overrides)
    if stats.failed or stats.stopped:
        raise VatError(
            f"sim/{name}: {stats.failed} request(s) failed ({stats.stopped or 'see the errors table'})", 3
        )
    run_id, rating = compiled.run.run_id, str(cfg.metrics.rating)
    params = {k: v for k, v in dict(cfg.metrics).items()}
    with open_store(cfg.store.path, read_only=True) as store:
        rows = report.build_rows(
            store, prep.fr.values, params, model=f"sim/{name}", circle_index=prep.fr.circle_index
        )
        states = value_states(store, [run_id], prep.fr.values, rating=rating)
    row = next(r for r in rows if r["run_id"] == run_id)
    pre, post = states[(run_id, "pre", -1)], states[(run_id, "post", -1)]
    result = _result(prep, _paired(pre, post), row, run_id, reps)
    if float(cfg.model.temperature) == 0:
        ref_pre, ref_post, scenes = reference_states(prep, compiled.requests)
        same = pre.scenes == scenes and post.scenes == scenes
        diff = (
            max(np.nanmax(np.abs(pre.array - ref_pre)), np.nanmax(np.abs(post.array - ref_post)))
            if same
            else np.inf
        )
        result.checks.insert(
            0,
            Check(
                "value states = generative model",
                "exact",
                "",
                f"max |difference| {diff:.1e}",
                bool(diff < 1e-9),
            ),
        )
    return result


def run_reference(name: str, base: list[str], reps: int = EXPECTED_REPS) -> ProfileResult:
    """The same comparison on :func:`reference_states` (no LiteLLM, no store): fast, for tests."""
    from runner.compile.plan import compile_plan

    prep = prepare(name, base, "unused.duckdb")
    compiled = compile_plan(prep.index, prep.cfg)
    e_pre, e_post, _ = reference_states(prep, compiled.requests)
    return _result(prep, e_post - e_pre, _row(prep, e_pre, e_post), compiled.run.run_id, reps)


def _paired(pre: Any, post: Any) -> np.ndarray:
    """The post − pre value states of a run, paired by scene id."""
    common = sorted(set(pre.scenes) & set(post.scenes))
    return (
        post.array[[post.scenes.index(s) for s in common]] - pre.array[[pre.scenes.index(s) for s in common]]
    )
