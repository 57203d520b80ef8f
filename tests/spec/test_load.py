"""Loading, references, hashing, completeness and the version lock (stage 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.specs import LIVE_SPEC

from runner.core.errors import SpecInvalid
from runner.spec.load import collect, load_index, write_lock
from runner.spec.models import Scene, content_hash


def test_shipped_spec_is_valid_and_complete(vat):
    index = load_index("spec")
    assert len(index.value_ids) == 10
    assert index.value_ids[0] == "self_direction" and index.value_ids[5] == "security"
    assert sum(len(v.micro_values) for v in index.value_system.values) == 56
    assert len(index.scenes) >= 24
    for scene in index.scenes.values():
        pairs = {(a.value, a.polarity.value) for a in scene.actions}
        assert len(pairs) == 20, scene.id
    assert {"baseline", "fewshot_2", "fewshot_4", "fewshot_8", "system_prompt", "checkpoint"} <= set(
        index.strategies
    )
    result = vat("validate")
    assert result.code == 0, result.out + result.err
    assert "scenes" in result.out


def test_opposites_follow_the_circle():
    index = load_index("spec")
    by_id = {v.id: v for v in index.values}
    for v in index.values:
        assert by_id[v.opposite].circle_index == (v.circle_index + 5) % 10


def _scene_file(spec: Path) -> Path:
    return sorted((spec / "scenarios").rglob("*.yaml"))[0]


def _problems(spec: Path) -> list[str]:
    _, problems = collect(spec)
    return [str(p) for p in problems]


def test_unknown_value_is_reported_with_file_and_line(spec_copy):
    f = _scene_file(spec_copy)
    text = f.read_text()
    first_value = yaml.safe_load(text)["actions"][0]["value"]
    f.write_text(text.replace(f"value: {first_value}\n", "value: kindness\n", 1))
    line = next(i for i, t in enumerate(f.read_text().splitlines(), 1) if "value: kindness" in t)
    problems = _problems(spec_copy)
    assert any(
        p.startswith(
            f"spec/scenarios/{f.parent.name}/{f.name}:{line}: actions.0.value: unknown value 'kindness'"
        )
        for p in problems
    ), problems


def test_micro_value_must_belong_to_the_value(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    doc["actions"][0]["micro_value"] = "wealth" if doc["actions"][0]["value"] != "power" else "curious"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert any("actions.0.micro_value" in p and "belongs to" in p for p in _problems(spec_copy))


def test_missing_polarity_is_incomplete(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    dropped = doc["actions"][3]
    # a scene may carry several micro-values per value: drop every action of that value and polarity
    doc["actions"] = [
        a for a in doc["actions"] if (a["value"], a["polarity"]) != (dropped["value"], dropped["polarity"])
    ]
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = _problems(spec_copy)
    assert any(
        f"incomplete: no action for {dropped['value']}/{dropped['polarity']}" in p for p in problems
    ), problems


def test_extra_field_and_wrong_type(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    doc["colour"] = "blue"
    doc["version"] = "two"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = _problems(spec_copy)
    assert any(": colour: unknown field" in p for p in problems), problems
    assert any(": version: " in p and "integer" in p for p in problems), problems


def test_duplicate_scene_id(spec_copy):
    f = _scene_file(spec_copy)
    (f.parent / "copy.yaml").write_text(f.read_text())
    assert any("duplicate id" in p for p in _problems(spec_copy))


def test_yaml_syntax_error_is_a_problem_not_a_crash(spec_copy):
    f = _scene_file(spec_copy)
    f.write_text(f.read_text() + "\n  broken: [unclosed\n")
    problems = _problems(spec_copy)
    assert any(
        p.startswith(f"spec/scenarios/{f.parent.name}/{f.name}:") and "YAML error" in p for p in problems
    ), problems


def test_content_hash_ignores_version_but_not_text():
    index = load_index("spec")
    scene = next(iter(index.scenes.values()))
    bumped = Scene.model_validate({**scene.model_dump(mode="json"), "version": scene.version + 1})
    changed = Scene.model_validate({**scene.model_dump(mode="json"), "text": scene.text + " Also it rains."})
    assert content_hash(bumped) == content_hash(scene)
    assert content_hash(changed) != content_hash(scene)


def test_changed_content_without_version_bump_says_bump_version(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    doc["text"] = doc["text"] + " It is also raining."
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = _problems(spec_copy)
    assert any("content changed but version is still" in p and "bump version" in p for p in problems), (
        problems
    )
    with pytest.raises(SpecInvalid, match="bump version"):
        load_index(spec_copy)
    doc["version"] += 1
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert any("is new; run `vat validate --update-lock`" in p for p in _problems(spec_copy))
    index, _ = collect(spec_copy, check_lock=False)
    write_lock(index)
    assert _problems(spec_copy) == []


def test_lock_records_every_document():
    lock = json.loads((LIVE_SPEC / "spec.lock.json").read_text())
    index = load_index(LIVE_SPEC)
    assert set(lock) == set(index.hashes)
    for key, (version, digest) in index.hashes.items():
        assert lock[key] == {"version": version, "hash": digest}


# ---------------------------------------------------------------- countries as data, ids as paths, review notes


def _new_country_scene(spec: Path, code: str) -> Path:
    """A copy of the first scene, moved to a new country's folder (id, country and path all agree)."""
    f = _scene_file(spec)
    doc = yaml.safe_load(f.read_text())
    doc["id"], doc["country"] = f"{code}-{doc['topic']}", code
    path = spec / "scenarios" / code / f"{doc['topic']}.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def test_a_new_country_is_added_through_data(spec_copy):
    path = _new_country_scene(spec_copy, "se")
    problems = _problems(spec_copy)
    shown = f"spec/scenarios/se/{path.name}"
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("country:"))
    assert any(
        p.startswith(f"{shown}:{line}: country: unknown country 'se'")
        and "add `se: <name>` to spec/countries.yaml" in p
        for p in problems
    ), problems
    with (spec_copy / "countries.yaml").open("a") as fh:
        fh.write("se: Sweden\n")
    index, problems = collect(spec_copy, strict_lock=False)
    assert not [p for p in problems if p.path == shown], problems
    assert index.scenes["se-" + yaml.safe_load(path.read_text())["topic"]].country == "se"
    assert index.countries["se"] == "Sweden"


