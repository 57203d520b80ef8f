"""Tests of runner.metrics.vat against every worked example of METRICS.md §6, plus invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from support.specs import SCHWARTZ

from runner.execute.parse import expected_rating
from runner.metrics import calibration
from runner.metrics import vat as M

ABC = ["A", "B", "C"]
E_PRE = np.array([[-0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]])
E_POST = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, -0.5], [1.0, -0.5, 1.0]])
FAST = {"bootstrap_b": 200, "stability_b": 50, "null_b": 200}
# Keys that depend on the random draws, hence on scene order.
RANDOM_KEYS = {
    *("gain_ci", "mean_shift_ci", "nvat_std", "nvat_subsample_interval", "null", "hubs", "hub_test"),
    *("signal", "flags", "nvat_corrected", "rho_rms_corrected", "gini_corrected", "vat_corrected"),
    *("nvat_ci", "rho_rms_ci", "gini_ci", "scenes_needed"),
}


def approx(x: object) -> object:
    return pytest.approx(x, abs=5e-5)


def assert_close(got: object, want: object, where: str) -> None:
    """Deep comparison of report values (dicts, nested lists, floats, None) to 1e-12."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-12), where
    else:
        assert got == want, where


def example(target: str = "A", direction: int | str = 1, **params: object) -> dict:
    return M.vat_metrics(E_PRE, E_POST, ABC, target, direction, min_scenes=2, **params)


