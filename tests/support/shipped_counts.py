"""Counts of the shipped spec, for tests that check request counts: derived, never hard-coded.

A valid new scene or action must not break `make test` (issue 21): a test that expects "3 scenes of
requests" multiplies ``PER_SCENE`` instead of writing 120.
"""

from __future__ import annotations

import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _index():  # noqa: ANN202 - a SpecIndex; imported lazily so collecting tests stays cheap
    from runner.spec.load import load_index

    return load_index(ROOT / "spec")


def per_scene() -> int:
    """Actions per scene in the shipped spec (every scene has the same number; asserted)."""
    counts = {len(s.actions) for s in _index().scenes.values()}
    assert len(counts) == 1, f"scenes have different action counts: {sorted(counts)}"
    return counts.pop()


def per_value() -> int:
    """Actions per value in one scene (express and suppress, per micro-value)."""
    return per_scene() // len(_index().values)


def scenes(split: str = "test") -> int:
    """Scenes in ``split`` ("all" for every scene)."""
    return len(_index().scenes_in(split))


PER_SCENE = per_scene()
"""Actions (one request each per condition) per scene."""
