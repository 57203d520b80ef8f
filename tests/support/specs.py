"""The spec the tests run on, built once per test process (read-only: copy it before changing anything).

Pipeline tests do not run on the live ``spec/scenarios/``: they run on the frozen scene set of release
v0.1 (``leaderboard/releases/v0.1/spec/scenarios``, 132 scenes of 20 actions) beside the live values,
prompts and strategies. A new scene or a new release then changes no test's request counts, golden keys
or running time (issue 21: a valid new scene must not break ``make test``). ``VAT_SPEC_DIR`` points
every ``vat`` verb, in-process or in a subprocess, at that folder. Tests of the live dataset itself
(its size, split and micro-value coverage, its release) read :data:`LIVE_SPEC` explicitly.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.core.yamlio import read_yaml
from runner.spec.load import SpecIndex, check_scene, load_index
from runner.spec.models import Scene

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""

LIVE_SPEC = ROOT / "spec"
"""The live spec of the checkout (what `vat validate` checks and a release pins)."""

FROZEN_SCENES = ROOT / "leaderboard" / "releases" / "v0.1" / "spec"
"""Release v0.1's frozen copy: its scenes (and their lock entries) are the tests' scene set."""


def build_test_spec(dst: Path) -> Path:
    """Write the tests' spec at ``dst``: the live spec with the frozen v0.1 scenes and their lock entries."""
    shutil.copytree(LIVE_SPEC, dst, ignore=shutil.ignore_patterns("scenarios"))
    shutil.copytree(FROZEN_SCENES / "scenarios", dst / "scenarios")
    shutil.copy2(LIVE_SPEC / "scenarios" / "README.md", dst / "scenarios" / "README.md")
    live = json.loads((LIVE_SPEC / "spec.lock.json").read_text())
    frozen = json.loads((FROZEN_SCENES / "spec.lock.json").read_text())
    lock = {k: v for k, v in live.items() if not k.startswith("scenarios/")}
    lock |= {k: v for k, v in frozen.items() if k.startswith("scenarios/")}
    (dst / "spec.lock.json").write_text(json.dumps(dict(sorted(lock.items())), indent=1) + "\n")
    return dst


def _test_spec() -> Path:
    """The process's test spec: built on first import, removed at exit, exported as ``VAT_SPEC_DIR``."""
    given = os.environ.get(
        "VAT_TEST_SPEC_DIR"
    )  # a parent process (pytest-xdist controller) already built one
    if given and Path(given).is_dir():
        path = Path(given)
    else:
        base = Path(tempfile.mkdtemp(prefix="vat-test-spec-"))
        atexit.register(shutil.rmtree, base, True)
        path = build_test_spec(base / "spec")
        os.environ["VAT_TEST_SPEC_DIR"] = str(path)
    os.environ["VAT_SPEC_DIR"] = str(path)
    return path


SPEC = _test_spec()
"""The spec every test runs on by default (see the module docstring)."""

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
    """The tests' spec (:data:`SPEC`) as a :class:`SpecIndex` (the lock is not checked)."""
    return load_index(SPEC, check_lock=False)


@functools.cache
def live_index() -> SpecIndex:
    """The live ``spec/`` of the checkout as a :class:`SpecIndex` (the lock is not checked)."""
    return load_index(LIVE_SPEC, check_lock=False)


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
