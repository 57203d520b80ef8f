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
