"""The shipped spec, loaded once per test process (read-only: copy it before changing anything)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.core.yamlio import read_yaml
from runner.spec.load import SpecIndex, check_scene, load_index
from runner.spec.models import Scene

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""

SCHWARTZ = [
    "self_direction",
    "stimulation",
    "hedonism",
    "achievement",
    "power",
    "security",
    "conformity",
    "tradition",
    "benevolence",
    "universalism",
]
"""The ten Schwartz value ids in circle order, as spec/values has them (metric tests need no spec)."""


@functools.cache
def shipped_index() -> SpecIndex:
    """``spec/`` of the checkout as a :class:`SpecIndex` (the lock is not checked)."""
    return load_index(ROOT / "spec", check_lock=False)


def checked_scene(path: Path) -> Scene:
    """A written scene file: it validates as a Scene and its references resolve in the shipped spec.

    Only "incomplete" problems (a draft's review notes) are allowed.
    """
    index = shipped_index()
    ydoc = read_yaml(path)
    scene = Scene.model_validate(ydoc.data)
    problems = check_scene(scene, ydoc, index.value_ids, index.micro_to_value)
    assert not [p for p in problems if "incomplete" not in p.message], problems
    return scene


def json_verb(vat: Callable[..., Any], verb: str, *args: str) -> tuple[Any, dict[str, Any]]:
    """Run ``vat <verb> ... format=json``; return the result and its JSON summary ({} when none)."""
    result = vat(verb, *args, "format=json")
    return result, (json.loads(result.out) if result.out.strip() else {})
