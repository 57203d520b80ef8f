"""Shared fixtures: a copy of the shipped spec tree, a tmp store, and an in-process `vat` runner."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fixtures import fake_key, server  # noqa: F401 - fixtures for every test folder
from support.specs import SPEC  # builds the tests' spec and sets VAT_SPEC_DIR before any test imports

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _run_folders_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hydra writes a folder per `vat run`; keep the tests' folders out of results/ in the checkout."""
    os.environ["VAT_OUTPUT_DIR"] = str(tmp_path_factory.mktemp("vat-output"))
    # The spec parse cache goes to a temporary folder too, never to the user's ~/.cache.
    os.environ["VAT_CACHE_DIR"] = str(tmp_path_factory.mktemp("vat-cache"))


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """A writable copy of the tests' spec (break it freely)."""
    dst = tmp_path / "spec"
    shutil.copytree(SPEC, dst)
    return dst


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "results" / "vat.duckdb")


@pytest.fixture
def vat(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the `vat` CLI in-process: vat("plan", "format=json") -> Result(code, out, err)."""
    from runner.cli.app import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs and conf are addressed relative to the project root, as a user would run `vat`."""
    monkeypatch.chdir(ROOT)
