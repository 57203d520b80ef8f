"""The layering contract of runner/ (tests/support/layering.py): no import goes up a layer, no circle."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.layering import LAYERS, check, circles, imports, layer_violations

RUNNER = Path(__file__).resolve().parent.parent / "runner"


def test_runner_keeps_the_layers_and_has_no_import_circle() -> None:
    assert check(RUNNER, "runner") == []


def test_every_runner_package_is_in_a_layer() -> None:
    tops = {p.name for p in RUNNER.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in RUNNER.glob("*.py") if p.stem != "__init__"}
    assert tops - {name for group in LAYERS for name in group} == set()


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_sees_an_upward_import_a_lazy_one_and_a_circle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/a.py": "def f():\n    from pkg.cli import main\n",  # lazy, and upwards
            "cli/__init__.py": "from pkg.core import a\n",
            "store/__init__.py": "",
            "store/x.py": "from pkg.store import y\n",
            "store/y.py": "import pkg.store.x\n",
        },
    )
    layers = (("core",), ("store",), ("cli",))
    graph = imports(root, "pkg")
    assert [(v.module, v.line, v.imported) for v in layer_violations(graph, "pkg", layers)] == [
        ("pkg.core.a", 2, "pkg.cli")
    ]
    # cli imports core.a and core.a imports cli back: the upward import is a circle too
    assert circles(graph) == [["pkg.cli", "pkg.core.a"], ["pkg.store.x", "pkg.store.y"]]
    assert len(check(root, "pkg", layers)) == 3


def test_features_of_one_rank_may_not_import_each_other(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "sweep.py": "from pkg.dataset import gen\n",
            "dataset/__init__.py": "",
            "dataset/gen.py": "",
        },
    )
    (violation,) = layer_violations(imports(root, "pkg"), "pkg", (("sweep", "dataset"),))
    assert "may not import each other" in violation.why


def test_a_violation_planted_in_a_copy_of_runner_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "runner"
    shutil.copytree(RUNNER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    core = copy / "core" / "errors.py"
    core.write_text(core.read_text() + "\n\ndef _planted():\n    from runner.pipeline import execute_run\n")
    (store := copy / "store" / "states.py").write_text(
        store.read_text() + "\nfrom runner.store import shards\n"
    )
    (copy / "store" / "shards.py").write_text(
        (copy / "store" / "shards.py").read_text() + "\nfrom runner.store import states\n"
    )
    found = check(copy, "runner")
    assert any("runner.core.errors" in line and "higher layer `pipeline`" in line for line in found)
    assert any(
        line.startswith("import circle: ") and "runner.store.shards -> runner.store.states" in line
        for line in found
    )


def test_test_modules_have_unique_basenames() -> None:
    """pytest imports test files by basename (no __init__.py): two with one name fail collection."""
    from collections import Counter

    tests = Path(__file__).resolve().parent
    names = Counter(p.name for p in tests.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
