"""Known-answer validation: planted structure in, the same structure out — through the real pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.specs import SPEC

from runner.execute.providers import sim
from runner.metrics import vat as metrics
from runner.spec.load import load_index
from runner.validation import instrument, population
from runner.validation import known_answer as validation

ROOT = Path(__file__).resolve().parents[2]
VALUES = load_index(SPEC, check_lock=False).value_ids
CIRCLE = {v: i for i, v in enumerate(VALUES)}


def _profile(name: str) -> sim.Profile:
    return sim.load_profile(name, VALUES, CIRCLE)


def _frame(target: str, d: int = 1) -> population.Frame:
    return population.Frame(list(VALUES), VALUES.index(target), d, CIRCLE)


def test_batch_metrics_equal_the_report_metrics() -> None:
    p = _profile("circle")
    k = p.shift("power", -1, 0.7)
    pre, (post,) = sim.simulate_states(p, [k], 60, 1, np.random.default_rng(5))
    row = metrics.vat_metrics(pre[0], post[0], VALUES, "power", -1, circle_index=CIRCLE)
    mine = population.summarise(post - pre, _frame("power", -1))
    assert mine["gain"][0] == pytest.approx(row["gain"])
    assert mine["nvat"][0] == pytest.approx(row["nvat"])
    assert mine["gini"][0] == pytest.approx(row["gini"])
    assert mine["ot_abs"][0] == pytest.approx(row["ot_abs"])
    assert mine["circumplex"][0] == pytest.approx(row["circumplex_consistency"])
    assert VALUES[mine["top_hub"][0]] == row["hubs_top_k"][0]
    np.testing.assert_allclose(mine["coupling"][0], np.array(row["coupling"]))


def test_taxed_values_are_the_coupled_ones_only() -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((100, 10))
    fr = _frame(VALUES[0])
    assert population.taxed_values(noise, fr)[0] == []
    coupled = noise.copy()
    coupled[:, 3] = 0.8 * noise[:, 0] + 0.6 * noise[:, 3]
    taxed, threshold, vat = population.taxed_values(coupled, fr)
    assert taxed == [VALUES[3]] and vat[3] > threshold > 0.2


def test_planted_values_follow_the_profiles() -> None:
    flat = _profile("no_offtarget")
    pop = population.planted(flat, flat.shift("hedonism", -1, 0.8), _frame("hedonism", -1))
    off = np.arange(10) != VALUES.index("hedonism")
    assert np.all(pop["mean_shift"][0][off] == 0) and pop["nvat"][0] == 0 and pop["gain"][0] > 0.3
    circle = _profile("circle")
    pop = population.planted(circle, circle.shift("security", 1, 4 / 6), _frame("security"))
    assert pop["circumplex"][0] > 0.9 and pop["pattern"][0] == pytest.approx(1.0)
    hub = _profile("hub_security")
    fr = _frame("achievement")
    pop = population.planted(hub, hub.shift("achievement", 1, 0.8), fr)
    assert validation._hub_names(pop["vat"][0], fr) == ["security"]


@pytest.fixture(scope="module")
def reference_results() -> dict[str, validation.ProfileResult]:
    """Every shipped profile on all shipped scenes, answered straight by the simulated judge."""
    return {n: validation.run_reference(n, ["selection.split=all"]) for n in sim.profile_names()}


# slow: the reference profiles run end to end (~80 s; `make test-slow` and CI run it)
@pytest.mark.slow
@pytest.mark.parametrize("name", ["circle", "no_offtarget", "hub_security"])
def test_planted_structure_is_recovered_within_ci(reference_results: dict, name: str) -> None:
    result = reference_results[name]
    failed = [c for c in result.checks if c.ok is False]
    assert not failed, failed
    checks = {c.quantity.split(" (")[0]: c for c in result.checks}
    assert checks["gain"].ok and checks["mean shifts in simultaneous 99.9% CI"].ok
    assert result.n_scenes >= 30


# slow: the reference profiles run end to end (~80 s; `make test-slow` and CI run it)
@pytest.mark.slow
def test_no_offtarget_profile_has_gnd_near_zero_and_nothing_taxed(reference_results: dict) -> None:
    result = reference_results["no_offtarget"]
    taxed = next(c for c in result.checks if c.quantity.startswith("taxed values"))
    assert taxed.measured == "none" and taxed.ok
    gnd = [v["measured_gnd"] for v in result.values if v["value"] != result.target]
    assert max(abs(g) for g in gnd) < 0.15


# slow: the reference profiles run end to end (~80 s; `make test-slow` and CI run it)
@pytest.mark.slow
def test_circle_profile_has_positive_circumplex_consistency(reference_results: dict) -> None:
    circ = next(c for c in reference_results["circle"].checks if c.quantity == "circumplex consistency")
    assert float(circ.measured) > 0.5 and circ.ok


# circumplex consistency correlates m/G_raw (GND signed by the target's movement), so a suppressed
# target whose neighbours follow it down scores positive, as METRICS.md §5 reads.
def test_circle_profile_is_positive_when_the_target_is_suppressed_too() -> None:
    result = validation.run_reference("circle", ["selection.split=test", "direction=suppress"], reps=200)
    circ = next(c for c in result.checks if c.quantity == "circumplex consistency")
    assert circ.ok and float(circ.measured) > 0


# slow: the reference profiles run end to end (~80 s; `make test-slow` and CI run it)
@pytest.mark.slow
def test_hub_profile_finds_its_hub(reference_results: dict) -> None:
    checks = reference_results["hub_security"].checks
    assert next(c for c in checks if c.quantity.startswith("taxed values")).measured == "security"
    assert next(c for c in checks if c.quantity == "hubs (top 3)").measured.startswith("security")


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_pipeline_value_states_equal_the_generative_model(tmp_path: Path) -> None:
    base = ["selection.split=test", "selection.max_scenes=12", "execution.progress=false"]
    piped = validation.run_profile("hub_security", base, str(tmp_path / "v.duckdb"), reps=200)
    exact = piped.checks[0]
    assert exact.quantity == "value states = generative model" and exact.ok, exact
    direct = validation.run_reference("hub_security", base, reps=200)
    assert piped.run_id == direct.run_id
    assert [v["measured_shift"] for v in piped.values] == pytest.approx(
        [v["measured_shift"] for v in direct.values]
    )
    assert piped.checks[1].measured == direct.checks[0].measured  # the report's gain and CI, from the store


def test_validate_metrics_refuses_unknown_profiles_and_strategies(vat: Callable) -> None:
    res = vat("validate-metrics", "profile=nope")
    assert res.code == 2 and "no simulated judge profile 'nope'" in res.err
    res = vat("validate-metrics", "profile=circle", "strategy=checkpoint")
    assert res.code == 2 and "validate-metrics runs fewshot or system_prompt strategies" in res.err


@pytest.mark.slow
@pytest.mark.timeout(1800)  # every profile end to end plus the instrument study: ~5 min idle, 3× under load
def test_validate_metrics_verb_recovers_every_profile(vat: Callable, tmp_path: Path) -> None:
    res = vat(
        "validate-metrics", f"store.path={tmp_path / 'v.duckdb'}", "execution.progress=false", "format=json"
    )
    assert res.code == 0, res.err
    results = json.loads(res.out)
    bias = [r for r in results if r["profile"] == "bias_controls"]  # runner.validation.bias_checks, issue 16
    results = [r for r in results if r["profile"] != "bias_controls"]
    assert len(bias) == 1 and bias[0]["passed"], bias
    assert sorted(r["profile"] for r in results) == sim.profile_names()
    for r in results:
        assert r["passed"] and r["checks"][0]["quantity"] == "value states = generative model"


def test_binomial_bounds_are_exact() -> None:
    from scipy import stats

    floor = instrument._binomial_floor(60, 0.9)
    assert stats.binom.cdf(floor - 1, 60, 0.9) <= 0.01 < stats.binom.cdf(floor, 60, 0.9)
    ceiling = instrument._binomial_ceiling(60, 0.05)
    assert stats.binom.sf(ceiling, 60, 0.05) <= 0.01 < stats.binom.sf(ceiling - 1, 60, 0.05)


@pytest.mark.parametrize("name", ["no_offtarget", "hub_security", "circle"])
def test_instrument_checks_pass_on_every_profile_fast(name: str) -> None:
    """Coverage, no-coupling bias and false-hub rate over 60 simulated datasets at the test split's size."""
    p = _profile(name)
    v = p.doc.validation
    d = 1 if v.direction == "reinforce" else -1
    k = int(v.strategy.split("_")[1]) if v.strategy.startswith("fewshot") else 0
    dose = p.dose("fewshot", k) if k else p.dose("system_prompt")
    res = instrument.instrument_study(p, _frame(v.target, d), p.shift(v.target, d, dose), 41, 60, b=200)
    checks = instrument.instrument_checks(res)
    assert all(c.ok is not False for c in checks), [c for c in checks if c.ok is False]
    names = {c.quantity.split(" (")[0] for c in checks}
    assert {"nvat interval coverage", "gini interval coverage", "false hubs"} <= names
    if name == "no_offtarget":
        assert "corrected nVAT² unbiased, no coupling" in names and res.planted["nvat"] == 0
        assert res.bias["nvat_plugin"] > 0.3  # the plug-in's noise floor near sqrt(9/40)
    if name == "hub_security":
        assert set(res.hub_found) == {"security"}


