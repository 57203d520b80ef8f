"""Make generation/micro_plan.json: the split of each cell's second scene and two micro-values per (scene, value).

The dataset holds two scenes per country × topic cell (``<topic>.yaml`` and ``<topic>-2.yaml``). Every
(scene, value) carries two micro-values of that value, each with an express and a suppress action. This
script assigns them deterministically (no randomness; ties go to the order of spec/values/ and of
COUNTRIES / TOPICS) so that, over the test split, every micro-value of a value appears in several scenes
and every pair of micro-values of a value shares at least one scene.

Rules:

- An existing first scene keeps its split (v0.1 stays reproducible) and its current micro-value as the
  first of its pair (the micro-value of its ``<value>-express`` action); the plan gives it a second.
- Second scenes are split to bring the whole set to ≈ 30 % test, stratified: test slots go one at a
  time to the country (and, separately, the topic) with the fewest test scenes so far, then a 0/1
  cell matrix with those row and column sums is built greedily (Gale–Ryser order), preferring cells
  whose first scene is train.
- Micro-values are assigned split by split (test first), constrained scenes first: each scene takes
  the pair covered least often so far in its split, then the micro-values used least often.

Run from the repository root: ``python generation/make_micro_plan.py`` writes the plan and prints its
coverage; ``--check`` only verifies that the committed plan is what the script makes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import yaml

from runner.spec.models import COUNTRIES, TOPICS

ROOT = Path(__file__).resolve().parent.parent
VALUES_FILE = ROOT / "spec" / "values" / "schwartz10.yaml"
SCENES_DIR = ROOT / "spec" / "scenarios"
PLAN_FILE = ROOT / "generation" / "micro_plan.json"
TEST_SHARE = 0.30


def load_values() -> dict[str, list[str]]:
    """Value id → its micro-value ids, in the order of spec/values/schwartz10.yaml."""
    doc = yaml.safe_load(VALUES_FILE.read_text())
    return {v["id"]: [m["id"] for m in v["micro_values"]] for v in doc["values"]}


def load_first_scenes(values: dict[str, list[str]]) -> dict[str, dict]:
    """Each cell's first scene (``<cc>/<topic>.yaml``): its split and its first micro-value per value."""
    out = {}
    for cc in COUNTRIES:
        for topic in TOPICS:
            path = SCENES_DIR / cc / f"{topic}.yaml"
            if not path.exists():
                sys.exit(
                    f"{path.relative_to(ROOT)}: missing; every cell needs its first scene before planning"
                )
            doc = yaml.safe_load(path.read_text())
            first = {
                a["value"]: a.get("micro_value") for a in doc["actions"] if a["id"] == f"{a['value']}-express"
            }
            missing = [v for v in values if not first.get(v)]
            if missing:
                sys.exit(
                    f"{path.relative_to(ROOT)}: no micro_value on the {', '.join(missing)} express action(s); "
                    "set one so the plan can pair it"
                )
            out[doc["id"]] = {"country": cc, "topic": topic, "split": doc["split"], "first": first}
    return out


def _quotas(groups: list[str], have: Counter[str], slots: int) -> Counter[str]:
    """Hand ``slots`` test places one at a time to the group with the fewest test scenes so far."""
    total, extra = Counter(have), Counter()
    for _ in range(slots):
        g = min(groups, key=lambda g: (total[g], groups.index(g)))
        total[g] += 1
        extra[g] += 1
    return extra


def new_splits(first: dict[str, dict]) -> dict[tuple[str, str], str]:
    """Split of each cell's second scene, stratified by country and topic (see the module docstring)."""
    countries, topics = list(COUNTRIES), list(TOPICS)
    n_test = round(TEST_SHARE * 2 * len(first)) - sum(s["split"] == "test" for s in first.values())
    row = _quotas(countries, Counter(s["country"] for s in first.values() if s["split"] == "test"), n_test)
    col = _quotas(topics, Counter(s["topic"] for s in first.values() if s["split"] == "test"), n_test)
    first_split = {(s["country"], s["topic"]): s["split"] for s in first.values()}
    test: set[tuple[str, str]] = set()
    for cc in sorted(countries, key=lambda c: (-row[c], countries.index(c))):
        ranked = sorted(topics, key=lambda t: (-col[t], first_split[cc, t] == "test", topics.index(t)))
        for t in ranked[: row[cc]]:
            test.add((cc, t))
            col[t] -= 1
    if any(col.values()):
        sys.exit("internal: the split quotas have no 0/1 matrix; report this as a bug")
    return {(cc, t): ("test" if (cc, t) in test else "train") for cc in countries for t in topics}


