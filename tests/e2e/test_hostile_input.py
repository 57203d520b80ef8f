"""Hostile and broken input: each answered by one clear line (file, line, field, fix), exit 1 or 2, nothing written.

Every case breaks a copy of spec/ (or the overrides) and runs both `vat validate spec_dir=` and
`vat run spec_dir=...` in-process from an empty working folder, then checks: the exit code, the message
names the file and line (and field where there is one), no Python traceback, the spec copy is byte for
byte unchanged, and the working folder is still empty (no store, no Hydra run folder).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCENE = "scenarios/au/health.yaml"
SHOWN = f"spec/{SCENE}"  # how messages name the file (relative to the spec folder's parent)


@dataclass
class Work:
    spec: Path
    wd: Path

    def run_args(self, *extra: str) -> list[str]:
        return [
            "run",
            "model.name=mock/judge",
            f"spec_dir={self.spec}",
            f"store.path={self.wd / 'results' / 'vat.duckdb'}",
            "selection.max_scenes=2",
            "execution.progress=false",
            *extra,
        ]


@pytest.fixture
def work(spec_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Work:
    wd = tmp_path / "wd"
    wd.mkdir()
    monkeypatch.chdir(wd)  # Hydra's run folder and a default store would land here
    return Work(spec=spec_copy, wd=wd)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old`` in ``path`` by ``new``; return its 1-based line."""
    text = path.read_text(encoding="utf-8")
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    return text[:at].count("\n") + 1


def _written(wd: Path) -> list[str]:
    """Files under ``wd``, except Hydra's run folder (see test_a_rejected_run_leaves_no_run_folder)."""
    return [
        str(p.relative_to(wd))
        for p in wd.rglob("*")
        if p.is_file()
        and not re.fullmatch(
            r"results/runs/[^/]+/(\.hydra/[a-z]+\.yaml|result\.json)", str(p.relative_to(wd))
        )
    ]


def _nothing_written(work: Work, before: dict[str, str]) -> None:
    assert _snapshot(work.spec) == before, "the spec copy changed"
    assert _written(work.wd) == [], "files were written"


def _check(vat, work: Work, expect: list[str], code: int, verbs=("validate", "run"), extra=()) -> dict:
    """Run the verbs, assert the exit code, the message and that nothing was written; return the outputs."""
    before = _snapshot(work.spec)
    outputs = {}
    for verb in verbs:
        args = ["validate", f"spec_dir={work.spec}"] if verb == "validate" else work.run_args(*extra)
        result = vat(*args)
        text = result.out + result.err
        assert result.code == code, (verb, result.code, text)
        assert "Traceback" not in text, text
        for needle in expect:
            assert needle in text, (verb, needle, text)
        outputs[verb] = text
        if verb == "run":  # one line: the error, nothing else (no Hydra banner, no summary)
            assert [line for line in result.err.splitlines() if line.strip()] == [result.err.strip()], text
            assert result.err.startswith("error: ") and result.out == ""
        _nothing_written(work, before)
    return outputs


# ------------------------------------------------------------------ spec files


def test_yaml_syntax_error(vat, work):
    line = _edit(work.spec / SCENE, "topic: health", "topic: [health")
    _check(vat, work, [f"{SHOWN}:", "YAML error"], 1)
    out = _check(vat, work, [], 1, verbs=("validate",))["validate"]
    where = int(re.search(rf"{re.escape(SHOWN)}:(\d+)", out).group(1))
    assert line <= where <= line + 2  # the parser notices the open bracket on the next token


def test_wrong_type(vat, work):
    line = _edit(work.spec / SCENE, "version: 1", "version: one")
    _check(vat, work, [f"{SHOWN}:{line}: version:", "integer"], 1)


def test_action_refers_to_an_unknown_value(vat, work):
    line = _edit(work.spec / SCENE, "value: self_direction", "value: self_directon")
    out = _check(vat, work, [f"{SHOWN}:", "actions", "self_direct"], 1)
    # validate lists every problem; run names the first and points to validate for the rest
    assert f"{SHOWN}:{line}: actions.0.value: unknown value 'self_directon'; use one of" in out["validate"]
    assert "incomplete: no action for self_direction/express" in out["validate"]
    assert "run `vat validate`" in out["run"]


def test_missing_polarity(vat, work):
    line = _edit(work.spec / SCENE, "    polarity: express\n", "")
    _check(vat, work, [f"{SHOWN}:", "actions.0.polarity: required field is missing; add it"], 1)
    assert line > 10


def test_duplicate_scene_id(vat, work):
    shutil.copy(work.spec / SCENE, work.spec / "scenarios/au/health_again.yaml")
    _check(vat, work, ["spec/scenarios/au/health", ":1: id: duplicate id 'au-health'"], 1)


def test_duplicate_action_id(vat, work):
    _edit(work.spec / SCENE, "id: self_direction-suppress", "id: self_direction-express")
    _check(vat, work, [f"{SHOWN}:", "action id 'self_direction-express' is used 2 times"], 1)


