"""Judgments → value states in SQL, against METRICS.md §2 worked example and hand-computed paired tables."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from runner.report import tables as report
from runner.store.states import coverage, paired_states, rating_rule, value_states
from runner.store.store import open_store

VALUES = ["hedonism", "power", "security"]
MISSING = "missing"  # unanswered (no response row); None = answered but unparseable


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
    store.con.execute("INSERT INTO requests BY NAME SELECT * FROM r")
    store.con.execute("INSERT INTO run_requests SELECT 'run', request_key, 'pre', NULL FROM r")
    answered = [(k, r[4]) for k, r in zip(keys, rows, strict=True) if r[4] != MISSING]
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
                ("s2", "hedonism", "pleasure", "express", MISSING),
            ],
        )
        states = value_states(store, ["run"], VALUES)
        cov = coverage(store, ["run"])
    s = states[("run", "pre", -1)]
    assert s.scenes == ["s1", "s2"]
    np.testing.assert_allclose(s.array[0], [0.75, 0.5, np.nan])
    np.testing.assert_allclose(s.array[1], [1.0, np.nan, np.nan])
    assert cov["run"] == {"planned": 11, "answered": 10, "parsed": 9, "unparseable": 1, "failed": 0}


# ---------------------------------------------------------------- paired items


def _add_issue16_columns(store) -> None:
    """The request columns of issue 16, for stores created before the schema has them."""
    for col, kind in (
        ("asked_value", "VARCHAR"),
        ("asked_micro_value", "VARCHAR"),
        ("variant", "VARCHAR"),
        ("scale_reversed", "BOOLEAN"),
    ):
        store.con.execute(f"ALTER TABLE requests ADD COLUMN IF NOT EXISTS {col} {kind}")


def _item(scene, value, micro, polarity, pre, post, **extra) -> dict[str, Any]:
    """One item judged in both conditions; ``pre``/``post`` are a digit, None (unparseable) or MISSING,
    or a (digit, expected rating) pair."""
    return {
        "scene": scene,
        "value": value,
        "micro": micro,
        "polarity": polarity,
        "pre": pre,
        "post": post,
        **extra,
    }


def _seed_pairs(store, items, run="run", target="hedonism", model="m", strategy="fewshot_4", step=None):
    """Store one run whose pre and post conditions judge ``items`` (distinct request keys per condition)."""
    _add_issue16_columns(store)
    requests, links, answers = [], [], []
    for i, it in enumerate(items):
        for cond in ("pre", "post"):
            key = f"{run}-{cond}-{i}"
            requests.append(
                {
                    "request_key": key,
                    "model": model,
                    "scene_id": it["scene"],
                    "scene_version": 1,
                    "action_id": it.get("action", f"a{i}"),
                    "value": it["value"],
                    "micro_value": it["micro"],
                    "polarity": it["polarity"],
                    "sample": 0,
                    "prompt_hash": key,
                    "asked_value": it.get("asked_value"),
                    "asked_micro_value": it.get("asked_micro"),
                    "variant": it.get("variant"),
                    "scale_reversed": it.get("reversed"),
                }
            )
            links.append(
                {
                    "run_id": run,
                    "request_key": key,
                    "condition": cond,
                    "step": step if cond == "post" else None,
                }
            )
            answer = it[cond]
            if answer == MISSING:
                continue
            digit, expected = answer if isinstance(answer, tuple) else (answer, None)
            answers.append(
                {
                    "request_key": key,
                    "model": model,
                    "text": str(digit),
                    "rating": digit,
                    "expected_rating": expected,
                    "attempts": 1,
                    "created_at": datetime.now(),
                }
            )
    store.con.register("q", pa.Table.from_pylist(requests))
    store.con.execute("INSERT INTO requests BY NAME SELECT * FROM q")
    store.con.register(
        "l",
        pa.Table.from_pylist(
            links,
            schema=pa.schema(
                [
                    ("run_id", pa.string()),
                    ("request_key", pa.string()),
                    ("condition", pa.string()),
                    ("step", pa.int32()),
                ]
            ),
        ),
    )
    store.con.execute("INSERT INTO run_requests BY NAME SELECT * FROM l")
    store.con.unregister("q")
    store.con.unregister("l")
    store.add_responses(answers)
    store.con.execute(
        "INSERT INTO runs (run_id, created_at, model, strategy, target, direction, split, n_scenes, config) "
        "VALUES (?, now(), ?, ?, ?, 'reinforce', 'test', 0, ?)",
        [run, model, strategy, target, json.dumps({"model": {"display_name": model}})],
    )


def test_pairing_drops_an_item_missing_in_either_condition_and_a_value_missing_a_polarity(store_path):
    items = [
        # s1 hedonism: the express item is unparseable in pre → it leaves both conditions, and hedonism in
        # s1 then has no express item: the value is missing in s1 (not the suppress item alone, ±1).
        _item("s1", "hedonism", "pleasure", "express", None, 5),
        _item("s1", "hedonism", "pleasure", "suppress", 2, 1),
        # s1 power, complete: pre (φ(4) + −φ(2))/2 = 0.5, post (φ(5) + −φ(1))/2 = 1.
        _item("s1", "power", "wealth", "express", 4, 5),
        _item("s1", "power", "wealth", "suppress", 2, 1),
        # s2 hedonism: enjoying_life express unanswered in post → left out of pre too; both polarities remain.
        # pre: pleasure (1 + 1)/2 = 1, enjoying_life 0.5 → 0.75; post: pleasure (1 + 0.5)/2, enjoying 1 → 0.875.
        _item("s2", "hedonism", "pleasure", "express", 5, 5),
        _item("s2", "hedonism", "pleasure", "suppress", 1, 2),
        _item("s2", "hedonism", "enjoying_life", "express", 4, MISSING),
        _item("s2", "hedonism", "enjoying_life", "suppress", 2, 1),
    ]
    with open_store(store_path) as store:
        _seed_pairs(store, items)
        ps = paired_states(store, ["run"], VALUES)[("run", -1)]
    assert ps.unit == "scene"
    assert ps.samples == ["s1", "s2"]
    np.testing.assert_allclose(ps.pre, [[np.nan, 0.5, np.nan], [0.75, np.nan, np.nan]])
    np.testing.assert_allclose(ps.post, [[np.nan, 1.0, np.nan], [0.875, np.nan, np.nan]])
    assert ps.n_items == 5  # 8 items − 2 missing in one condition − the lone s1 hedonism suppress item
    assert ps.coverage_by_value == {
        "hedonism": {"pre": 5, "post": 5, "paired": 3},
        "power": {"pre": 2, "post": 2, "paired": 2},
        "security": {"pre": 0, "post": 0, "paired": 0},
    }
    assert ps.rating_source == "text" and ps.rating_fallback_share == 0.0
    # Acquiescence weighs each polarity the same: s2 hedonism pre, express φ(5) = 1 (enjoying_life's express
    # left out), suppress (φ(1) + φ(2))/2 = −0.75 → (1 − 0.75)/2 = 0.125; s1 power (φ(4) + φ(2))/2 = 0.
    np.testing.assert_allclose(ps.acquiescence["pre"], [[np.nan, 0.0, np.nan], [0.125, np.nan, np.nan]])


def test_rating_rule_by_hand():
    assert rating_rule("text", 10, 10, 10) == ("text", False)
    assert rating_rule("expected", 0, 10, 10) == ("expected", False)
    assert rating_rule("auto", 0, 160, 160) == (
        "text",
        True,
    )  # the demo: no pre answer had an expected rating
    assert rating_rule("auto", 5, 10, 10) == ("expected", True)  # at the threshold (half)
    assert rating_rule("auto", 4, 10, 10) == ("text", True)


def test_one_rating_source_per_pair(store_path):
    # Run A, the demo's case: expected ratings only in post → both conditions use the digit.
    a = [
        _item("s1", "hedonism", "pleasure", "express", 4, (4, 4.6)),
        _item("s1", "hedonism", "pleasure", "suppress", 2, (2, 1.4)),
    ]
    # Run B: 3 of 4 items have expected ratings in both conditions → expected, and the fourth item (no
    # expected rating in pre) uses its digit in BOTH conditions (fallback share 1/4).
    b = [
        _item("s1", "hedonism", "pleasure", "express", (4, 4.5), (5, 4.9)),
        _item("s1", "hedonism", "pleasure", "suppress", (2, 1.5), (1, 1.2)),
        _item("s1", "power", "wealth", "express", (3, 3.2), (3, 2.8)),
        _item("s1", "power", "wealth", "suppress", 3, (4, 3.6)),
    ]
    with open_store(store_path) as store:
        _seed_pairs(store, a, run="A")
        _seed_pairs(store, b, run="B")
        auto = paired_states(store, ["A", "B"], VALUES)
        strict = paired_states(store, ["B"], VALUES, rating="expected")[("B", -1)]
    pa_, pb = auto[("A", -1)], auto[("B", -1)]
    assert (pa_.rating_source, pa_.rating_fallback_share) == ("text", 0.0)
    np.testing.assert_allclose(pa_.pre[0, 0], (0.5 + 0.5) / 2)  # digits 4 and 2, not post's 4.6 / 1.4
    np.testing.assert_allclose(pa_.post[0, 0], (0.5 + 0.5) / 2)
    assert (pb.rating_source, pb.rating_fallback_share) == ("expected", 0.25)
    # hedonism pre ((4.5−3)/2 + (3−1.5)/2)/2 = 0.75, post ((4.9−3)/2 + (3−1.2)/2)/2 = 0.925
    np.testing.assert_allclose(
        pb.pre[0, :2], [0.75, (0.1 + 0.0) / 2]
    )  # power: 3.2 → 0.1; suppress digit 3 → 0
    np.testing.assert_allclose(
        pb.post[0, :2], [0.925, (-0.1 - 0.5) / 2]
    )  # 2.8 → −0.1; suppress digit 4 → −0.5
    # Strict expected: the item without an expected rating in pre is missing → power loses its suppress item.
    assert strict.rating_fallback_share == 0.0
    np.testing.assert_allclose(strict.pre[0, :2], [0.75, np.nan])


def test_scene_action_unit_reads_the_asked_value_and_the_reversed_scale(store_path):
    # One action (written to express hedonism) asked about two values; for power, two asked micro-values.
    common = {"scene": "s1", "value": "hedonism", "micro": "pleasure", "polarity": "suppress", "action": "a1"}
    items = [
        # The answer carries its own sign: suppress-labelled action, rating 4 on hedonism → +0.5 (no σ).
        {**common, "asked_value": "hedonism", "asked_micro": "pleasure", "pre": 4, "post": 5},
        # Reversed scale: a displayed 2 means canonical 4 (+0.5); displayed 5 means 1 (−1).
        {**common, "asked_value": "power", "asked_micro": "wealth", "pre": 2, "post": 5, "reversed": True},
        {**common, "asked_value": "power", "asked_micro": "authority", "pre": 3, "post": 3},
        # A second action of the same scene: another sample, same cluster.
        {**common, "action": "a2", "asked_value": "power", "asked_micro": "wealth", "pre": 1, "post": 1},
    ]
    with open_store(store_path) as store:
        _seed_pairs(store, items)
        ps = paired_states(store, ["run"], VALUES)[("run", -1)]
    assert ps.unit == "scene_action"
    assert [s.split("\x1f") for s in ps.samples] == [["s1", "a1"], ["s1", "a2"]]
    assert ps.clusters.tolist() == [0, 0] and ps.scenes == ["s1"]
    np.testing.assert_allclose(ps.pre, [[0.5, (0.5 + 0.0) / 2, np.nan], [np.nan, -1.0, np.nan]])
    np.testing.assert_allclose(ps.post, [[1.0, (-1.0 + 0.0) / 2, np.nan], [np.nan, -1.0, np.nan]])
    # Acquiescence uses only items about the action's own value (hedonism here), and needs both polarities.
    assert np.isnan(ps.acquiescence["pre"]).all()


def _demo_items(unparseable_pre: bool) -> list[dict[str, Any]]:
    """8 scenes, 3 values, a judge answering "1" to everything; optionally one unparseable pre answer in
    each value (the demo: 3 unparseable pre answers → fake shifts of exactly −0.125)."""
    items = []
    for s in range(8):
        for v in VALUES:
            broken = unparseable_pre and s == VALUES.index(v)
            items.append(_item(f"s{s}", v, "m", "express", None if broken else 1, 1))
            items.append(_item(f"s{s}", v, "m", "suppress", 1, 1))
    return items


def test_unparseable_pre_answers_no_longer_make_fake_shifts(store_path):
    with open_store(store_path) as store:
        _seed_pairs(store, _demo_items(unparseable_pre=True))
        rows = report.build_rows(store, VALUES, {"bootstrap_b": 50, "stability_b": 20, "min_scenes": 3})
    (row,) = rows
    assert row["mean_shift"] == {"hedonism": 0.0, "power": 0.0, "security": 0.0}  # was −0.125 for each
    assert row["n_scenes_by_value"] == {"hedonism": 7, "power": 7, "security": 7}
    assert row["coverage_by_value"]["power"] == {"pre": 15, "post": 16, "paired": 14}
    assert row["unit"] == "scene" and row["rating_source"] == "text" and row["rating_fallback_share"] == 0.0
    # A judge that answers "1" to everything disagrees with every action: strongly nay-saying, flagged.
    assert row["acquiescence"]["pre"]["index"] == -1.0
    assert "acquiescence_bias:pre" in row["flags"]


def test_a_poison_run_is_left_out_with_a_warning_and_the_others_report(store_path, capsys):
    dead = [
        _item("s1", "hedonism", "m", "express", None, 3),
        _item("s1", "hedonism", "m", "suppress", None, 3),
    ]
    with open_store(store_path) as store:
        _seed_pairs(store, _demo_items(unparseable_pre=False), run="good")
        _seed_pairs(store, dead, run="dead")  # every pre answer unparseable
        _seed_pairs(store, [_item("s1", "power", "m", "express", 3, MISSING)], run="aborted")
        rows = report.build_rows(store, VALUES, {"bootstrap_b": 20, "stability_b": 10, "min_scenes": 3})
    assert [r["run_id"] for r in rows] == ["good"]
    err = capsys.readouterr().err
    assert "run dead" in err and "run aborted" in err and "left out of the report" in err


@pytest.mark.parametrize("rating", ["text", "auto"])
def test_paired_equals_unpaired_when_every_item_parses(store_path, rating):
    rng = np.random.default_rng(3)
    items = [
        _item(f"s{s}", v, u, pol, int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        for s in range(4)
        for v in VALUES
        for u in ("u1", "u2")
        for pol in ("express", "suppress")
    ]
    with open_store(store_path) as store:
        _seed_pairs(store, items)
        ps = paired_states(store, ["run"], VALUES, rating=rating)[("run", -1)]
        un = value_states(store, ["run"], VALUES, rating=rating)
    np.testing.assert_allclose(ps.pre, un[("run", "pre", -1)].array)
    np.testing.assert_allclose(ps.post, un[("run", "post", -1)].array)


def _variant_items(variant: str, lift: int, n_scenes: int = 6) -> list[dict[str, Any]]:
    """A scene–action run in one wording: post answers ``lift`` points higher on hedonism only."""
    items = []
    for s in range(n_scenes):
        for a in range(2):
            for v in VALUES:
                pre = 1 + (s + a + VALUES.index(v)) % 4
                post = min(5, pre + (lift + (s % 2) if v == "hedonism" else (s * a) % 2))
                items.append(
                    _item(
                        f"s{s}",
                        "hedonism",
                        "m",
                        "express",
                        pre,
                        post,
                        action=f"a{a}",
                        asked_value=v,
                        asked_micro="u",
                        variant=variant,
                    )
                )
    return items


def test_prompt_sensitivity_across_sibling_runs_and_within_a_run(store_path):
    params = {"bootstrap_b": 20, "stability_b": 10, "min_scenes": 3}
    with open_store(store_path) as store:
        _seed_pairs(store, _variant_items("base", 0), run="base")
        _seed_pairs(store, _variant_items("para1", 1), run="para1")
        _seed_pairs(
            store, _variant_items("base", 0) + _variant_items("para1", 1), run="both", strategy="fewshot_8"
        )
        rows = {r["run_id"]: r for r in report.build_rows(store, VALUES, params)}
    base, para1, both = rows["base"], rows["para1"], rows["both"]
    assert base["unit"] == "scene_action" and base["n_samples"] == 12 and base["n_scenes"] == 6
    sens = base["prompt_sensitivity"]
    assert sens is para1["prompt_sensitivity"] and sens["source"] == "sibling runs"
    assert sens["runs"] == {"base": "base", "para1": "para1"}
    # para1 adds one point to hedonism's post answers (capped at 5): its gain is larger, by exactly the
    # difference of the two rows' own gains.
    assert sens["gain_diff"]["para1"] == pytest.approx(para1["gain"] - base["gain"])
    assert sens["gain_diff"]["para1"] > 0
    within = both["prompt_sensitivity"]
    assert within["source"] == "variants within the run" and both["variant"] is None
    assert within["gain"] == pytest.approx(sens["gain"])  # the same items, split by wording
