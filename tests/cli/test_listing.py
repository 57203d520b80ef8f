"""`vat list` and the `limit=` alias (issue 20, item 5)."""

import json
from pathlib import Path
from typing import Any

import pytest

from runner.cli.app import _alias
from runner.cli.listing import KINDS, list_items
from runner.spec.load import load_index

ROOT = Path(__file__).resolve().parents[2]


def _json(vat: Any, *args: str) -> dict[str, Any]:
    result = vat("list", *args, "format=json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_list_values_strategies_prompts_match_the_spec(vat: Any) -> None:
    index = load_index("spec", check_lock=False)
    values = _json(vat, "values")["items"]
    assert [v["id"] for v in values] == index.value_ids
    assert values[0]["opposite"] == index.values[0].opposite
    assert sorted(s["id"] for s in _json(vat, "strategies")["items"]) == sorted(index.strategies)
    fewshot = next(s for s in _json(vat, "strategies")["items"] if s["id"] == "fewshot_4")
    assert fewshot["kind"] == "fewshot" and fewshot["params"]["k"] == 4
    prompts = _json(vat, "prompts")["items"]
    assert [(p["id"], p["version"]) for p in prompts] == [(p.id, p.version) for p in index.prompts.values()]


def test_list_releases_and_entries_read_the_leaderboard_folder(vat: Any) -> None:
    releases = _json(vat, "releases")
    files = sorted(p.stem for p in (ROOT / "leaderboard" / "releases").glob("*.yaml"))
    assert [r["id"] for r in releases["items"]] == files and releases["problems"] == []
    entries = _json(vat, "entries")["items"]
    assert sorted(e["id"] for e in entries) == sorted(
        p.stem for p in (ROOT / "leaderboard" / "entries").glob("*.yaml")
    )
    assert all("/" in e["model"] for e in entries)


def test_list_table_and_a_broken_entry_exits_1(
    vat: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = vat("list", "strategies")
    assert table.code == 0 and "fewshot_8" in table.out
    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / "broken.yaml").write_text("id: broken\nmodel: nope\n")
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(tmp_path))
    result = vat("list", "entries")
    assert result.code == 1 and "broken.yaml" in result.err


def test_list_from_another_folder_uses_the_shipped_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows, problems = list_items("values")
    assert len(rows) == 10 and problems == []


def test_unknown_kind_is_a_usage_error(vat: Any) -> None:
    with pytest.raises(SystemExit) as info:  # argparse's own usage error names the choices
        vat("list", "models")
    assert info.value.code == 2
    assert set(KINDS) == {"values", "strategies", "prompts", "releases", "entries"}


def test_limit_is_an_alias_of_max_scenes(vat: Any) -> None:
    assert _alias("limit=3") == "selection.max_scenes=3"
    assert _alias("limit=2,5") == "selection.max_scenes=2,5"
    assert _alias("selection.limit=3") == "selection.limit=3" and _alias("strategy=x") == "strategy=x"
    short = vat("plan", "model.name=sim/circle", "limit=3", "format=json")
    long = vat("plan", "model.name=sim/circle", "selection.max_scenes=3", "format=json")
    assert short.code == 0 and json.loads(short.out)["scenes"] == 3
    assert json.loads(short.out)["requests"] == json.loads(long.out)["requests"]