def random_states(n: int, v: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pre = rng.integers(-2, 3, size=(n, v)) / 2.0
    post = np.clip(pre + rng.integers(-2, 3, size=(n, v)) / 2.0, -1, 1)
    return pre, post


# --- §2 evidence -----------------------------------------------------------------------------------


def test_evidence_example_via_value_states() -> None:
    # hedonism (value 2) in scene 0: pleasure = micro 0, enjoying_life = micro 1.
    ratings = [5, 2, 4, 1]
    sigma = [1, -1, 1, -1]
    e = M.evidence(ratings, sigma)
    assert e.tolist() == [1.0, 0.5, 0.5, 1.0]
    states = M.value_states([0, 0, 0, 0], [2, 2, 2, 2], [0, 0, 1, 1], e, n_scenes=1, n_values=10)
    assert states.shape == (1, 10)
    assert states[0, 2] == approx(0.75)
    assert np.isnan(np.delete(states[0], 2)).all()


def test_value_states_weights_micro_values_equally_and_skips_missing() -> None:
    # Micro 0 has three items (mean 1), micro 1 one item (−1): E = 0, not the item mean 0.5.
    # A NaN (unparsed) judgment is left out; items without a micro-value form one group.
    e = M.evidence([5, 5, 5, 1, np.nan, 4, 2], [1, 1, 1, 1, 1, 1, 1])
    states = M.value_states([0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, -1, -1], e, 2, 2)
    assert states[0, 0] == approx(0.0)
    assert states[1, 1] == approx(0.0)
    assert np.isnan(states[0, 1]) and np.isnan(states[1, 0])


def test_value_states_all_missing() -> None:
    assert np.isnan(M.value_states([0], [0], [-1], [np.nan], 1, 1)).all()


def test_expected_rating_is_the_one_in_parse() -> None:
    assert not hasattr(M, "expected_rating")  # one definition: runner.execute.parse (the one the runner uses)
    lp = {"1": math.log(0.5), "5": math.log(0.5), "x": math.log(0.01)}
    assert expected_rating(lp) == approx(3.0)
    assert expected_rating({"4": -0.1}) == approx(4.0)
    assert expected_rating({"yes": -0.1, "6": -0.2}) is None
    assert expected_rating({}) is None


# --- §6 metric layer -------------------------------------------------------------------------------


def test_metric_layer_example() -> None:
    r = example()
    assert r["mean_shift"] == approx({"A": 0.75, "B": -0.25, "C": 0.25})
    assert r["gain"] == approx(0.75) and r["gain_raw"] == approx(0.75)
    assert r["gnd"] == approx({"A": 1.0, "B": -1 / 3, "C": 1 / 3})
    assert r["ot_abs"] == approx(1 / 3)
    assert r["ot_signed"] == approx(0.0)
    assert r["ot_l2"] == approx(0.4714)
    assert np.array(r["coupling"]) == approx(np.array([[1, -1, 0.8], [-1, 1, -0.8], [0.8, -0.8, 1]]))
    assert r["vat"] == approx({"A": 1.2806, "B": 1.2806, "C": 1.1314})
    assert r["nvat"] == approx(1.2329)
    assert r["nvat_lit"] == approx(1.5875)
    assert r["rho_rms"] == approx(0.8718)
    assert r["gini"] == approx(0.02695)
    assert r["amplification"] == approx({"A": 1.0, "B": 0.6667, "C": 0.6667})
    assert r["hubs_top_k"] == ["B", "C"]
    assert r["hubs_above_mean"] == ["B"]
    assert r["n_scenes"] == 4 and r["n_scenes_by_value"] == {"A": 4, "B": 4, "C": 4}
    # Four scenes cannot tell a coupling from chance: the permutation null says so.
    assert r["flags"] == ["nvat_within_noise", "rho_rms_within_noise", "gini_within_noise"]
    # Profile VAT(u)/nVAT has quadratic mean 1.
    assert np.sqrt(np.mean(np.square(list(r["vat_profile"].values())))) == approx(1.0)


def test_metric_layer_target_b_suppressed() -> None:
    r = example("B", "suppress")
    assert r["gain_raw"] == approx(-0.25)
    assert r["gain"] == approx(0.25)
    assert r["gnd"] == approx({"A": 3.0, "B": -1.0, "C": 1.0})
    assert r["direction"] == -1
    lo, hi = r["gain_ci"]
    assert lo <= r["gain"] <= hi
    assert example("B", -1) == r


def test_coupling_helpers_on_example() -> None:
    R, flags = M.coupling_matrix(E_POST - E_PRE, min_scenes=2)
    assert flags == []
    assert M.vat_from_coupling(R) == approx(np.array([1.2806, 1.2806, 1.1314]))
    tax = M.system_tax(R)
    assert (tax["nvat"], tax["nvat_lit"], tax["rho_rms"]) == approx((1.2329, 1.5875, 0.8718))
    assert M.gini(M.vat_from_coupling(R)) == approx(0.02695)


def test_report_has_every_key_and_is_json() -> None:
    r = example()
    keys = {
        *(
            "gain",
            "gain_raw",
            "gain_ci",
            "mean_shift",
            "mean_shift_ci",
            "gnd",
            "ot_abs",
            "ot_signed",
            "ot_l2",
        ),
        *("coupling", "vat", "vat_profile", "nvat", "nvat_lit", "rho_rms", "gini", "hubs", "hubs_above_mean"),
        *("amplification", "nvat_std", "nvat_subsample_interval", "circumplex_consistency"),
        *("concentration", "null", "nvat_corrected", "rho_rms_corrected", "gini_corrected"),
        *("vat_corrected", "nvat_ci", "rho_rms_ci", "gini_ci", "interval_method", "hubs_top_k"),
        *("hub_test", "signal", "scenes_needed"),
        *("concentration_direction_deg", "n_scenes", "n_scenes_by_value", "flags", "params"),
    }
    assert keys <= set(r)
    assert r["params"] == {**M.DEFAULT_PARAMS, "min_scenes": 2, "circle_index": None}
    json.dumps(r, allow_nan=False)


def test_default_min_scenes_makes_coupling_undefined_for_four_scenes() -> None:
    r = M.vat_metrics(E_PRE, E_POST, ABC, "A", 1, **FAST)
    assert "too_few_scenes" in r["flags"]
    assert all(x is None for row in r["coupling"] for x in row)
    for key in ("nvat", "nvat_lit", "rho_rms", "gini", "nvat_std", "concentration"):
        assert r[key] is None
    assert r["hubs"] == [] and r["vat"] == {"A": None, "B": None, "C": None}
    assert r["gain"] == approx(0.75)  # the shift statistics do not need the coupling
    json.dumps(r, allow_nan=False)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="direction"):
        example(direction="sideways")
    with pytest.raises(ValueError, match="target"):
        example(target="Z")
    with pytest.raises(ValueError, match="unknown"):
        example(bootstrap=3)
    with pytest.raises(ValueError, match="scenes"):
        M.vat_metrics(E_PRE, E_POST[:, :2], ABC, "A", 1)


# --- §6 edge cases ---------------------------------------------------------------------------------


def test_constant_column() -> None:
    pre, post = random_states(12, 4, seed=3)
    post[:, 2] = pre[:, 2] + 0.5
    r = M.vat_metrics(pre, post, list("abcd"), "a", 1, **FAST)
    R = np.array(r["coupling"])
    assert R[2, 2] == 1.0
    assert (np.delete(R[2], 2) == 0).all() and (np.delete(R[:, 2], 2) == 0).all()
    assert r["vat"]["c"] == 0.0
    assert "constant_shift:c" in r["flags"]


