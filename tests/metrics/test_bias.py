"""Acquiescence index and prompt sensitivity (runner.metrics.bias), by hand and by simulation (runner.validation.bias_checks)."""

from __future__ import annotations

import numpy as np
import pytest

from runner.metrics import bias
from runner.validation import bias_checks


def test_acquiescence_index_by_hand():
    # Mean over scenes per value, then over values: v0 (0.5 + 0)/2 = 0.25, v1 −0.5 → −0.125.
    # The all-NaN scene is not a scene of the index; the NaN cell is left out of v1's mean.
    arr = np.array([[0.5, -0.5], [0.0, np.nan], [np.nan, np.nan]])
    res = bias.acquiescence_index(arr, b=200, seed=1)
    assert res["index"] == pytest.approx(-0.125)
    assert res["n_scenes"] == 2
    lo, hi = res["ci"]
    assert lo <= res["index"] <= hi and not res["biased"]


def test_acquiescence_flags_only_an_interval_beyond_the_tolerance():
    always = np.full((30, 10), 0.9)
    assert bias.acquiescence_index(always)["biased"]
    assert bias.acquiescence_index(-always)["biased"]  # nay-saying is a bias too
    lenient = np.full((30, 10), bias.ACQUIESCENCE_TOLERANCE - 0.05)
    assert not bias.acquiescence_index(lenient)["biased"]
    empty = bias.acquiescence_index(np.full((3, 2), np.nan))
    assert empty == {"index": None, "ci": [None, None], "n_scenes": 0, "biased": False}


def _deltas(seed: int = 0, n: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def test_prompt_sensitivity_by_hand():
    base = _deltas()
    moved = base.copy()
    moved[:, 0] += 0.1  # the target moves 0.1 more under this wording; the coupling is unchanged
    res = bias.prompt_sensitivity({"base": base, "para1": moved}, np.arange(40), target=0, direction=1, b=50)
    assert res["reference"] == "base" and res["variants"] == ["base", "para1"]
    assert res["gain_diff"]["para1"] == pytest.approx(0.1)
    assert res["gain_diff_ci"]["para1"] == pytest.approx([0.1, 0.1])  # paired resampling: the shift is exact
    assert res["nvat_diff"]["para1"] == pytest.approx(0.0)  # ranks do not see a constant shift
    assert res["gain_range"] == pytest.approx(0.1)
    assert res["sensitive"] == {"gain": True, "nvat": False}
    # Suppressing flips the directed gain.
    down = bias.prompt_sensitivity({"base": base, "para1": moved}, np.arange(40), 0, -1, b=20)
    assert down["gain_diff"]["para1"] == pytest.approx(-0.1)
    assert bias.prompt_sensitivity({"base": base}, np.arange(40), 0, 1) is None


def test_prompt_sensitivity_of_independent_noise_covers_zero():
    a, b = _deltas(1), _deltas(2)
    res = bias.prompt_sensitivity({"base": a, "reversed": b}, np.arange(40) // 2, 0, 1, b=100)
    lo, hi = res["gain_diff_ci"]["reversed"]
    assert lo < 0 < hi


def test_simulated_bias_checks_pass():
    """Planted always-agree judge flagged, neutral not; planted coupling found over scene–action pairs."""
    results = bias_checks.checks(reps=30)
    assert [c["ok"] for c in results] == [True] * len(results), results


def test_scene_action_noise_floor_is_below_the_scene_unit():
    nf = bias_checks.noise_floor(reps=20)
    # √(9/(n − 1)): 0.47 at 41 scenes, 0.105 at 820 independent pairs.
    assert nf["scene"] == pytest.approx(0.47, abs=0.05)
    assert nf["scene_action"] == pytest.approx(0.105, abs=0.02)
