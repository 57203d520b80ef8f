"""The on-disk parse cache of spec YAML: same documents, refusals never cached, a bad entry re-parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core import yamlio
from runner.core.yamlio import YamlProblem

SCENE = b"id: demo\nactions:\n  - text: I stay\n    value: security\n  - text: I go\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.marshal"))


def test_a_second_parse_reads_the_cache_and_gives_the_same_document(cache: Path, monkeypatch) -> None:
    first = yamlio.parse_yaml_bytes(SCENE, "a.yaml")
    assert len(_entries(cache)) == 1

    def no_parse(*_: object) -> None:
        raise AssertionError("parsed again although the cache holds these bytes")

    monkeypatch.setattr(yamlio, "_parse_bytes", no_parse)
    second = yamlio.parse_yaml_bytes(SCENE, "b.yaml")
    assert second.path == "b.yaml"  # the path is the caller's, not the one cached
    assert (
        second.data
        == first.data
        == {"id": "demo", "actions": [{"text": "I stay", "value": "security"}, {"text": "I go"}]}
    )
    assert second.lines == first.lines
    assert second.line_of(("actions", 1, "text")) == 5


def test_a_refused_file_is_never_cached_and_is_refused_again_with_its_line(cache: Path) -> None:
    bad = b"id: a\nid: b\n"
    for _ in range(2):
        with pytest.raises(YamlProblem) as exc:
            yamlio.parse_yaml_bytes(bad, "dup.yaml")
        assert exc.value.problem.line == 2 and "duplicate key" in exc.value.problem.message
    assert _entries(cache) == []


def test_a_corrupt_entry_is_parsed_again_and_replaced(cache: Path) -> None:
    yamlio.parse_yaml_bytes(SCENE, "a.yaml")
    (entry,) = _entries(cache)
    entry.write_bytes(b"\x00not marshal")
    doc = yamlio.parse_yaml_bytes(SCENE, "a.yaml")
    assert doc.data["id"] == "demo"
    assert yamlio._cache_read(entry) is not None  # rewritten whole


def test_a_value_marshal_cannot_hold_is_parsed_but_not_cached(cache: Path) -> None:
    doc = yamlio.parse_yaml_bytes(b"when: 2026-12-02\n", "t.yaml")
    assert str(doc.data["when"]) == "2026-12-02"
    assert _entries(cache) == []


def test_an_empty_cache_variable_turns_the_cache_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAT_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    yamlio.parse_yaml_bytes(SCENE, "a.yaml")
    assert list(tmp_path.rglob("*.marshal")) == []
