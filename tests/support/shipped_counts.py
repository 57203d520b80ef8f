"""Counts of the shipped spec, for tests that check request counts: derived, never hard-coded.

A valid new scene or action must not break `make test` (issue 21): a test that expects "3 scenes of
requests" multiplies ``PER_SCENE`` instead of writing 120.
"""

from __future__ import annotations

from support.specs import shipped_index


def per_scene() -> int:
    """Actions per scene in the shipped spec (every scene has the same number; asserted)."""
    counts = {len(s.actions) for s in shipped_index().scenes.values()}
    assert len(counts) == 1, f"scenes have different action counts: {sorted(counts)}"
    return counts.pop()


PER_SCENE = per_scene()
"""Actions (one request each per condition) per scene."""


def items_per_value() -> int:
    """Actions per value and scene in the tests' spec (the frozen v0.1 scenes: one express, one suppress)."""
    values = len(shipped_index().value_ids)
    assert PER_SCENE % values == 0, f"{PER_SCENE} actions per scene do not split evenly over {values} values"
    return PER_SCENE // values


ITEMS_PER_VALUE = items_per_value()
"""What ``items_per_value=`` the vectorised simulation needs to match a run on the tests' spec."""