def test_gain_too_small() -> None:
    pre, post = random_states(10, 3, seed=4)
    post[:, 0] = pre[:, 0] + 0.005
    r = M.vat_metrics(pre, post, ABC, "A", 1, **FAST)
    assert "gain_too_small" in r["flags"]
    assert all(x is None for x in r["gnd"].values())
    assert all(x is None for x in r["amplification"].values())
    assert r["ot_abs"] is None and r["circumplex_consistency"] is None
    assert r["gain"] == approx(0.005)


def test_gini_edge_cases() -> None:
    assert M.gini([0.7, 0.7, 0.7, 0.7]) == 0.0
    for n in (2, 5, 10):
        assert M.gini([2.5] + [0.0] * (n - 1)) == approx((n - 1) / n)
    assert M.gini([0.0, 0.0]) == 0.0
    assert math.isnan(M.gini([1.0, np.nan]))


# --- §6 circle -------------------------------------------------------------------------------------


def test_circle_examples() -> None:
    vat = {v: float(v in {"security", "conformity", "tradition"}) for v in SCHWARTZ}
    c, direction = M.concentration(vat, SCHWARTZ)
    assert c == approx(0.8727)
    assert direction == approx(216.0)
    gnd = [1, 0.4, 0.2, 0.0, -0.1, -0.5, -0.3, -0.2, 0.1, 0.3]
    assert M.circumplex_consistency(gnd, SCHWARTZ, "self_direction") == approx(0.9833)


def test_circle_index_and_direction_range() -> None:
    # A value list in another order gives the same answer once its circle positions are named.
    index = {v: i for i, v in enumerate(SCHWARTZ)}
    shuffled = SCHWARTZ[::-1]
    vat = {v: float(v == "universalism") for v in SCHWARTZ}
    c, direction = M.concentration(vat, shuffled, circle_index=index)
    assert (c, direction) == approx((1.0, 324.0))
    assert math.isnan(M.concentration(dict.fromkeys(SCHWARTZ, 1.0), SCHWARTZ)[1])
    assert math.isnan(M.concentration(dict.fromkeys(SCHWARTZ, 0.0), SCHWARTZ)[0])


# --- §6 family -------------------------------------------------------------------------------------


def test_family_examples() -> None:
    persistence = M.hub_persistence(
        [["security", "conformity"], ["security", "tradition"], ["security", "conformity"]]
    )
    assert persistence == approx({"security": 1.0, "conformity": 0.6667, "tradition": 0.3333})
    assert M.pareto_efficient([0.10, 0.20, 0.15, 0.30], [0.10, 0.12, 0.15, 0.20]) == [True, True, False, True]


def test_pareto_ties_and_missing() -> None:
    # Identical points do not dominate each other; an undefined point is never efficient.
    assert M.pareto_efficient([0.1, 0.1, None], [0.2, 0.2, 0.0]) == [True, True, False]


def test_family_metrics_on_rows() -> None:
    rows = []
    for k, seed in (("k=2", 1), ("k=4", 2), ("k=8", 3)):
        pre, post = random_states(15, 5, seed)
        post[:, 0] += 0.3
        rows.append({**M.vat_metrics(pre, post, list("abcde"), "a", 1, **FAST), "label": k})
    fam = M.family_metrics(rows)
    assert set(fam["pareto"]) == {"k=2", "k=4", "k=8"}
    assert fam["pareto"] == dict(
        zip(
            ["k=2", "k=4", "k=8"],
            M.pareto_efficient([r["gain"] for r in rows], [r["nvat"] for r in rows]),
            strict=True,
        )
    )
    assert set(fam["hub_persistence"]) == set("abcde")
    assert fam["hub_persistence"]["a"] == 0.0  # the target is never a hub
    # Persistence counts tested hubs: the share of rows in which each value is one.
    want = {v: sum(v in r["hubs"] for r in rows) / 3 for v in "abcde"}
    assert fam["hub_persistence"] == approx(want)
    assert -1.0 <= fam["profile_stability"] <= 1.0
    json.dumps(fam, allow_nan=False)


def test_profile_stability() -> None:
    a = {"x": 0.1, "y": 0.5, "z": 0.9}
    assert M.profile_stability([a, a, a]) == approx(1.0)
    assert M.profile_stability([a, {"x": 0.9, "y": 0.5, "z": 0.1}]) == approx(-1.0)
    assert math.isnan(M.profile_stability([a]))


# --- invariants ------------------------------------------------------------------------------------


