"""The 56-D vs 10-D check (METRICS.md §9): micro-value states, the block coupling, the agreement and its null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runner.metrics import micro as micro_mod
from runner.metrics import vat as metrics
from runner.store.states import paired_states
from runner.store.store import open_store


def test_block_coupling_is_the_mean_of_each_off_diagonal_block():
    # Micro-values a1, a2 (value a) and b1 (value b), c1 (value c).
    r = np.array(
        [
            [1.0, 0.9, 0.2, -0.4],
            [0.9, 1.0, 0.6, np.nan],  # a2–c1 share too few samples
            [0.2, 0.6, 1.0, 0.5],
            [-0.4, np.nan, 0.5, 1.0],
        ]
    )
    groups = [np.array([0, 1]), np.array([2]), np.array([3])]
    out = micro_mod._block_coupling(r[None], groups)[0]
    # By hand: a–b = (0.2 + 0.6)/2 = 0.4; a–c = mean of (−0.4) (the NaN pair is left out); b–c = 0.5.
    want = np.array([[1.0, 0.4, -0.4], [0.4, 1.0, 0.5], [-0.4, 0.5, 1.0]])
    np.testing.assert_allclose(out, want)


def test_micro_values_that_copy_their_value_agree_exactly():
    rng = np.random.default_rng(3)
    lat = rng.standard_normal((60, 4))
    lat[:, 1] += 1.5 * lat[:, 0]  # values 0 and 1 coupled, 2 weakly, 3 not: distinct VAT(u)
    lat[:, 2] += 0.5 * lat[:, 0]
    copies = np.repeat(lat, 3, axis=1)  # three identical micro-values per value
    value_of = [f"v{u}" for u in range(4) for _ in range(3)]
    mc = metrics.micro_consistency(copies, value_of, ["v0", "v1", "v2", "v3"], b=50)
    assert mc["vat_rank_agreement"] == pytest.approx(1.0)
    assert mc["n_micro"] == 12 and mc["micro_pairs_defined"] == 1.0 and mc["not_computed"] is None
    assert 0.0 < mc["null"]["p"] <= 1.0


def test_too_few_shared_samples_is_said_not_hidden():
    rng = np.random.default_rng(4)
    d = rng.standard_normal((40, 20))
    d[rng.random(d.shape) < 0.9] = np.nan  # each micro-value in ~4 samples: no pair shares 5
    mc = metrics.micro_consistency(d, [f"v{i % 10}" for i in range(20)], [f"v{u}" for u in range(10)])
    assert mc["vat_rank_agreement"] is None and mc["beats_chance"] is False
    assert mc["not_computed"].startswith("only ") and mc["micro_pairs_defined"] < metrics.MICRO_MIN_DEFINED


def _staged_like(rng: np.random.Generator, coupling: float) -> np.ndarray:
    """79 scenes × 56 micro-values, each micro-value in ~36 % of scenes (two of a value's ~5.6 per scene)."""
    lat = rng.standard_normal((79, 10))
    lat[:, 5] += coupling * lat[:, 3]
    lat[:, 1] += coupling * lat[:, 3]
    d = lat[:, [i % 10 for i in range(56)]] + 0.7 * rng.standard_normal((79, 56))
    d[rng.random(d.shape) < 0.64] = np.nan
    return d


@pytest.mark.slow
def test_agreement_null_is_calibrated_and_coupling_raises_it():
    """80 datasets with nothing coupled: the 5 % test rejects at most 8 (binomial 1 % bound for 5 %);
    with two values coupled to a third the agreement is higher on average."""
    rng = np.random.default_rng(1)
    value_of, values = [f"v{i % 10}" for i in range(56)], [f"v{u}" for u in range(10)]
    none = [
        metrics.micro_consistency(_staged_like(rng, 0.0), value_of, values, b=100, seed=i) for i in range(80)
    ]
    hub = [
        metrics.micro_consistency(_staged_like(rng, 1.0), value_of, values, b=100, seed=i) for i in range(30)
    ]
    rejected = sum(m["beats_chance"] for m in none)
    assert rejected <= 8, rejected
    assert np.mean([m["vat_rank_agreement"] for m in hub]) > np.mean([m["null"]["mean"] for m in none])
    print({"rejected_of_80": rejected, "hub_rejected_of_30": sum(m["beats_chance"] for m in hub)})


def test_value_states_are_the_mean_of_their_micro_value_states(vat, store_path):
    res = vat(
        "run", "model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=5", "format=json"
    )
    assert res.code == 0, res.err
    from runner.spec.load import load_index

    values = load_index("spec").value_ids
    with open_store(store_path, read_only=True) as store:
        (ps,) = paired_states(store, [json.loads(res.out)["run_id"]], values).values()
    m = ps.micro
    assert m is not None and m.pre.shape == (len(ps.samples), len(m.ids))
    for u, v in enumerate(values):
        cols = [i for i, name in enumerate(m.value_of) if name == v]
        for state, micro in ((ps.pre, m.pre), (ps.post, m.post)):
            present = np.isfinite(micro[:, cols]).any(axis=1)
            np.testing.assert_allclose(state[present, u], np.nanmean(micro[present][:, cols], axis=1))
            assert not np.isfinite(state[~present, u]).any()
