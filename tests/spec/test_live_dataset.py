"""The live dataset in spec/ (not the tests' frozen scene set): its scale, split and micro-value design (issue 18)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

from support.specs import LIVE_SPEC, live_index

from runner.execute.providers import sim
from runner.spec.load import collect
from runner.spec.models import COUNTRIES, TOPICS


def test_the_live_spec_validates_at_the_papers_scale() -> None:
    index, problems = collect(LIVE_SPEC)
    assert problems == [] and index is not None
    assert len(index.scenes) == 264 and sum(len(s.actions) for s in index.scenes.values()) == 10_560
    cells = Counter((s.country, s.topic) for s in index.scenes.values())
    assert set(cells) == set(itertools.product(COUNTRIES, TOPICS)) and set(cells.values()) == {2}


def test_every_scene_has_two_micro_values_per_value_each_with_both_polarities() -> None:
    index = live_index()
    for scene in index.scenes.values():
        seen: dict[str, Counter[str]] = defaultdict(Counter)
        for action in scene.actions:
            seen[action.value][action.micro_value] += 1
            assert index.micro_to_value[action.micro_value] == action.value, (scene.id, action.id)
        assert set(seen) == set(index.value_ids), scene.id
        assert all(len(m) == 2 and set(m.values()) == {2} for m in seen.values()), scene.id
        polarities = Counter((a.micro_value, a.polarity) for a in scene.actions)
        assert set(polarities.values()) == {1}, scene.id


def test_the_split_is_about_70_30_and_balanced_by_country_and_topic() -> None:
    scenes = list(live_index().scenes.values())
    test = [s for s in scenes if s.split == "test"]
    assert len(test) == 79 and abs(len(test) / len(scenes) - 0.30) < 0.01
    by_country, by_topic = Counter(s.country for s in test), Counter(s.topic for s in test)
    assert max(by_country.values()) - min(by_country.values()) <= 1
    assert max(by_topic.values()) - min(by_topic.values()) <= 1


def test_on_the_test_split_every_pair_of_micro_values_of_a_value_meets_in_a_scene() -> None:
    index = live_index()
    meets: Counter[frozenset[str]] = Counter()
    appears: Counter[str] = Counter()
    for scene in index.scenes_in("test"):
        by_value: dict[str, set[str]] = defaultdict(set)
        for action in scene.actions:
            by_value[action.value].add(action.micro_value)
        for micros in by_value.values():
            appears.update(micros)
            meets.update(frozenset(p) for p in itertools.combinations(sorted(micros), 2))
    for value in index.value_ids:
        micros = sorted(m for m, v in index.micro_to_value.items() if v == value)
        assert all(appears[m] >= 3 for m in micros), value
        assert all(meets[frozenset(p)] >= 1 for p in itertools.combinations(micros, 2)), value


def test_the_vectorised_simulation_assumes_the_live_scenes_design() -> None:
    index = live_index()
    per_value = {len(s.actions) // len(index.value_ids) for s in index.scenes.values()}
    assert per_value == {sim.ITEMS_PER_VALUE}
