"""Power analysis on the simulated judge's generative model."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from support.specs import SPEC

from runner.cli import power as power_verb
from runner.core.errors import VatError
from runner.execute.providers import sim
from runner.spec.load import load_index
from runner.validation import power

ROOT = Path(__file__).resolve().parents[2]
VALUES = load_index(SPEC, check_lock=False).value_ids


@pytest.fixture(scope="module")
def result() -> power.PowerResult:
    profile = sim.load_profile("circle", VALUES)
    cfg = power.PowerConfig(reps=150, grid=(10, 20, 40, 80, 160), samples=(1, 4, 16))
    return power.analyse(profile, cfg, {"test": 41})


def test_power_grows_and_uncertainty_shrinks_with_scenes(result: power.PowerResult) -> None:
    rows = result.by_scenes
    assert [r["scenes"] for r in rows] == [10, 20, 40, 41, 80, 160]
    for key in ("gain_power", "nvat_diff_power"):
        assert all(a[key] <= b[key] for a, b in zip(rows, rows[1:], strict=False)), key
    for key in ("gain_ci_width", "nvat_sd", "nvat_diff_sd"):
        wide = [r[key] for r in rows if r["scenes"] != 41]
        assert all(a > b for a, b in zip(wide, wide[1:], strict=False)), key
    assert rows[-1]["gain_power"] > 0.95 > rows[0]["gain_power"]


def test_scenes_needed_are_where_the_fitted_power_reaches_its_target(result: power.PowerResult) -> None:
    need = result.needed["gain"]
    assert -0.6 < need["exponent"] < -0.4  # a mean: sd ∝ n^(-1/2)
    mult = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    sd = lambda n: need["sd_at_1"] * n ** need["exponent"]  # noqa: E731
    assert mult * sd(need["scenes"]) <= 0.05 < mult * sd(need["scenes"] - 1)
    assert result.needed["nvat_diff"]["scenes"] > result.shipped["test"]["scenes"]


def test_scenes_needed_inverts_an_exact_power_law() -> None:
    ns = [10, 40, 160]
    got = power.scenes_needed(ns, [0.3 / math.sqrt(n) for n in ns], effect=0.05, alpha=0.05, power=0.8)
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert got["scenes"] == math.ceil((z * 0.3 / 0.05) ** 2)


def test_calibrated_shift_plants_the_asked_gain() -> None:
    profile = sim.load_profile("circle", VALUES)
    k = power.calibrated_shift(profile, "security", -1, 0.05, seed=0)
    t = VALUES.index("security")
    assert power.population_gain(profile, k, t, -1, seed=9) == pytest.approx(0.05, rel=0.03)


def test_repeated_samples_narrow_text_ratings_towards_the_logprob_path(result: power.PowerResult) -> None:
    rows = {r["path"]: r for r in result.by_samples}
    text = [rows[f"text, T=1, {m} sample{'s' if m > 1 else ''}"]["gain_ci_width"] for m in (1, 4, 16)]
    assert text[0] > text[1] > text[2]
    assert rows["logprobs (expected rating)"]["gain_ci_width"] < text[2] * 1.05


def test_arguments_are_checked() -> None:
    assert power_verb.parse_args(["gain=0.1", "grid=10,20", "direction=suppress"]) == {
        "gain": 0.1,
        "grid": (10, 20),
        "direction": -1,
    }
    for bad, message in (
        (["gian=0.1"], "unknown argument 'gian=0.1'"),
        (["gain=x"], "not a valid float"),
        (["power=1.2"], "must lie strictly between"),
        (["grid=3,10"], "at least 5 scenes"),
    ):
        with pytest.raises(VatError, match=message):
            power_verb.parse_args(bad)


def test_power_verb_prints_json(vat: Callable) -> None:
    res = vat("power", "reps=40", "grid=10,20,40", "samples=1,2", "format=json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["needed"]["gain"]["scenes"] > 0 and set(data["shipped"]) == {"test", "all"}
    assert np.isfinite([r["gain_ci_width"] for r in data["by_scenes"]]).all()


def test_tax_scenes_needed_gives_the_stated_power_by_simulation() -> None:
    """At the n it returns, the permutation test of nVAT rejects in about 80 % of simulated datasets.

    Gaussian shifts of 6 values whose every pair has Spearman ρ_s, so nVAT = sqrt(5)·ρ_s; each dataset
    is tested with the report's own null (:func:`runner.metrics.vat.vat_metrics`, B = 200).
    """
    from runner.metrics import vat as metrics

    v, rho = 6, 0.18
    rho_s = 6 / np.pi * np.arcsin(rho / 2)
    n = power.tax_scenes_needed(math.sqrt(v - 1) * rho_s, v)
    assert n is not None and 30 < n < 120
    corr = np.full((v, v), rho) + (1 - rho) * np.eye(v)
    rng = np.random.default_rng(30)
    reps = 80
    deltas = rng.standard_normal((reps, n, v)) @ np.linalg.cholesky(corr).T
    names = [f"v{i}" for i in range(v)]
    fast = {"null_b": 200, "bootstrap_b": 20, "stability_b": 5}
    hits = sum(
        metrics.vat_metrics(np.zeros((n, v)), d, names, "v0", 1, seed=i, **fast)["signal"]["nvat"]
        for i, d in enumerate(deltas)
    )
    assert 0.66 <= hits / reps <= 0.94  # 80 % ± 3 binomial sd (measured: 0.82 at 200 datasets)


def test_power_verb_prints_scenes_needed_for_an_nvat(vat: Callable) -> None:
    res = vat("power", "reps=40", "grid=10,20", "samples=1", "nvat=0.3", "format=json")
    assert res.code == 0, res.err
    need = json.loads(res.out)["needed"]["nvat_vs_null"]
    assert need == {"nvat": 0.3, "scenes": power.tax_scenes_needed(0.3, len(VALUES))}
