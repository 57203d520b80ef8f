"""The shipped spec, loaded once per test process (read-only: copy it before changing anything)."""

from __future__ import annotations

import functools
from pathlib import Path

from runner.spec.load import SpecIndex, load_index

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""


@functools.cache
def shipped_index() -> SpecIndex:
    """``spec/`` of the checkout as a :class:`SpecIndex` (the lock is not checked)."""
    return load_index(ROOT / "spec", check_lock=False)
