"""runner.spec.quality: the near-duplicate check (exact, sub-quadratic), who it blames, text folding, placeholders."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.specs import SPEC, shipped_index

from runner.core.textfold import fold
from runner.spec.load import SpecIndex, load_index
from runner.spec.quality import (
    _words,
    label_and_length_problems,
    near_duplicates,
    placeholder_problems,
    quality_problems,
    similar_pairs,
)

_index = shipped_index  # the shipped spec, loaded once (read-only)


def dense_near_duplicates(index: SpecIndex, threshold: float) -> list[tuple[str, str, str, str, float]]:
    """The former check, kept verbatim as the reference: a dense all-pairs float32 Jaccard matrix."""
    items = [(s.id, a.id, _words(a.text)) for s in index.scenes.values() for a in s.actions]
    vocab: dict[str, int] = {}
    for _, _, ws in items:
        for w in ws:
            vocab.setdefault(w, len(vocab))
    m = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for row, (_, _, ws) in enumerate(items):
        m[row, [vocab[w] for w in ws]] = 1.0
    inter = m @ m.T
    sizes = m.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    sim = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    i, j = np.nonzero(np.triu(sim >= threshold, k=1))
    return [
        (items[a][0], items[a][1], items[b][0], items[b][1], float(sim[a, b]))
        for a, b in zip(i, j, strict=True)
    ]


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.3, 0.2])
def test_same_pairs_as_the_dense_check_on_the_shipped_set(threshold):
    # At 0.7 the shipped set has no near-duplicates; 0.2 gives hundreds of pairs to compare.
    index = _index()
    expected = dense_near_duplicates(index, threshold)
    assert near_duplicates(index, threshold) == expected
    if threshold <= 0.2:
        assert len(expected) > 50  # the comparison is not vacuous


def test_same_pairs_as_the_dense_check_on_perturbed_copies():
    """Shipped actions with words dropped, swapped or repeated across scenes: many pairs near 0.7."""
    index = _index()
    rng = random.Random(7)
    scenes = dict(index.scenes)
    originals = list(index.scenes.values())[:30]
    for n, scene in enumerate(originals):
        actions = []
        for a in scene.actions:
            words = a.text.split()
            for _ in range(rng.randint(0, 3)):
                k = rng.randrange(1, len(words))
                if rng.random() < 0.5:
                    del words[k]
                else:
                    words[k] = rng.choice(["quietly", "today", "again", "first"])
            actions.append(a.model_copy(update={"text": " ".join(words)}))
        copy = scene.model_copy(update={"id": f"{scene.id}-copy{n}", "actions": actions})
        scenes[copy.id] = copy
    big = SpecIndex(index.root, index.value_system, scenes, {}, {}, {})
    for threshold in (0.7, 0.6, 0.85):
        expected = dense_near_duplicates(big, threshold)
        assert near_duplicates(big, threshold) == expected
        assert len(expected) > 100


def test_similar_pairs_edge_cases():
    sets = [set(), set(), {"a"}, {"a"}, {"a", "b", "c"}, {"a", "b", "c", "d"}, {"x", "y"}]
    assert similar_pairs(sets, 0.75) == [(2, 3, 1.0), (4, 5, 0.75)]  # empty sets are nobody's duplicate
    assert similar_pairs(sets, 1.0) == [(2, 3, 1.0)]
    with pytest.raises(ValueError, match="threshold"):
        similar_pairs(sets, 0.0)


def test_random_sets_match_brute_force():
    rng = random.Random(3)
    vocab = [f"w{k}" for k in range(40)]
    sets = [set(rng.sample(vocab, rng.randint(1, 9))) for _ in range(400)]
    for t in (0.3, 0.5, 0.7):
        brute = [
            (i, j, float(np.float32(len(a & b)) / np.float32(len(a | b))))
            for i, a in enumerate(sets)
            for j, b in enumerate(sets)
            if i < j and np.float32(len(a & b)) / np.float32(len(a | b)) >= np.float32(t)
        ]
        assert similar_pairs(sets, t) == brute and brute


# ---------------------------------------------------------------- folding


def test_folding_leaves_the_shipped_word_sets_alone():
    """runner.core.textfold has its own tests; here: on the shipped set, folding changes no word set."""
    import re

    from runner.spec.quality import _STOP

    def former(text: str) -> set[str]:  # the word split before folding
        return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP}

    index = _index()
    # The former split dropped non-ASCII letters ("café" → "caf"), so compare where it was defined.
    texts = [a.text for s in index.scenes.values() for a in s.actions if a.text.isascii()]
    assert len(texts) > 1000 and all(_words(t) == former(t) for t in texts)
    assert fold("sеcurity") == "security" and _words("Sеcurity ﬁrst") == {"security", "first"}
    assert former("Sеcurity ﬁrst") != {"security", "first"}  # what folding adds


def _with_action_text(scene_id: str, k: int, text: str, new_id: str | None = None) -> SpecIndex:
    index = _index()
    scene = index.scenes[scene_id]
    actions = list(scene.actions)
    actions[k] = actions[k].model_copy(update={"text": text})
    changed = scene.model_copy(update={"actions": actions, **({"id": new_id} if new_id else {})})
    scenes = {**index.scenes, changed.id: changed}
    return SpecIndex(index.root, index.value_system, scenes, {}, {}, dict(index.hashes))


def test_names_its_own_value_through_look_alike_letters():
    index = _index()
    scene = next(s for s in index.scenes.values() if any(a.value == "security" for a in s.actions))
    k = next(i for i, a in enumerate(scene.actions) if a.value == "security")
    spoofed = _with_action_text(scene.id, k, "I put the sеcurity of my family before anything else here.")
    assert any(
        "names its own value (security)" in p.message and p.field == f"actions.{k}.text"
        for p in label_and_length_problems(spoofed)
    )


def test_a_look_alike_copy_is_a_near_duplicate():
    index = _index()
    scene = next(iter(index.scenes.values()))
    text = scene.actions[0].text
    spoofed = text.replace("a", "а").replace("o", "о")  # Cyrillic а and о throughout
    assert spoofed != text
    other = _with_action_text(scene.id, 1, spoofed)
    pairs = near_duplicates(other)
    assert (scene.id, scene.actions[0].id, scene.id, scene.actions[1].id, 1.0) in pairs


# ---------------------------------------------------------------- blame


def _spec_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "spec"
    shutil.copytree(SPEC, dst)
    return dst


def _copy_scene(spec: Path, source_id: str, new_id: str, version: int | None = None) -> Path:
    """A contributed scene: the shipped file under a new id (so every action duplicates the original)."""
    from runner.core.yamlio import read_yaml

    country = source_id.split("-")[0]
    src = spec / "scenarios" / country / f"{source_id.removeprefix(country + '-')}.yaml"
    data: dict[str, Any] = dict(read_yaml(src).data)
    data["id"] = new_id
    data["topic"] = re.sub(r"-\d+$", "", new_id.removeprefix(country + "-"))  # the id names its cell
    if version:
        data["version"] = version
    dst = spec / "scenarios" / country / f"{new_id.removeprefix(country + '-')}.yaml"
    dst.write_text(json.dumps(data, ensure_ascii=False))  # JSON is YAML
    return dst


@pytest.mark.parametrize("new_id", ["ca-citizenship-9", "ca-work-9"])
def test_near_duplicates_blame_the_contributed_scene_not_the_shipped_one(tmp_path, new_id):
    # Whether the new id sorts before or after the shipped one, the new file is the one to fix.
    spec = _spec_copy(tmp_path)
    new_file = _copy_scene(spec, "ca-work", new_id)
    index = load_index(spec, check_lock=False)
    dups = [p for p in quality_problems(index) if "near-duplicate" in p.message]
    assert len(dups) == len(index.scenes["ca-work"].actions)
    assert {Path(p.path).parts[-3:] for p in dups} == {new_file.parts[-3:]}
    assert all("near-duplicate of ca-work/" in p.message for p in dups)


def test_an_edited_shipped_scene_is_blamed_over_an_unchanged_one(tmp_path):
    # Both files are in git and in the lock; the one whose content no longer matches the lock is newer.
    spec = _spec_copy(tmp_path)
    edited = _copy_scene(spec, "ca-work", "ca-health", version=3)  # ca-health rewritten as a copy of ca-work
    index = load_index(spec, check_lock=False)
    dups = [p for p in quality_problems(index) if "near-duplicate" in p.message]
    assert dups and {Path(p.path).parts[-3:] for p in dups} == {edited.parts[-3:]}


# ---------------------------------------------------------------- placeholders


def test_placeholder_scenes_are_flagged_until_replaced():
    index = _index()
    scene = index.scenes["us-health"]
    text = "Placeholder scene for United States, topic health: the imported dataset gives these actions ..."
    held = scene.model_copy(
        update={"text": text, "generated": {"by": "vat import", "placeholder_scene": True}}
    )
    replaced = held.model_copy(update={"text": scene.text})
    done = replaced.model_copy(update={"generated": {"by": "vat import"}})
    for s, expect in ((held, "write the real scene"), (replaced, "remove `generated.placeholder_scene`")):
        probe = SpecIndex(index.root, index.value_system, {s.id: s}, {}, {}, {})
        (p,) = placeholder_problems(probe)
        assert p.field == "text" and expect in p.message
    assert placeholder_problems(SpecIndex(index.root, index.value_system, {done.id: done}, {}, {}, {})) == []
    assert placeholder_problems(index) == []  # nothing shipped is a placeholder


def dense_draft_near_duplicates(
    drafts: list[Any], others: list[Any]
) -> list[tuple[str, str, str, str, float]]:
    """The former draft check, kept as the reference: a dense drafts × (drafts + others) matrix."""
    mine = [(s.id, a.id, _words(a.text)) for s in drafts for a in s.actions]
    every = mine + [(s.id, a.id, _words(a.text)) for s in others for a in s.actions]
    vocab: dict[str, int] = {}
    for _, _, ws in every:
        for w in ws:
            vocab.setdefault(w, len(vocab))

    def matrix(items: list[tuple[str, str, set[str]]]) -> Any:
        m = np.zeros((len(items), len(vocab)), dtype=np.float32)
        for row, (_, _, ws) in enumerate(items):
            m[row, [vocab[w] for w in ws]] = 1.0
        return m

    a, b = matrix(mine), matrix(every)
    inter = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - inter
    sim = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    np.fill_diagonal(sim[:, : len(mine)], 0.0)
    return [
        (mine[i][0], mine[i][1], every[j][0], every[j][1], float(sim[i, j]))
        for i, j in zip(*np.nonzero(sim >= 0.7), strict=True)
    ]


def test_draft_check_gives_the_dense_pairs_in_the_dense_order():
    from runner.dataset.draft import draft_near_duplicates

    index = _index()
    rng = random.Random(11)
    drafts = []
    for n, scene in enumerate(list(index.scenes.values())[:12]):
        actions = []
        for a in scene.actions:
            words = a.text.split()
            if rng.random() < 0.7:
                del words[rng.randrange(1, len(words))]
            actions.append(a.model_copy(update={"text": " ".join(words)}))
        drafts.append(scene.model_copy(update={"id": f"{scene.id}-draft{n}", "actions": actions}))
    drafts += [d.model_copy(update={"id": d.id + "-twin"}) for d in drafts[:3]]  # drafts that copy drafts
    others = list(index.scenes.values())
    expected = dense_draft_near_duplicates(drafts, others)
    assert draft_near_duplicates(drafts, others) == expected
    assert len(expected) > 200 and any(o.endswith("-twin") for _, _, o, _, _ in expected)
