"""Run every case of the adversarial corpus in tests/e2e/ (see its README.md for the format)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml
from support.specs import SPEC

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _cases(kind: str) -> list[Path]:
    return sorted((HERE / kind).glob("*.yaml"))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _apply(case: dict, spec: Path) -> None:
    target = spec / case["file"]
    if "replace" in case:
        r = case["replace"]
        text = target.read_text(encoding="utf-8")
        new = r["new"] + (r["repeat"][0] * r["repeat"][1] if "repeat" in r else "")
        assert r["old"] in text, f"the case's `old` text is not in {case['file']}"
        target.write_text(text.replace(r["old"], new, 1), encoding="utf-8")
    elif "write" in case:
        target.write_text(case["write"], encoding="utf-8")
    elif "symlink" in case:
        target.unlink(missing_ok=True)
        os.symlink(case["symlink"], target)
    elif case.get("mkdir"):
        target.mkdir(parents=True)
    else:
        raise AssertionError("a spec case needs replace, write, symlink or mkdir")


@pytest.mark.parametrize("path", _cases("spec"), ids=lambda p: p.stem)
def test_spec_case(path: Path, vat, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = tmp_path / "spec"
    shutil.copytree(SPEC, spec)
    _apply(case, spec)
    before = _snapshot(spec)
    result = vat("validate", f"spec_dir={spec}")
    text = result.out + result.err
    assert result.code == case["expect"]["exit"], text
    assert "Traceback" not in text, text
    for needle in case["expect"]["messages"]:
        assert needle in text, (needle, text)
    assert _snapshot(spec) == before, "validate changed the spec copy"


def test_the_corpus_is_not_empty() -> None:
    assert len(_cases("spec")) >= 5


OVERRIDES = yaml.safe_load((HERE / "overrides.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", OVERRIDES, ids=[c["override"][:40] for c in OVERRIDES])
def test_override_case(case: dict, vat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = vat(
        "run",
        "model.name=mock/judge",
        f"spec_dir={ROOT / 'spec'}",
        f"store.path={tmp_path / 'vat.duckdb'}",
        case["override"],
    )
    assert result.code == case["expect"]["exit"], result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    for needle in case["expect"]["messages"]:
        assert needle in result.err, (needle, result.err)
    assert "SECRET123" not in result.out + result.err
    assert list(tmp_path.iterdir()) == []