@pytest.mark.slow
def test_instrument_full_mode_meets_its_targets_at_both_sizes() -> None:
    prep = validation.prepare("hub_security", ["selection.split=all"], "unused.duckdb")
    checks = instrument.run_instrument(prep, "full")
    assert checks and all(c.ok is not False for c in checks), [c for c in checks if c.ok is False]


def test_pair_hub_states_its_own_hub_power_floor_and_meets_it() -> None:
    """The scene unit dilutes pair-level coupling by design: pair_hub's hub is found less often than
    hub_security's, so it checks its own floor (validation.hub_power) at the all-scenes size."""
    reps, b = instrument.INSTRUMENT_MODES["fast"]
    found = {}
    for name in ("pair_hub", "hub_security"):
        p = _profile(name)
        v = p.doc.validation
        dose = p.dose("fewshot", int(v.strategy.split("_")[1]))
        res = instrument.instrument_study(p, _frame(v.target, 1), p.shift(v.target, 1, dose), 132, reps, b, 0)
        checks = instrument.instrument_checks(res, hub_power=v.hub_power)
        assert all(c.ok is not False for c in checks), [c for c in checks if c.ok is False]
        found[name] = res.hub_found["security"]
    assert (
        _profile("pair_hub").doc.validation.hub_power
        < 0.8
        == _profile("hub_security").doc.validation.hub_power
    )
    assert found["pair_hub"] < found["hub_security"]
