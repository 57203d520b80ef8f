"""Content quality checks that run in ``vat validate`` (and so in CI on every scene pull request).

Beyond schema validity: an action must not name its own value, texts stay within length bounds, no two
actions are near-duplicates (within or across scenes), placeholder scenes left by `vat import` are
replaced, and the train/test split stays balanced by country and by topic.

Texts are folded (:func:`runner.core.textfold.fold`: NFKC, case, Cyrillic/Greek/Armenian look-alike letters,
invisible characters) before they are compared, so "sеcurity" with a Cyrillic "е" still names its value and a look-alike copy of an
action is still its near-duplicate.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from runner.core.errors import Problem
from runner.core.textfold import fold
from runner.spec.load import LOCK_FILE, SpecIndex

NEAR_DUPLICATE = 0.7
"""Jaccard similarity of normalised word sets at or above which two actions count as near-duplicates."""
SCENE_WORDS = (25, 140)
PLACEHOLDER_MARK = "Placeholder scene for "
"""How the scene text `vat import` writes for a dataset without scenes begins (flagged until replaced)."""
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
    """The normalised word set the near-duplicate check compares (folded, no stop words)."""
    return {w for w in re.findall(r"[a-z0-9']+", fold(text)) if w not in _STOP}


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
            if stem and re.search(stem, fold(a.text), re.IGNORECASE):
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


def similar_pairs(
    sets: Sequence[set[str]], threshold: float = NEAR_DUPLICATE
) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) of ``sets`` whose Jaccard similarity is ≥ ``threshold``, with the similarity.

    Exact, not approximate: prefix filtering (Bayardo et al., "Scaling up all pairs similarity search")
    finds every candidate pair, and each candidate is then measured as the former dense all-pairs
    matrix did (float32 intersection / union, compared with a float32 threshold), so the result is
    identical to it. Sets are taken smallest first; two sets x (larger) and y with J ≥ t share a word
    among the first |x| − ⌈t·|x|⌉ + 1 words of x and the first |y| − ⌈2t/(1+t)·|y|⌉ + 1 words of y,
    in one global order (rarest word first); only those words are indexed, so memory is linear in the
    words and time grows with the pairs that share rare words, not with n².
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold {threshold} must be in (0, 1]")
    loose = threshold - 1e-6  # the filter is a little looser than the test: it can only add candidates
    # A set is indexed after every smaller one is probed, so it is the larger of its pairs: J ≥ t then
    # needs an overlap ≥ 2t/(1+t)·|y| with each smaller y, and a shorter indexed prefix suffices.
    indexed = 2 * loose / (1 + loose)
    freq = Counter(w for ws in sets for w in ws)
    order = sorted(range(len(sets)), key=lambda k: len(sets[k]))  # a candidate is never larger
    postings: dict[str, list[int]] = defaultdict(list)
    sizes = [len(ws) for ws in sets]
    limit = np.float32(threshold)
    found = []
    for k in order:
        words, n = sets[k], sizes[k]
        ranked = sorted(words, key=lambda w: (freq[w], w))
        prefix = ranked[: n - math.ceil(loose * n) + 1]
        candidates = {c for w in prefix for c in postings[w] if sizes[c] >= loose * n}
        for c in candidates:
            inter = len(words & sets[c])
            union = n + sizes[c] - inter
            if inter < loose * union:  # clearly below: float32 rounding moves a ratio by < 1e-7
                continue
            sim = np.float32(inter) / np.float32(union)
            if sim >= limit:
                found.append((min(k, c), max(k, c), float(sim)))
        for w in ranked[: n - math.ceil(indexed * n) + 1]:
            postings[w].append(k)
    return sorted(found)


def near_duplicates(
    index: SpecIndex, threshold: float = NEAR_DUPLICATE
) -> list[tuple[str, str, str, str, float]]:
    """Pairs of actions whose word-set Jaccard similarity is ≥ threshold: (scene, action, scene, action, sim).

    Pairs come in the order of the scenes and their actions in ``index`` (the earlier action first).
    """
    items = [(s.id, a.id, _words(a.text)) for s in index.scenes.values() for a in s.actions]
    return [
        (items[i][0], items[i][1], items[j][0], items[j][1], sim)
        for i, j, sim in similar_pairs([ws for _, _, ws in items], threshold)
    ]


def placeholder_problems(index: SpecIndex) -> list[Problem]:
    """Scenes that still carry the placeholder text `vat import` writes when a dataset has no scenes."""
    out = []
    for scene in index.scenes.values():
        flagged = bool((scene.generated or {}).get("placeholder_scene"))
        if not (flagged or scene.text.startswith(PLACEHOLDER_MARK)):
            continue
        fix = (
            "write the real scene in `text` and remove `generated.placeholder_scene`"
            if scene.text.startswith(PLACEHOLDER_MARK)
            else "the text was replaced: remove `generated.placeholder_scene`"
        )
        out.append(
            Problem(
                _action_path(index, scene.id),
                _line(index, scene.id, ("text",)),
                "text",
                f"placeholder scene from `vat import` (the dataset had no scene text); {fix}",
            )
        )
    return out


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


def _shipped(index: SpecIndex) -> set[str]:
    """Scene ids whose (version, hash) is the one recorded in the spec lock: shipped and unchanged."""
    path = index.root / LOCK_FILE
    lock = json.loads(path.read_text()) if path.is_file() else {}
    return {
        sid
        for sid in index.scenes
        if (entry := lock.get(f"scenarios/{sid}"))
        and (entry.get("version"), entry.get("hash")) == index.hashes.get(f"scenarios/{sid}")
    }


def blame(
    index: SpecIndex, first: tuple[str, str], second: tuple[str, str], shipped: set[str]
) -> tuple[tuple[str, str], tuple[str, str]]:
    """(newer, older) of two near-duplicate actions, given as (scene id, action id): the newer one is fixed.

    Newer means, in this order: not shipped as recorded in the spec lock (a new or edited scene) rather
    than shipped; then the higher scene version; then the later scene id. Within one scene, the later
    action. So a contributed scene is blamed, never the shipped scene that was there first.
    """
    if first[0] == second[0]:
        return second, first

    def newness(scene_id: str) -> tuple[bool, int, str]:
        return (scene_id not in shipped, index.scenes[scene_id].version, scene_id)

    return (first, second) if newness(first[0]) > newness(second[0]) else (second, first)


def quality_problems(index: SpecIndex) -> list[Problem]:
    """Every quality problem of the scene set."""
    out = label_and_length_problems(index) + placeholder_problems(index) + split_balance(index)
    shipped = _shipped(index)
    for s1, a1, s2, a2, sim in near_duplicates(index):
        (scene, action), (other, other_action) = blame(index, (s1, a1), (s2, a2), shipped)
        i = next(k for k, a in enumerate(index.scenes[scene].actions) if a.id == action)
        out.append(
            Problem(
                _action_path(index, scene),
                _line(index, scene, ("actions", i, "text")),
                f"actions.{i}.text",
                f"near-duplicate of {other}/{other_action} (similarity {sim:.2f}); rewrite this one so they "
                "differ in substance",
            )
        )
    return out