def test_non_utf8_bytes(vat, work):
    path = work.spec / SCENE
    raw = path.read_bytes()
    at = raw.index(b"Toowoomba")
    path.write_bytes(raw[:at] + b"\xff\xfe" + raw[at:])
    line = raw[:at].count(b"\n") + 1
    _check(vat, work, [f"{SHOWN}:{line}:", "not valid UTF-8; save the file as UTF-8"], 1)


def test_huge_file(vat, work):
    path = work.spec / SCENE
    path.write_text(path.read_text() + "# " + "x" * 2_000_000 + "\n")
    start = time.perf_counter()
    _check(vat, work, [f"{SHOWN}:1:", "over the 1,000,000-byte limit"], 1)
    assert (
        time.perf_counter() - start < 120
    )  # a hang guard (the message proves the refusal), not a speed target


def test_yaml_alias_bomb(vat, work):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    (work.spec / "scenarios/au/bomb.yaml").write_text("\n".join(levels) + "\n")
    start = time.perf_counter()
    _check(vat, work, ["spec/scenarios/au/bomb.yaml:1:", "anchors and aliases", "not allowed"], 1)
    assert time.perf_counter() - start < 120  # a hang guard: expanded, 9^9 strings would never finish


def test_python_tag_runs_nothing(vat, work):
    marker = work.spec.parent / "pwned"
    line = _edit(
        work.spec / SCENE,
        "split: test",
        f'split: !!python/object/apply:os.system ["touch {marker}"]',
    )
    _check(vat, work, [f"{SHOWN}:{line}:", "only plain YAML is allowed"], 1)
    assert not marker.exists()


def test_path_traversal_in_an_id(vat, work):
    line = _edit(work.spec / SCENE, "id: au-health", "id: ../../etc/passwd")
    _check(vat, work, [f"{SHOWN}:{line}: id: '../../etc/passwd' is not a valid id", "no '/', '..'"], 1)


# ------------------------------------------------------------------ overrides and configuration


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.nme=x", "model.nme: Key 'nme' not in 'ModelConf'; check the spelling"),
        ("direction=sideways", "direction: Invalid value 'sideways', expected one of [reinforce, suppress]"),
        ("execution.concurrency=abc", "execution.concurrency: Value 'abc'"),
        ("target=securty", "did you mean 'security'"),
        ("strategy=fewshot_3", "strategy='fewshot_3' is not defined"),
        ("strategy=fewshot_2,fewshot_4", "add -m to sweep"),
        ("experiment=smok", "experiment='smok' names no file in conf/experiment/; did you mean 'smoke'?"),
        ("selection.scenes=[no-such-scene]", "no-such-scene"),
        ("model.name", "invalid override: Error parsing override 'model.name'; write key=value"),
        ("selection.max_scenes=-1", "selection.max_scenes"),
        ("execution.max_retries=-1", "execution.max_retries"),
        ("execution.concurrency=0", "execution.concurrency"),
        ("execution.timeout_s=0", "execution.timeout_s"),
    ],
)
def test_invalid_override(vat, work, override, needle):
    _check(vat, work, [needle], 2, verbs=("run",), extra=(override,))


def test_missing_api_key_is_named_not_printed(vat, work, monkeypatch):
    monkeypatch.delenv("VAT_TEST_NO_SUCH_KEY", raising=False)
    out = _check(
        vat,
        work,
        ["VAT_TEST_NO_SUCH_KEY", "not set"],
        1,
        verbs=("run",),
        extra=("model.name=openai/gpt-4o-mini", "model.api_key_env=VAT_TEST_NO_SUCH_KEY"),
    )
    assert "sk-" not in out["run"]


def test_missing_provider_key_is_named_before_anything_is_written(vat, work, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _check(
        vat,
        work,
        ["openai/gpt-4o-mini needs OPENAI_API_KEY, which is not set", "model.api_key_env="],
        1,
        verbs=("run",),
        extra=("model.name=openai/gpt-4o-mini", "model.api_base=http://127.0.0.1:9/v1"),
    )


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [
        ("strategy=fewshot_2,fewshot_9", "strategy='fewshot_9' is not defined in spec/; did you mean"),
        ("execution.concurrency=4,-4", "execution.concurrency=-4 is out of range"),
        ("model.temperature=0,hot", "model.temperature: Value 'hot'"),
    ],
)
def test_a_bad_value_in_a_sweep_is_refused_before_any_job_runs(vat, work, sweep, needle):
    before = _snapshot(work.spec)
    result = vat("run", "-m", *work.run_args(sweep)[1:])
    assert result.code == 2, result.err
    assert needle in result.err and result.err.startswith("error: ") and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    _nothing_written(work, before)
    assert list(work.wd.iterdir()) == []  # not even a sweep folder