def test_swapping_pre_and_post_negates_the_gain() -> None:
    pre, post = random_states(20, 4, seed=5)
    fwd = M.vat_metrics(pre, post, list("abcd"), "b", 1, **FAST)
    back = M.vat_metrics(post, pre, list("abcd"), "b", 1, **FAST)
    assert back["gain"] == approx(-fwd["gain"])
    assert back["mean_shift"] == approx({v: -x for v, x in fwd["mean_shift"].items()})
    # Negating every shift leaves the rank correlations, hence the tax, unchanged.
    assert back["coupling"] == fwd["coupling"]
    assert back["nvat"] == approx(fwd["nvat"])


def test_permuting_scenes_changes_nothing() -> None:
    pre, post = random_states(25, 5, seed=6)
    perm = np.random.default_rng(0).permutation(25)
    a = M.vat_metrics(pre, post, list("abcde"), "c", -1, **FAST)
    b = M.vat_metrics(pre[perm], post[perm], list("abcde"), "c", -1, **FAST)
    for key in sorted(set(a) - RANDOM_KEYS):
        assert_close(b[key], a[key], key)


def test_monotone_function_of_target_has_coupling_one() -> None:
    rng = np.random.default_rng(7)
    pre = np.zeros((30, 3))
    post = rng.normal(size=(30, 3)) / 4
    post[:, 1] = np.tanh(3 * post[:, 0]) ** 3  # strictly increasing in the target's shift
    post[:, 2] = -np.exp(post[:, 0])  # strictly decreasing
    R = np.array(M.vat_metrics(pre, post, ABC, "A", 1, **FAST)["coupling"])
    assert R[0, 1] == approx(1.0) and R[1, 0] == approx(1.0)
    assert R[0, 2] == approx(-1.0)


def test_same_seed_same_intervals() -> None:
    pre, post = random_states(30, 4, seed=8)
    a = M.vat_metrics(pre, post, list("abcd"), "a", 1, **FAST)
    b = M.vat_metrics(pre, post, list("abcd"), "a", 1, **FAST)
    assert a == b
    c = M.vat_metrics(pre, post, list("abcd"), "a", 1, seed=1, **FAST)
    assert c["gain_ci"] != a["gain_ci"] or c["nvat_subsample_interval"] != a["nvat_subsample_interval"]
    assert a["gain_ci"][0] <= a["gain"] <= a["gain_ci"][1]
    assert a["nvat_std"] > 0


def test_bootstrap_matches_a_loop() -> None:
    pre, post = random_states(12, 3, seed=9)
    delta = post - pre
    boot = M.bootstrap_mean_shifts(delta, 50, seed=3)
    idx = np.random.default_rng(3).integers(0, 12, size=(50, 12))
    assert boot == approx(np.stack([delta[i].mean(axis=0) for i in idx]))


def test_missing_cells_pairwise_and_counted() -> None:
    pre, post = random_states(40, 4, seed=10)
    rng = np.random.default_rng(11)
    post[rng.random((40, 4)) < 0.2] = np.nan
    pre[3, :] = np.nan  # a scene with nothing left
    r = M.vat_metrics(pre, post, list("abcd"), "a", 1, **FAST)
    delta = post - pre
    finite = np.isfinite(delta)
    assert r["n_scenes"] == 39
    assert r["n_scenes_by_value"] == dict(zip("abcd", finite.sum(axis=0).tolist(), strict=True))
    assert {f"missing_values:{v}" for v in "abcd"} <= set(r["flags"])
    assert r["mean_shift"] == approx(dict(zip("abcd", np.nanmean(delta, axis=0), strict=True)))
    R = np.array(r["coupling"])
    for u in range(4):
        for w in range(4):
            if u != w:
                ok = finite[:, u] & finite[:, w]
                assert R[u, w] == approx(stats.spearmanr(delta[ok, u], delta[ok, w]).statistic)
    assert r["nvat_std"] is not None
    json.dumps(r, allow_nan=False)


