"""Judgments → value states in SQL, against METRICS.md §2 worked example."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa

from runner.states import coverage, value_states
from runner.store import open_store


def _seed(store, rows):
    """rows: (scene, value, micro, polarity, rating or None) for one run's pre condition."""
    keys = [f"k{i}" for i in range(len(rows))]
    store.con.register(
        "r",
        pa.table(
            {
                "request_key": keys,
                "model": ["m"] * len(rows),
                "scene_id": [r[0] for r in rows],
                "scene_version": [1] * len(rows),
                "action_id": [f"a{i}" for i in range(len(rows))],
                "value": [r[1] for r in rows],
                "micro_value": [r[2] for r in rows],
                "polarity": [r[3] for r in rows],
                "sample": [0] * len(rows),
                "prompt_hash": ["p"] * len(rows),
            }
        ),
    )
    store.con.execute("INSERT INTO requests SELECT * FROM r")
    store.con.execute("INSERT INTO run_requests SELECT 'run', request_key, 'pre', NULL FROM r")
    answered = [(k, r[4]) for k, r in zip(keys, rows, strict=True) if r[4] != "missing"]
    store.add_responses(
        [
            {
                "request_key": k,
                "model": "m",
                "text": str(v),
                "rating": v,
                "attempts": 1,
                "created_at": datetime.now(),
            }
            for k, v in answered
        ]
    )


def test_micro_value_averaging_matches_the_worked_example(store_path):
    # METRICS.md §6: pleasure express 5, pleasure suppress 2, enjoying_life express 4, suppress 1 → 0.75.
    with open_store(store_path) as store:
        _seed(
            store,
            [
                ("s1", "hedonism", "pleasure", "express", 5),
                ("s1", "hedonism", "pleasure", "suppress", 2),
                ("s1", "hedonism", "enjoying_life", "express", 4),
                ("s1", "hedonism", "enjoying_life", "suppress", 1),
                # Micro-value weighting: one item on micro A (e=+1), three on micro B (e=0) → (1 + 0)/2, not 1/4.
                ("s1", "power", "wealth", "express", 5),
                ("s1", "power", "authority", "express", 3),
                ("s1", "power", "authority", "suppress", 3),
                ("s1", "power", "authority", "express", 3),
                # Unparseable and unanswered judgments drop out of the mean.
                ("s2", "hedonism", "pleasure", "express", 5),
                ("s2", "hedonism", "pleasure", "suppress", None),
                ("s2", "hedonism", "pleasure", "express", "missing"),
            ],
        )
        states = value_states(store, ["run"], ["hedonism", "power", "security"])
        cov = coverage(store, ["run"])
    s = states[("run", "pre", -1)]
    assert s.scenes == ["s1", "s2"]
    np.testing.assert_allclose(s.array[0], [0.75, 0.5, np.nan])
    np.testing.assert_allclose(s.array[1], [1.0, np.nan, np.nan])
    assert cov["run"] == {"planned": 11, "answered": 10, "parsed": 9, "unparseable": 1, "failed": 0}