def test_country_list_problems_name_the_line_and_the_fix(spec_copy):
    with (spec_copy / "countries.yaml").open("a") as fh:
        fh.write("no: Norway\nswe: Sweden\n")
    n = len((spec_copy / "countries.yaml").read_text().splitlines())
    problems = " | ".join(_problems(spec_copy))
    assert f'spec/countries.yaml:{n - 1}: no: quote the code ("no": Norway)' in problems, problems
    assert f"spec/countries.yaml:{n}: swe: a country code is two lowercase letters" in problems, problems
    (spec_copy / "countries.yaml").unlink()
    missing = _problems(spec_copy)
    assert any(p.startswith("spec/countries.yaml: the country list is missing; create it") for p in missing)
    assert not any("unknown country" in p for p in missing)  # said once, not once per scene


def test_an_id_that_disagrees_with_its_path_is_a_problem(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    good = doc["id"]
    f.write_text(f.read_text().replace(f"id: {good}\n", f"id: {good}-old\n", 1))
    strategy = spec_copy / "strategies" / "fewshot_2.yaml"
    strategy.write_text(strategy.read_text().replace("id: fewshot_2\n", "id: fewshot_two\n"))
    problems = _problems(spec_copy)
    shown = f"spec/scenarios/{f.parent.name}/{f.name}"
    assert any(
        p.startswith(f"{shown}:1: id: id '{good}-old' disagrees with the file's path; set `id: {good}`")
        for p in problems
    ), problems
    assert any(
        p.startswith("spec/strategies/fewshot_2.yaml:")
        and "id 'fewshot_two' disagrees with the file's path; rename the file to" in p
        and "or set `id: fewshot_2`" in p
        for p in problems
    ), problems


def test_a_scene_in_the_wrong_folder_or_file_is_a_problem(spec_copy):
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    other = next(
        p for p in sorted((spec_copy / "scenarios").iterdir()) if p.is_dir() and p.name != f.parent.name
    )
    moved = other / f"{doc['topic']}-7.yaml"
    doc["id"] = f"{other.name}-{doc['topic']}-7"  # the id follows the path, the country does not
    f.unlink()
    moved.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    renamed = f.parent / "misc.yaml"
    second = yaml.safe_load(sorted(f.parent.glob("*.yaml"))[0].read_text())
    sorted(f.parent.glob("*.yaml"))[0].unlink()
    second["id"] = f"{f.parent.name}-misc"
    renamed.write_text(yaml.safe_dump(second, sort_keys=False, allow_unicode=True))
    problems = " | ".join(_problems(spec_copy))
    assert (
        f"spec/scenarios/{other.name}/{moved.name}:3: country: country '{f.parent.name}' but the file is under "
        f"{other.name}/; move it to spec/scenarios/{f.parent.name}/ or set `country: {other.name}`"
    ) in problems, problems
    assert (
        f"spec/scenarios/{f.parent.name}/misc.yaml:4: topic: topic '{second['topic']}' but the file is misc.yaml; "
        f"name it {second['topic']}.yaml"
    ) in problems, problems


def test_validate_fails_a_draft_that_still_lists_its_review_notes(vat, spec_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(tmp_path / "no-board"))  # no release pins the edited scene
    f = _scene_file(spec_copy)
    doc = yaml.safe_load(f.read_text())
    doc["generated"] = {
        "model": "mock/generator",
        "review": ["judge: power-express scored low", "incomplete"],
    }
    doc["version"] += 1
    f.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    result = vat("validate", f"spec_dir={spec_copy}", "--update-lock")
    line = next(i for i, t in enumerate(f.read_text().splitlines(), 1) if t.startswith("  review:"))
    assert result.code == 1
    shown = f"spec/scenarios/{f.parent.name}/{f.name}:{line}: generated.review: the draft still lists 2 review note(s)"
    assert shown in result.out and "delete `review:` from `generated`" in result.out, result.out
    del doc["generated"]["review"]
    f.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    assert vat("validate", f"spec_dir={spec_copy}", "--update-lock").code == 0