def test_spearman_and_kendall_equal_scipy_with_ties() -> None:
    rng = np.random.default_rng(12)
    for n in (2, 3, 7, 40):
        x = rng.integers(0, 4, n).astype(float)
        y = rng.integers(0, 3, n).astype(float)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert M.spearman(x, y) == approx(stats.spearmanr(x, y).statistic)
        assert M.kendall_tau_b(x, y) == approx(stats.kendalltau(x, y).statistic)
    x = rng.normal(size=30)
    x[[4, 9]] = np.nan
    y = np.round(rng.normal(size=30))
    ok = np.isfinite(x)
    assert M.spearman(x, y) == approx(stats.spearmanr(x[ok], y[ok]).statistic)
    assert math.isnan(M.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(M.kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_coupling_matrix_equals_scipy_matrix() -> None:
    rng = np.random.default_rng(13)
    delta = rng.integers(-3, 4, size=(50, 6)) / 2.0
    R, flags = M.coupling_matrix(delta)
    assert flags == []
    np.testing.assert_allclose(R, stats.spearmanr(delta).statistic, atol=1e-12)


def test_average_ranks_equals_rankdata() -> None:
    x = np.random.default_rng(14).integers(0, 5, size=(20, 3, 4)).astype(float)
    assert M.average_ranks(x, axis=0) == approx(stats.rankdata(x, axis=0))
    assert M.average_ranks(x, axis=1) == approx(stats.rankdata(x, axis=1))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(5, 30),
    v=st.integers(3, 10),
    seed=st.integers(0, 2**32 - 1),
    levels=st.integers(2, 9),
    missing=st.sampled_from([0.0, 0.1]),
)
def test_bounds_property(n: int, v: int, seed: int, levels: int, missing: float) -> None:
    rng = np.random.default_rng(seed)
    pre = rng.integers(0, levels, size=(n, v)) / levels
    post = rng.integers(0, levels, size=(n, v)) / levels
    post[rng.random((n, v)) < missing] = np.nan
    r = M.vat_metrics(
        pre,
        post,
        [f"v{i}" for i in range(v)],
        "v0",
        1,
        bootstrap_b=20,
        stability_b=5,
        null_b=20,
        min_scenes=2,
    )
    top = math.sqrt(v - 1) + 1e-9
    R = np.array(r["coupling"], dtype=float)
    finite = R[np.isfinite(R)]
    assert (np.abs(finite) <= 1 + 1e-12).all()
    for x in r["vat"].values():
        assert x is None or 0 <= x <= top
    if r["nvat"] is not None:
        assert 0 <= r["nvat"] <= top
        assert 0 <= r["rho_rms"] <= 1 + 1e-9
        assert 0 <= r["gini"] <= 1


def test_circumplex_consistency_is_positive_when_neighbours_follow_a_suppressed_target():
    import numpy as np

    from runner.metrics.vat import vat_metrics

    values = SCHWARTZ
    rng = np.random.default_rng(1)
    theta = 2 * np.pi * np.arange(10) / 10
    shift = -0.2 * np.cos(theta - theta[5])  # security pushed down, its neighbours down, opposites up
    e_pre = rng.normal(0, 0.1, (30, 10))
    e_post = e_pre + shift + rng.normal(0, 0.01, (30, 10))
    row = vat_metrics(e_pre, e_post, values, "security", "suppress", bootstrap_b=50, stability_b=20)
    assert row["gain"] > 0 and row["gain_raw"] < 0
    assert row["circumplex_consistency"] > 0.9
    reinforce = vat_metrics(
        e_pre, e_pre - shift, values, "security", "reinforce", bootstrap_b=50, stability_b=20
    )
    assert reinforce["circumplex_consistency"] > 0.9


# --- §8 calibration: null, corrected estimates, intervals, hub test, scenes needed --------------------


def test_permutation_p_value_rule() -> None:
    null = np.array([0.1, 0.5, 0.7, 0.2])
    assert calibration.permutation_p(0.5, null) == approx((1 + 2) / (1 + 4))  # ties count as ≥
    assert calibration.permutation_p(0.8, null) == approx(1 / 5)  # never 0
    assert math.isnan(calibration.permutation_p(math.nan, null))
    cols = calibration.permutation_p(np.array([0.5, 0.0]), np.stack([null, null], axis=1))
    assert cols == approx([0.6, 1.0])


def test_holm_and_benjamini_hochberg_on_given_p_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: 0.005 ≤ 0.05/4, 0.01 ≤ 0.05/3, then 0.03 > 0.05/2 stops.
    assert calibration.holm(p, 0.05).tolist() == [True, False, False, True]
    # BH: sorted p ≤ (1, 2, 3, 4)·0.05/4 = 0.0125, 0.025, 0.0375, 0.05 for every rank → all four.
    assert calibration.benjamini_hochberg(p, 0.05).tolist() == [True, True, True, True]
    none = [0.02, 0.04, 0.5]  # above 0.05/3 and 1·0.05/3 at the first step
    assert not calibration.holm(none, 0.05).any() and not calibration.benjamini_hochberg(none, 0.05).any()
    # BH's step-up: 0.04 ≤ 2·0.05/2 rejects both although 0.04 > 0.05/2 alone would not (Holm).
    assert calibration.benjamini_hochberg([0.04, 0.01], 0.05).tolist() == [True, True]
    assert calibration.holm([0.04, 0.01], 0.05).tolist() == [True, True]  # 0.01 ≤ 0.025, then 0.04 ≤ 0.05
    assert calibration.holm([0.03, 0.03, math.nan], 0.05).tolist() == [False, False, False]


def test_hub_test_excludes_the_target_and_orders_by_p() -> None:
    hubs, field = M.hub_test(np.array([0.001, 0.002, 0.3, 0.001]), ["t", "a", "b", "c"], 0, 0.05, "holm")
    assert hubs == ["c", "a"] and field["p"] == {"a": 0.002, "b": 0.3, "c": 0.001}
    assert field["method"] == "holm" and field["alpha"] == 0.05
    assert M.hub_test(np.array([0.001, 0.5, 0.6]), ["t", "a", "b"], 0, 0.05, "bh")[0] == []
    with pytest.raises(ValueError, match="hub_method"):
        M.hub_test(np.array([0.1, 0.1]), ["t", "a"], 0, 0.05, "bonferroni")


def test_corrected_pairs_formula() -> None:
    r = np.array([[1.0, 0.5], [0.5, 1.0]])
    c = calibration.corrected_pairs(r, np.full((2, 2), 0.1), np.full((2, 2), 0.8))
    # 0.5² − 0.1·(1 − 0.25)²/0.8 = 0.25 − 0.0703125
    assert c == approx(np.array([[0.0, 0.1796875], [0.1796875, 0.0]]))


def test_jackknife_interval_and_t_quantile() -> None:
    lo, hi = calibration._jackknife_interval(1.0, np.arange(1.0, 7.0), 0.95)
    se = math.sqrt(5 / 6 * 17.5)  # Σ (θ_(−g) − 3.5)² = 17.5 over G = 6
    assert [lo, hi] == pytest.approx([1.0 - 2.5706 * se, 1.0 + 2.5706 * se], abs=2e-3)  # t_{5, 0.975}
    for df in (5, 10, 40, 263):
        assert calibration._t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), abs=5e-4)
    assert all(math.isnan(x) for x in calibration._jackknife_interval(1.0, np.array([1.0, 2.0]), 0.95))


