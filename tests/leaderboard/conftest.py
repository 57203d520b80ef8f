"""Fixtures of the leaderboard tests: a mock entry judged on a tiny release, and its bundles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.leaderboard_board import make_board
from support.leaderboard_board import pins as _pins

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A mock entry judged on a tiny release in a tmp store, packed as a folder and as a .tar.gz."""
    from runner.cli.app import main

    tmp = tmp_path_factory.mktemp("bundle")
    board = make_board(tmp / "lb", _pins())
    store = tmp / "store" / "vat.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setenv("VAT_LEADERBOARD_DIR", str(board))
        common = [f"store.path={store}", "execution.progress=false"]
        assert main(["leaderboard", "run", "entry=test__mock-a", "release=t1", *common]) == 0
        folder, archive = tmp / "bundle-a", tmp / "a.tar.gz"
        assert main(["bundle", "entry=test__mock-a", "release=t1", f"out={folder}", *common]) == 0
        assert main(["bundle", "entry=test__mock-a", "release=t1", f"out={archive}", *common]) == 0
        yield {"board": board, "store": store, "folder": folder, "archive": archive, "tmp": tmp}


@pytest.fixture
def board_env(bundled, monkeypatch):
    """The bundles of :func:`bundled`, with ``VAT_LEADERBOARD_DIR`` aimed at their board."""
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(bundled["board"]))
    return bundled
