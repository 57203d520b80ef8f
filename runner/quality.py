"""Content quality checks that run in ``vat validate`` (and so in CI on every scene pull request).

Beyond schema validity: an action must not name its own value, texts stay within length bounds, no two
actions are near-duplicates (within or across scenes), and the train/test split stays balanced by
country and by topic.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from runner.errors import Problem
from runner.load import SpecIndex

NEAR_DUPLICATE = 0.7
"""Jaccard similarity of normalised word sets at or above which two actions count as near-duplicates."""
SCENE_WORDS = (25, 140)
ACTION_MIN_WORDS = 5
TEST_SHARE = (0.15, 0.5)
"""Allowed share of test scenes per country and per topic (with at least 4 scenes in the group)."""

# Word stems that name each value; an action containing its own value's stem names the value.
LABEL_STEMS: dict[str, str] = {
    "self_direction": r"self[- ]?direct",
    "stimulation": r"stimulat",
    "hedonism": r"hedonis",
    "achievement": r"achievement",
    "power": r"\bpower\b",
    "security": r"\bsecurity\b",
    "conformity": r"\bconform",
    "tradition": r"\btradition",
    "benevolence": r"benevolen",
    "universalism": r"universalis",
}
_STOP = frozenset(
    [
        "i",
        "a",
        "an",
        "the",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "for",
        "with",
        "my",
        "me",
        "our",
        "we",
        "is",
        "it",
        "that",
        "this",
        "so",
        "as",
        "by",
        "from",
        "be",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP}


def _action_path(index: SpecIndex, scene_id: str) -> str:
    return index.files.get(f"scenarios/{scene_id}", f"spec/scenarios/{scene_id}")


def _line(index: SpecIndex, scene_id: str, loc: tuple[str | int, ...]) -> int:
    lines = index.lines.get(f"scenarios/{scene_id}", {})
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 0)


def label_and_length_problems(index: SpecIndex) -> list[Problem]:
    """Actions that name their value or are too short; scenes outside the word bounds."""
    out = []
    for scene in index.scenes.values():
        path = _action_path(index, scene.id)
        n = len(scene.text.split())
        if not SCENE_WORDS[0] <= n <= SCENE_WORDS[1]:
            out.append(
                Problem(
                    path,
                    _line(index, scene.id, ("text",)),
                    "text",
                    f"scene has {n} words; keep it between {SCENE_WORDS[0]} and {SCENE_WORDS[1]}",
                )
            )
        for i, a in enumerate(scene.actions):
            stem = LABEL_STEMS.get(a.value)
            if stem and re.search(stem, a.text, re.IGNORECASE):
                out.append(
                    Problem(
                        path,
                        _line(index, scene.id, ("actions", i, "text")),
                        f"actions.{i}.text",
                        f"the action names its own value ({a.value}); express it through what is done",
                    )
                )
            if len(a.text.split()) < ACTION_MIN_WORDS:
                out.append(
                    Problem(
                        path,
                        _line(index, scene.id, ("actions", i, "text")),
                        f"actions.{i}.text",
                        f"action has fewer than {ACTION_MIN_WORDS} words; make it concrete",
                    )
                )
    return out


def near_duplicates(
    index: SpecIndex, threshold: float = NEAR_DUPLICATE
) -> list[tuple[str, str, str, str, float]]:
    """Pairs of actions whose word-set Jaccard similarity is ≥ threshold: (scene, action, scene, action, sim)."""
    items = [(s.id, a.id, _words(a.text)) for s in index.scenes.values() for a in s.actions]
    if len(items) < 2:
        return []
    vocab: dict[str, int] = {}
    for _, _, ws in items:
        for w in ws:
            vocab.setdefault(w, len(vocab))
    m = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for row, (_, _, ws) in enumerate(items):
        m[row, [vocab[w] for w in ws]] = 1.0
    inter = m @ m.T  # all pairwise intersections in one matrix product
    sizes = m.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    sim = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    i, j = np.nonzero(np.triu(sim >= threshold, k=1))
    return [
        (items[a][0], items[a][1], items[b][0], items[b][1], float(sim[a, b]))
        for a, b in zip(i, j, strict=True)
    ]


def split_balance(index: SpecIndex) -> list[Problem]:
    """Test share per country and per topic within bounds (groups of ≥ 4 scenes)."""
    out = []
    for attr in ("country", "topic"):
        groups: dict[str, list[str]] = defaultdict(list)
        for s in index.scenes.values():
            groups[getattr(s, attr)].append(s.split.value)
        for name, splits in sorted(groups.items()):
            if len(splits) < 4:
                continue
            share = splits.count("test") / len(splits)
            if not TEST_SHARE[0] <= share <= TEST_SHARE[1]:
                out.append(
                    Problem(
                        "spec/scenarios",
                        0,
                        "split",
                        f"{attr} {name!r} has {share:.0%} test scenes; keep it between "
                        f"{TEST_SHARE[0]:.0%} and {TEST_SHARE[1]:.0%} by moving scenes between splits",
                    )
                )
    return out


def quality_problems(index: SpecIndex) -> list[Problem]:
    """Every quality problem of the scene set."""
    out = label_and_length_problems(index) + split_balance(index)
    for s1, a1, s2, a2, sim in near_duplicates(index):
        i = next(k for k, a in enumerate(index.scenes[s2].actions) if a.id == a2)
        out.append(
            Problem(
                _action_path(index, s2),
                _line(index, s2, ("actions", i, "text")),
                f"actions.{i}.text",
                f"near-duplicate of {s1}/{a1} (similarity {sim:.2f}); rewrite one so they differ in substance",
            )
        )
    return out