def _rank_once_corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson of the given (already ranked) values over the rows where both are present."""
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def test_null_couplings_equal_a_loop_complete_and_missing() -> None:
    rng = np.random.default_rng(3)
    delta = rng.normal(size=(12, 4))
    idx = calibration.permutation_index(12, 4, 5, seed=1)
    joint, cond = calibration._null_couplings(delta, idx, 5)
    for b in range(5):
        perm = np.stack([delta[idx[b, v], v] for v in range(4)], axis=1)
        assert joint[b] == approx(stats.spearmanr(perm).statistic)
        for u in range(4):
            mixed = delta.copy()
            mixed[:, u] = perm[:, u]
            assert cond[b, u] == approx(stats.spearmanr(mixed).statistic[u])
    delta[rng.random(delta.shape) < 0.15] = np.nan
    ranks = np.where(np.isfinite(delta), M.average_ranks(delta, axis=0), np.nan)
    joint, cond = calibration._null_couplings(delta, idx, 5)
    for b in range(5):
        perm = np.stack([ranks[idx[b, v], v] for v in range(4)], axis=1)
        for u in range(4):
            for w in range(4):
                if u != w:
                    assert joint[b, u, w] == approx(_rank_once_corr(perm[:, u], perm[:, w]))
                    assert cond[b, u, w] == approx(_rank_once_corr(perm[:, u], ranks[:, w]))


def test_jackknife_couplings_equal_a_loop() -> None:
    rng = np.random.default_rng(4)
    delta = rng.normal(size=(9, 3))
    delta[2, 1] = np.nan
    ranks = np.where(np.isfinite(delta), M.average_ranks(delta, axis=0), np.nan)
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])
    for g, rows in ((None, [[i] for i in range(9)]), (groups, [[0, 1], [2, 3, 4], [5], [6, 7], [8]])):
        jk = calibration._jackknife_couplings(delta, g, 2)
        assert len(jk) == len(rows)
        for j, out in enumerate(rows):
            keep = np.setdiff1d(np.arange(9), out)
            want = _rank_once_corr(ranks[keep, 0], ranks[keep, 1])
            assert jk[j, 0, 1] == approx(want) and jk[j, 1, 0] == approx(want)


def test_cluster_permutation_moves_whole_clusters_of_equal_size() -> None:
    groups = np.array([5, 5, 7, 7, 9, 9, 2, 2, 2])
    idx = calibration.permutation_index(9, 3, 50, seed=0, groups=groups)
    members = {g: list(np.flatnonzero(groups == g)) for g in set(groups.tolist())}
    for b in range(50):
        for v in range(3):
            col = idx[b, v]
            assert sorted(col.tolist()) == list(range(9))
            assert col[[6, 7, 8]].tolist() == [6, 7, 8]  # the only 3-row cluster stays put
            sources = {tuple(col[members[g]].tolist()) for g in (5, 7, 9)}
            assert sources == {tuple(members[g]) for g in (5, 7, 9)}  # whole pairs, in order


def test_no_scenes_and_all_missing_give_a_row_of_none() -> None:
    for pre in (np.empty((0, 3)), np.full((4, 3), np.nan)):
        r = M.vat_metrics(pre, pre.copy(), ABC, "A", 1, **FAST)
        assert "no_scenes" in r["flags"] and r["n_scenes"] == 0
        assert r["nvat"] is None and r["nvat_corrected"] is None and r["nvat_ci"] == [None, None]
        assert r["null"]["nvat"] == {"mean": None, "q95": None, "p": None}
        assert r["hubs"] == [] and r["scenes_needed"] == {"nvat": None}
        assert r["signal"] == {"nvat": False, "rho_rms": False, "gini": False}
        json.dumps(r, allow_nan=False)


def test_row_contract_fields() -> None:
    pre, post = random_states(30, 4, seed=12)
    r = M.vat_metrics(pre, post, list("abcd"), "a", 1, **FAST)
    null = r["null"]
    assert null["b"] == 200 and null["seed"] == 0 and isinstance(null["method"], str)
    for key in ("nvat", "rho_rms", "gini"):
        assert set(null[key]) == {"mean", "q95", "p"} and 1 / 201 <= null[key]["p"] <= 1
        lo, hi = r[f"{key}_ci"]
        assert min(0.0, r[f"{key}_corrected"]) <= lo <= r[f"{key}_corrected"] <= hi  # holds its point
        assert r["signal"][key] == (null[key]["p"] < 0.05)
        assert (f"{key}_within_noise" in r["flags"]) == (not r["signal"][key])
    assert set(null["vat"]) == set("abcd") and set(r["vat_corrected"]) == set("abcd")
    assert set(r["hub_test"]["p"]) == set("bcd") and r["hub_test"]["method"] == "holm"
    assert r["nvat_corrected"] ** 2 * np.sign(r["nvat_corrected"]) == approx(
        3 * r["rho_rms_corrected"] ** 2 * np.sign(r["rho_rms_corrected"])
    )  # nVAT² = (V − 1)·rho_rms², corrected or not
    assert r["params"]["null_b"] == 200 and r["params"]["hub_method"] == "holm"
    with pytest.raises(ValueError, match="hub_method"):
        M.vat_metrics(pre, post, list("abcd"), "a", 1, hub_method="fdr")
    with pytest.raises(ValueError, match="one cluster id per row"):
        M.vat_metrics(pre, post, list("abcd"), "a", 1, groups=[0, 1])


def test_scenes_needed_rule() -> None:
    assert M.scenes_needed_for_tax(None, 10) is None and M.scenes_needed_for_tax(-0.1, 10) is None
    assert M.scenes_needed_for_tax(0.001, 10) is None  # no n up to the cap suffices
    big, small = M.scenes_needed_for_tax(0.4, 10), M.scenes_needed_for_tax(0.2, 10)
    assert 6 <= big < small
    # Halving the effect roughly quadruples n (λ ∝ n·nVAT²).
    assert 3.0 < (small - 1) / (big - 1) < 5.0


def _gaussian_deltas(reps: int, n: int, corr: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((reps, n, len(corr))) @ np.linalg.cholesky(corr).T


def _population_tax(corr: np.ndarray) -> tuple[float, float]:
    """Population Spearman nVAT and Gini of a Gaussian: ρ_s = (6/π)·asin(ρ/2)."""
    rs = 6 / np.pi * np.arcsin(corr / 2)
    vat = M.vat_from_coupling(rs)
    return float(M.system_tax(rs)["nvat"]), M.gini(vat)


def test_no_coupling_corrected_nvat_is_unbiased_and_no_hub_is_found() -> None:
    """Simulation: independent shifts. Bias of the corrected nVAT², size of the test, false hubs."""
    reps, n, v = 120, 41, 6
    deltas = _gaussian_deltas(reps, n, np.eye(v), seed=20)
    values = [f"v{i}" for i in range(v)]
    rows = [M.vat_metrics(np.zeros((n, v)), d, values, "v0", 1, seed=i, **FAST) for i, d in enumerate(deltas)]
    sq = np.array([np.sign(r["nvat_corrected"]) * r["nvat_corrected"] ** 2 for r in rows])
    plug = np.array([r["nvat"] ** 2 for r in rows])
    assert abs(sq.mean()) < 3 * sq.std(ddof=1) / math.sqrt(reps)  # within noise of 0
    assert plug.mean() > 10 * sq.std(ddof=1) / math.sqrt(reps)  # while the plug-in is far above it
    # Size: P(p < 0.05) = 0.05 exactly for a permutation test; 120 datasets allow at most 14 (P < 0.01).
    assert sum(r["signal"]["nvat"] for r in rows) <= 14
    assert sum(bool(r["hubs"]) for r in rows) <= 14  # Holm: family-wise 5 %
    assert all(r["nvat_ci"][0] == min(0.0, r["nvat_corrected"]) for r in rows if not r["signal"]["nvat"])


def test_intervals_cover_the_population_value() -> None:
    """Simulation: one hub (v1 with the target v0, ρ = 0.6); coverage of nVAT, rho_rms and Gini."""
    v, n, reps = 6, 41, 100
    corr = np.eye(v)
    corr[0, 1] = corr[1, 0] = 0.6
    nvat, gini_pop = _population_tax(corr)
    deltas = _gaussian_deltas(reps, n, corr, seed=21)
    values = [f"v{i}" for i in range(v)]
    hits = {"nvat": 0, "rho_rms": 0, "gini": 0}
    found = false = 0
    for i, d in enumerate(deltas):
        r = M.vat_metrics(np.zeros((n, v)), d, values, "v0", 1, seed=i, **FAST)
        for key, pop in (("nvat", nvat), ("rho_rms", nvat / math.sqrt(v - 1)), ("gini", gini_pop)):
            hits[key] += r[f"{key}_ci"][0] <= pop <= r[f"{key}_ci"][1]
        found += "v1" in r["hubs"]
        false += any(h != "v1" for h in r["hubs"])
    # Nominal 95 %: fewer than 85 of 100 would have probability < 0.1 % at a true coverage of 95 %.
    assert min(hits.values()) >= 85, hits
    # VAT(v1) sums the noise of all V − 1 pairs, so at 41 scenes the hub is found in about 60 %
    # (measured: 61/100); uncoupled values are hubs in at most the family-wise 5 % (+ chance).
    assert found >= 45 and false <= 12


def test_clustered_null_keeps_its_size() -> None:
    """Simulation: 20 rows per scene share a scene effect in every column; columns are independent.

    Permuting rows breaks the within-scene dependence and rejects far too often; permuting whole
    scenes keeps the test at its level.
    """
    reps, scenes, m, v = 60, 12, 20, 4
    rng = np.random.default_rng(22)
    groups = np.repeat(np.arange(scenes), m)
    rejected = {"rows": 0, "clusters": 0}
    values = [f"v{i}" for i in range(v)]
    for i in range(reps):
        effect = rng.standard_normal((scenes, v))[groups]  # ICC 0.8
        d = 2 * effect + rng.standard_normal((scenes * m, v))
        pre = np.zeros_like(d)
        rows = M.vat_metrics(pre, d, values, "v0", 1, seed=i, **FAST)
        clus = M.vat_metrics(pre, d, values, "v0", 1, seed=i, groups=groups, **FAST)
        rejected["rows"] += rows["signal"]["nvat"]
        rejected["clusters"] += clus["signal"]["nvat"]
    assert rejected["clusters"] <= 8  # 5 % of 60 is 3; P(> 8) < 0.5 % at the nominal level
    assert rejected["rows"] >= 20  # the row-wise null is badly anti-conservative here


def test_corrected_gini_is_near_zero_without_coupling_and_points_sit_in_their_intervals():
    """No coupling: the shown corrected Gini averages ≈ 0 (it is 0 unless nVAT beats its null), and every
    corrected estimate lies inside its own interval (a negative signed root stretches the lower end)."""
    values = [f"v{i}" for i in range(10)]
    ginis = []
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        pre = np.zeros((41, 10))
        post = rng.normal(size=(41, 10))
        post[:, 0] += 1.0  # an on-target shift; off-target shifts independent of it and of each other
        row = M.vat_metrics(pre, post, values, "v0", 1, null_b=200, stability_b=20, bootstrap_b=50)
        ginis.append(row["gini_corrected"])
        for k in ("nvat", "rho_rms", "gini"):
            lo, hi = row[f"{k}_ci"]
            assert lo <= row[f"{k}_corrected"] <= hi, (seed, k, row[f"{k}_corrected"], row[f"{k}_ci"])
        if not row["signal"]["nvat"]:
            assert row["gini_corrected"] == 0.0
    # Raw Gini of noise VATs is ≈ 0.11 and the Gini of clipped corrected VATs ≈ 0.6; the shown one is not.
    assert float(np.mean(ginis)) < 0.08