def test_entry_names_cannot_escape_the_leaderboard_folder(vat, work, tmp_path, monkeypatch):
    board = tmp_path / "leaderboard"
    shutil.copytree(Path(__file__).resolve().parents[2] / "leaderboard", board)
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    before = _snapshot(board)
    for args, name in (
        (["leaderboard", "run", "entry=../../etc/passwd", "release=v0.1"], "entry id '../../etc/passwd'"),
        (["bundle", "entry=../secrets", "release=v0.1"], "entry id '../secrets'"),
        (["leaderboard", "run", "entry=openai__gpt-4o-mini", "release=../../x"], "release id '../../x'"),
    ):
        result = vat(*args, f"spec_dir={work.spec}")
        assert result.code == 2, (args, result.out, result.err)
        assert f"error: {name} is not allowed" in result.err and "no '/', no '..'" in result.err, result.err
        assert "Traceback" not in result.err
    assert _snapshot(board) == before
    assert list(work.wd.iterdir()) == []
    # A file whose name is not a slug is reported by `vat validate`, with the fix.
    (board / "entries" / "Evil..Name.yaml").write_text(
        (board / "entries" / "openai__gpt-4o-mini.yaml").read_text()
    )
    result = vat("validate", f"spec_dir={work.spec}")
    assert result.code == 1 and "Evil..Name" in result.out + result.err
    assert "Traceback" not in result.err
    os.remove(board / "entries" / "Evil..Name.yaml")


def test_a_rejected_run_leaves_no_run_folder(vat, work):
    _edit(work.spec / SCENE, "version: 1", "version: one")
    assert vat(*work.run_args()).code == 1
    assert list(work.wd.iterdir()) == []


# ------------------------------------------------------------------ leaderboard entries (a submitter's file)

_ENTRY = (
    "model: openai/gpt-4o-mini\ndisplay_name: Evil\nprovider: X\nlicence: MIT\n"
    "link: https://example.org\ncontact: x@example.org\napi_key_env: OPENAI_API_KEY\n"
)


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    board = tmp_path / "leaderboard"
    shutil.copytree(Path(__file__).resolve().parents[2] / "leaderboard", board)
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    return board


@pytest.mark.parametrize(
    "body, line, field",
    [
        ("api_base: http://attacker.example/v1\n", 8, "api_base"),
        ("api_key: sk-live-123456789\n", 8, "api_key"),
        ("headers:\n  Authorization: Bearer x\n", 8, "headers"),
        (
            "parameters:\n  extra:\n    api_base: http://attacker.example/v1\n",
            10,
            "parameters.extra.api_base",
        ),
        (
            "parameters:\n  extra:\n    base_url: http://attacker.example/v1\n",
            10,
            "parameters.extra.base_url",
        ),
        ("parameters:\n  extra:\n    api_key: sk-live-123\n", 10, "parameters.extra.api_key"),
        ("parameters:\n  extra:\n    extra_headers: x\n", 10, "parameters.extra.extra_headers"),
        (
            "parameters:\n  extra:\n    custom_llm_provider: hosted_vllm\n",
            10,
            "parameters.extra.custom_llm_provider",
        ),
    ],
)
def test_an_entry_cannot_choose_the_endpoint_or_carry_a_key(vat, work, board, body, line, field):
    """Before: `parameters.extra: {api_base: ...}` passed validate, and replay sent the maintainer's key there."""
    (board / "entries" / "evil__thief.yaml").write_text(_ENTRY + body)
    result = vat("validate", f"spec_dir={work.spec}")
    text = result.out + result.err
    assert result.code == 1 and "Traceback" not in text, text
    assert f"leaderboard/entries/evil__thief.yaml:{line}: {field}: an entry cannot" in text, text


def test_an_entry_cannot_aim_another_secret_at_the_provider(vat, work, board):
    (board / "entries" / "evil__thief.yaml").write_text(
        _ENTRY.replace("OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    result = vat("validate", f"spec_dir={work.spec}")
    assert result.code == 1 and "evil__thief.yaml:7: api_key_env" in result.out + result.err


def test_the_maintainer_sets_an_entrys_endpoint_outside_it(board, monkeypatch):
    from runner.spec.entries import get_entry

    entry = get_entry("openai__gpt-4o-mini", board)
    assert entry.model_conf()["api_base"] is None  # the provider's default
    monkeypatch.setenv("VAT_API_BASE_OPENAI", "http://127.0.0.1:9/v1")
    assert entry.model_conf()["api_base"] == "http://127.0.0.1:9/v1"


def test_a_symlink_to_dev_zero_among_the_entries_is_refused(vat, work, board):
    os.symlink("/dev/zero", board / "entries" / "evil__zero.yaml")
    start = time.perf_counter()
    result = vat("validate", f"spec_dir={work.spec}")
    assert result.code == 1 and "evil__zero.yaml:1: is not a regular file" in result.out + result.err
    assert time.perf_counter() - start < 30