def assign_pairs(scenes: list[tuple[str, str | None]], micros: list[str]) -> dict[str, list[str]]:
    """Two micro-values per scene: the least-covered pair first, then the least-used micro-values."""
    used: Counter[str] = Counter()
    pairs: Counter[frozenset[str]] = Counter()
    out = {}
    for sid, fixed in sorted(scenes, key=lambda s: (s[1] is None, s[0])):
        if fixed is not None:
            options = [(fixed, m) for m in micros if m != fixed]
        else:
            options = list(itertools.combinations(micros, 2))
        a, b = min(
            options,
            key=lambda p: (pairs[frozenset(p)], used[p[0]] + used[p[1]], max(used[p[0]], used[p[1]])),
        )
        used.update([a, b])
        pairs[frozenset((a, b))] += 1
        out[sid] = [a, b]
    return out


def make_plan() -> dict:
    """The whole plan: the split rule, and per scene its split and two micro-values per value."""
    values = load_values()
    first = load_first_scenes(values)
    second = new_splits(first)
    scenes: dict[str, dict] = {}
    for sid, s in first.items():
        scenes[sid] = {"country": s["country"], "topic": s["topic"], "split": s["split"], "existing": True}
    for (cc, t), split in second.items():
        scenes[f"{cc}-{t}-2"] = {"country": cc, "topic": t, "split": split, "existing": False}
    for s in scenes.values():
        s["micro_values"] = {}
    for value, micros in values.items():
        for split in ("test", "train"):
            todo = [
                (sid, first[sid]["first"][value] if s["existing"] else None)
                for sid, s in scenes.items()
                if s["split"] == split
            ]
            for sid, pair in assign_pairs(todo, micros).items():
                scenes[sid]["micro_values"][value] = pair
    return {
        "about": "Made by generation/make_micro_plan.py; do not edit by hand. Per scene: split and, per value, "
        "[first micro-value (ids <value>-express/-suppress), second (ids <value>-<micro>-express/-suppress)].",
        "test_share": TEST_SHARE,
        "scenes": dict(sorted(scenes.items())),
    }


def coverage(plan: dict, values: dict[str, list[str]], split: str) -> list[str]:
    """One line per value: micro-value appearances (min–max) and pairs covered, over one split."""
    rows = [s for s in plan["scenes"].values() if split == "all" or s["split"] == split]
    lines = [f"{split}: {len(rows)} scenes"]
    for value, micros in values.items():
        used = Counter(m for s in rows for m in s["micro_values"][value])
        pairs = Counter(frozenset(s["micro_values"][value]) for s in rows)
        n_pairs = len(micros) * (len(micros) - 1) // 2
        lines.append(
            f"  {value:<15} {len(micros)} micro-values, each in {min(used[m] for m in micros)}–"
            f"{max(used[m] for m in micros)} scenes; pairs covered {sum(1 for p in pairs if p)}/{n_pairs}, "
            f"each in {min(pairs[frozenset(p)] for p in itertools.combinations(micros, 2))}–{max(pairs.values())}"
        )
    return lines


def split_lines(plan: dict) -> list[str]:
    """Test share per country and per topic."""
    out = []
    for attr in ("country", "topic"):
        c = Counter((s[attr], s["split"]) for s in plan["scenes"].values())
        names = sorted({k for k, _ in c})
        out.append(
            f"test scenes by {attr}: "
            + ", ".join(f"{n} {c[n, 'test']}/{c[n, 'test'] + c[n, 'train']}" for n in names)
        )
    return out


def main() -> int:
    """Write (or with --check, verify) the plan and print its coverage."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only verify that the committed plan is up to date")
    args = ap.parse_args()
    plan = make_plan()
    text = json.dumps(plan, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        if not PLAN_FILE.exists() or PLAN_FILE.read_text() != text:
            print(f"{PLAN_FILE.relative_to(ROOT)} is out of date; run python generation/make_micro_plan.py")
            return 1
    else:
        PLAN_FILE.write_text(text)
    values = load_values()
    n_test = sum(s["split"] == "test" for s in plan["scenes"].values())
    print(f"{len(plan['scenes'])} scenes, {n_test} test ({n_test / len(plan['scenes']):.1%})")
    print("\n".join(split_lines(plan)))
    for split in ("test", "train", "all"):
        print("\n".join(coverage(plan, values, split)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
