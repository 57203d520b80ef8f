"""The `vat` command: help, exit codes, JSON-only stdout, fast start-up without LiteLLM."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml


def test_help_and_validate_do_not_import_litellm():
    code = (
        "import sys; from runner.cli.app import main; "
        "rc = main(['validate']); "
        "assert 'litellm' not in sys.modules, 'litellm imported'; "
        "assert 'duckdb' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_verbs_and_examples(vat):
    import pytest

    with pytest.raises(SystemExit) as exc:
        vat("--help")
    assert exc.value.code == 0


def test_no_verb_prints_help(vat):
    result = vat()
    assert result.code == 0 and "validate" in result.out and "examples:" in result.out


def test_plan_json_is_the_only_thing_on_stdout(vat, store_path):
    result = vat(
        "plan", "model.name=mock/x", f"store.path={store_path}", "selection.max_scenes=2", "format=json"
    )
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert {"requests", "stored", "to_send", "est_prompt_tokens", "est_cost_usd"} <= set(payload)
    assert payload["requests"] == 80 and payload["stored"] == 0 and payload["to_send"] == 80


def test_plan_prices_a_known_model(vat, store_path):
    result = vat(
        "plan", "model=openai_gpt4o_mini", f"store.path={store_path}", "selection.max_scenes=2", "format=json"
    )
    payload = json.loads(result.out)
    assert payload["est_cost_usd"] > 0 and payload["unpriced_models"] == []


def test_validate_reports_each_problem_of_a_broken_copy(vat, spec_copy):
    scene = sorted((spec_copy / "scenarios").rglob("*.yaml"))[0]
    doc = yaml.safe_load(scene.read_text())
    doc["actions"][0]["polarity"] = "sideways"
    scene.write_text(yaml.safe_dump(doc, sort_keys=False))
    (spec_copy / "strategies" / "bad.yaml").write_text("id: bad\nversion: 1\nkind: magic\ndescription: x\n")
    result = vat("validate", f"spec_dir={spec_copy}")
    assert result.code == 1
    lines = result.out.splitlines()
    assert any(f"{scene.name}:" in ln and "actions.0.polarity" in ln for ln in lines), result.out
    assert any("bad.yaml:3: kind:" in ln for ln in lines), result.out


def test_one_path_spelling_for_every_verb_and_the_old_flags_still_work_with_a_note(vat, spec_copy, tmp_path):
    """Before: `vat run spec_dir=X` but `vat validate --spec-dir X`; `vat validate spec_dir=X` was refused."""
    (spec_copy / "strategies" / "bad.yaml").write_text("id: bad\nversion: 1\nkind: magic\ndescription: x\n")
    new = vat("validate", f"spec_dir={spec_copy}")
    old = vat("validate", "--spec-dir", str(spec_copy))
    assert new.code == old.code == 1 and new.out == old.out and "bad.yaml:3" in new.out
    assert "deprecated" in old.err and "spec_dir=<path>" in old.err and "deprecated" not in new.err
    listed = vat("list", "strategies", f"spec_dir={spec_copy}", "format=json")
    assert listed.code == 1 and "bad.yaml:3" in listed.err  # it read the copy, not the shipped spec
    missing = vat("ingest", str(tmp_path / "no-shards"), f"store.path={tmp_path / 'vat.duckdb'}")
    assert missing.code == 1 and "no shard files found" in missing.err  # store.path= is not taken for a path


def test_validate_json(vat):
    result = vat("validate", "format=json")
    payload = json.loads(result.out)
    assert payload["ok"] is True and payload["summary"]["values"] == 10


def test_bad_override_is_a_usage_error(vat):
    result = vat("plan", "modle.name=x")
    assert result.code == 2 and "modle" in result.err and "Traceback" not in result.err
    result = vat("plan", "direction=sideways")
    assert result.code == 2 and "reinforce" in result.err


def test_unknown_format(vat):
    assert vat("plan", "format=xml").code == 2


@pytest.mark.parametrize(
    "arg", ["hydra.run.dir=/", "hydra.run.dir=~", "hydra.sweep.dir=/", "++hydra.run.dir='/'"]
)
def test_a_run_folder_at_the_root_or_home_is_refused_before_anything_is_written(vat, arg):
    """Before: `hydra.run.dir=/` wrote .hydra/ and result.json into / (issue 22, item 7)."""
    result = vat("run", "model.name=mock/judge", "selection.max_scenes=1", arg)
    assert result.code == 2 and "give the run a folder of its own" in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


def test_runs_started_in_the_same_second_get_folders_of_their_own():
    """Before: run folders were named to the second, so two runs started together shared (and overwrote) one."""
    from omegaconf import OmegaConf

    from runner.config import compose

    dirs = [OmegaConf.to_container(compose([], hydra=True).hydra.run, resolve=True)["dir"] for _ in range(2)]
    assert dirs[0] != dirs[1], dirs
    assert all(re.search(r"/runs/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}$", d) for d in dirs), dirs  # to the µs
