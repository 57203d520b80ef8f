"""`vat generate`: prompts as data, robust parsing of model output, and the pipeline end to end.

End to end runs use ``mock/generator`` (runner/providers/mock.py: answers the JSON shape the prompt
shows), a scripted LiteLLM provider registered here (``scripted/...``: chosen faults per item), and —
marked slow — the embedded real model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.specs import ROOT, SPEC, checked_scene, json_verb, shipped_index

from runner.core.errors import VatError
from runner.dataset.answers import Unusable, extract_json, parse_answer
from runner.dataset.draft import read_scenes
from runner.dataset.prompts import SCORES, load_prompts, prompts_dir

_index = shipped_index  # the shipped spec, loaded once (read-only)


def _free(country: str, topic: str) -> tuple[str, str]:
    """(id, path under the output folder) of the next free id of a cell in the shipped spec.

    Derived from the spec, not hard-coded: the dataset grows (a second scene per cell, and more).
    """
    taken = set(_index().scenes)
    n = next(n for n in range(2, 1000) if f"{country}-{topic}-{n}" not in taken)
    return f"{country}-{topic}-{n}", f"{country}/{topic}-{n}.yaml"


PROMPTS = ROOT / "generation" / "prompts"
SCORE_FIELDS = {k: "score" for k in SCORES}


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "answer",
    [
        '{"text": "I go."}',
        '```json\n{"text": "I go."}\n```',
        'Sure! Here it is:\n{"text": "I go."}\nHope this helps.',
        '{"note": [1, 2]} then {"text": "I go."}',
    ],
)
def test_extract_json_finds_the_object(answer):
    assert parse_answer(answer, {"text": "text"}) == {"text": "I go."}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty answer"),
        ("I would rather not.", "no JSON object"),
        ('{"text": 5}', "missing or not a text"),
        ('{"other": "I go."}', "missing or not a text"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_unusable_answers_say_why(answer, reason):
    with pytest.raises(Unusable, match=reason):
        parse_answer(answer, {"text": "text"})


def test_scores_accept_digits_and_reject_out_of_range():
    ok = parse_answer(
        '{"realism": "4", "neutrality": 5, "correctness": 3.0, "plausibility": 1, "harmlessness": 2}',
        SCORE_FIELDS,
    )
    assert ok == {"realism": 4, "neutrality": 5, "correctness": 3, "plausibility": 1, "harmlessness": 2}
    for bad in ("7", "0", "true", '"high"', "2.5"):
        answer = json.dumps({k: 3 for k in SCORES})[:-1] + f', "realism": {bad}}}'
        with pytest.raises(Unusable, match="realism"):
            parse_answer(answer, SCORE_FIELDS)


def test_almost_json_from_a_small_model_is_read_leniently():
    # SmolLM2 leaves inner quotes unescaped: not JSON, but the field is still recoverable.
    answer = '{\n  "text": "A scene in Cairo, on "Religion", with neighbours."}'
    with pytest.raises(Unusable):
        extract_json(answer)
    assert parse_answer(answer, {"text": "text"}) == {
        "text": 'A scene in Cairo, on "Religion", with neighbours.'
    }


def test_a_bare_json_string_answers_a_one_text_prompt():
    fields = {"text": "text", "micro_value": "optional_text"}
    assert parse_answer('"I walk to the mosque early."', fields) == {
        "text": "I walk to the mosque early.",
        "micro_value": None,
    }
    with pytest.raises(Unusable):
        parse_answer("I walk to the mosque early.", fields)  # prose is not an answer of the asked shape
    with pytest.raises(Unusable):
        parse_answer('"4"', SCORE_FIELDS)


def test_optional_fields_may_be_null():
    got = parse_answer(
        '{"text": "I go.", "micro_value": null}', {"text": "text", "micro_value": "optional_text"}
    )
    assert got == {"text": "I go.", "micro_value": None}


# ---------------------------------------------------------------- prompts


def test_shipped_prompts_load_and_render_with_json_braces_intact():
    prompts = load_prompts(PROMPTS)
    assert set(prompts) == {"scene", "action", "judge_scene", "judge_action"}
    msgs = prompts["scene"].render({"country": "Egypt", "topic": "Religion", "values": "Power", "avoid": ""})
    assert "Egypt" in msgs[1]["content"] and '{"text": "<the scene>"}' in msgs[1]["content"]
    assert "{country}" not in msgs[0]["content"] + msgs[1]["content"]
    assert all(p.tag.endswith("@1") for p in prompts.values())


def test_unknown_placeholder_fails_with_file_and_line(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(PROMPTS, folder)
    text = (folder / "scene.yaml").read_text().replace("{country}, on the topic", "{contry}, on the topic")
    (folder / "scene.yaml").write_text(text)
    with pytest.raises(VatError, match=r"scene\.yaml:\d+: .*\{contry\}"):
        load_prompts(folder)


def test_missing_stage_prompt_fails(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(PROMPTS, folder)
    (folder / "judge_action.yaml").unlink()
    with pytest.raises(VatError, match="judge_action"):
        load_prompts(folder)


def test_prompts_dir_resolves_from_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prompts_dir("generation/prompts") == PROMPTS


# ---------------------------------------------------------------- end to end on mock/generator


def _gen(vat, *args: str) -> tuple[Any, dict[str, Any]]:
    return json_verb(vat, "generate", *args)


def test_generate_scenes_on_mock_writes_complete_scored_drafts(vat, tmp_path):
    out = tmp_path / "gen"
    result, summary = _gen(
        vat, "scenes", "model.name=mock/generator", "countries=[Nigeria]", "topics=[health]", f"out={out}"
    )
    assert result.code == 0, result.err
    sid, rel = _free("ng", "health")  # ng-health is shipped, so the draft takes the next free id
    path = out / rel
    assert summary["files"] == [str(path)]
    assert summary["scenes_written"] == 1 and summary["actions_written"] == 20 == summary["actions_expected"]
    assert summary["calls"] == 1 + 20 + 21 and summary["failures"] == 0
    scene = checked_scene(path)
    assert scene.id == sid and scene.country == "ng" and scene.topic == "health"
    assert {(a.value, a.polarity.value) for a in scene.actions} == {
        (v, p) for v in _index().value_ids for p in ("express", "suppress")
    }
    gen = scene.generated
    assert gen["model"] == "mock/generator" and gen["judge_model"] == "mock/generator"
    assert gen["prompts"] == ["gen_scene@1", "gen_action@1", "judge_scene@1", "judge_action@1"]
    assert gen["date"] and gen["by"] == "vat generate scenes"
    assert set(gen["scores"]["actions"]) == {a.id for a in scene.actions}
    for s in [gen["scores"]["scene"], *gen["scores"]["actions"].values()]:
        assert all(isinstance(s[k], int) and 1 <= s[k] <= 5 for k in SCORES)
    # Low judge scores are put on the review list, in the file and in the summary.
    low = [k for k, s in gen["scores"]["actions"].items() if min(s[d] for d in SCORES) < 3]
    assert low and all(any(f"judge: {k} scored low" in n for n in gen["review"]) for k in low)
    assert summary["scenes_to_review"][sid] == gen["review"]
    report = json.loads((out / "generation-report.json").read_text())
    assert report["scenes_written"] == 1
    assert path.read_text().startswith("# Written by `vat generate scenes`")


def test_generate_resumes_by_skipping_existing_files(vat, tmp_path):
    out = tmp_path / "gen"
    args = (
        "scenes",
        "model.name=mock/generator",
        "countries=[ng]",
        "topics=[health,work]",
        "values=[power]",
        f"out={out}",
    )
    first, s1 = _gen(vat, *args)
    assert first.code == 0 and s1["scenes_written"] == 2
    work = out / _free("ng", "work")[1]
    work.unlink()
    again, s2 = _gen(vat, *args)
    assert again.code == 0 and s2["scenes_skipped_existing"] == 1 and s2["scenes_written"] == 1
    assert s2["calls"] == 1 + 2 + 3
    # A partial scene (values=[power]) is written and listed as incomplete for review.
    scene = checked_scene(work)
    assert any("incomplete" in n for n in scene.generated["review"])


def test_generate_actions_for_a_shipped_scene_at_micro_value_granularity(vat, tmp_path):
    out = tmp_path / "gen"
    result, summary = _gen(
        vat,
        "actions",
        "model.name=mock/generator",
        "scenes=[us-health]",
        "granularity=micro_value",
        "values=[hedonism]",
        "judge=false",
        f"out={out}",
    )
    assert result.code == 0, result.err
    scene = checked_scene(out / "us" / "health.yaml")
    shipped = _index().scenes["us-health"]
    assert scene.id == "us-health" and scene.version == shipped.version + 1 and scene.text == shipped.text
    assert sorted(a.id for a in scene.actions) == [
        "enjoying_life-express",
        "enjoying_life-suppress",
        "pleasure-express",
        "pleasure-suppress",
    ]
    assert all(a.micro_value == a.id.rsplit("-", 1)[0] for a in scene.actions)
    assert "scores" not in scene.generated and scene.generated["prompts"] == ["gen_action@1"]
    assert summary["calls"] == 4


def test_generate_actions_reads_a_folder_of_drafts(vat, tmp_path):
    drafts = tmp_path / "drafts"
    _gen(
        vat,
        "scenes",
        "model.name=mock/generator",
        "countries=[eg]",
        "topics=[work]",
        "values=[tradition]",
        f"out={drafts}",
    )
    (draft,) = read_scenes(drafts)
    result, summary = _gen(
        vat,
        "actions",
        "model.name=mock/generator",
        f"source={drafts}",
        "values=[security]",
        f"out={tmp_path / 'again'}",
    )
    assert result.code == 0 and summary["scenes_written"] == 1
    scene = checked_scene(tmp_path / "again" / _free("eg", "work")[1])
    assert scene.version == 2 and scene.text == draft[0].text
    assert {a.value for a in scene.actions} == {"security"}


def test_unparseable_model_output_is_recorded_not_fatal(vat, tmp_path):
    out = tmp_path / "gen"
    result, summary = _gen(
        vat, "scenes", "model.name=mock/prose", "countries=[fr]", "topics=[politics]", f"out={out}"
    )
    assert result.code == 3  # a scene could not be written: the exit code says so
    assert summary["scenes_failed"] == [_free("fr", "politics")[0]] and summary["files"] == []
    assert summary["failures_by_reason"] == [
        {"stage": "scene", "reason": "no JSON object in the answer", "count": 1}
    ]
    assert summary["failure_examples"][0]["answer"] == "I think this is a reasonable choice."
    assert summary["calls"] == 2  # asked again once (generate.attempts=2), then recorded and skipped
    assert "Traceback" not in result.err


def test_bad_selection_is_a_usage_error(vat, tmp_path):
    result = vat("generate", "scenes", "model.name=mock/generator", "countries=[Atlantis]", f"out={tmp_path}")
    assert result.code == 2 and "Atlantis" in result.err and "us" in result.err
    result = vat("generate", "scenes", "model.name=mock/generator", "granularity=word", f"out={tmp_path}")
    assert result.code == 2 and "granularity" in result.err
    result = vat("generate", "actions", "model.name=mock/generator", "scenes=[xx-nothing]", f"out={tmp_path}")
    assert result.code == 2 and "xx-nothing" in result.err
    result = vat(
        "generate", "scenes", "model.name=mock/generator", f"prompts={tmp_path / 'none'}", f"out={tmp_path}"
    )
    assert result.code == 2 and "prompts" in result.err


# ---------------------------------------------------------------- a scripted provider: chosen faults


class _Script:
    """Answers by stage and value; counts the calls per item."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def answer(self, messages: list[Any]) -> str:
        user = messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content
        if "Write one scene" in user:
            return json.dumps({"text": " ".join(["Your neighbours in Lyon plan a street party"] * 4) + "."})
        if "Score the scene" in user:
            return json.dumps({k: 4 for k in SCORES})
        if "Score the action" in user:
            if "Power" in user:
                return '{"realism": 9}'  # out of range: the judge fails, the action is kept
            return json.dumps({**{k: 5 for k in SCORES}, "comment": "Fine."})
        value = user.split('the value\n"', 1)[-1].split('"', 1)[0] if 'the value\n"' in user else ""
        value = value or user.split('value "', 1)[-1].split('"', 1)[0]
        key = f"{value}/{'express' if 'expresses' in user else 'suppress'}"
        n = self.calls[key] = self.calls.get(key, 0) + 1
        if value == "Security":
            return json.dumps({"text": "We all agree."})  # not first person, every time
        if value == "Tradition" and n == 1:
            return "Let me think about this."  # unparseable once, then fine
        if value == "Achievement":
            return json.dumps({"text": "I chase my own achievement by organising the whole party."})
        day = ["Monday", "Tuesday", "Friday", "Sunday"][n % 2 + 2 * ("express" in key)]
        return json.dumps(
            {
                "text": f"I carry chairs and cook rice for the street party on {day} evening.",
                "micro_value": "Helpful",
            }
        )


@pytest.fixture
def scripted():
    from litellm.llms.custom_llm import CustomLLM

    from runner.execute.online import litellm_module

    litellm = litellm_module(["mock/x"])
    script = _Script()

    class Scripted(CustomLLM):
        def completion(self, *, model, messages, model_response, **_: Any):  # type: ignore[override]
            model_response.choices = [
                litellm.Choices(
                    index=0,
                    finish_reason="stop",
                    message=litellm.Message(role="assistant", content=script.answer(messages)),
                )
            ]
            return model_response

        async def acompletion(self, **kwargs: Any):  # type: ignore[override]
            return self.completion(**kwargs)

    entry = {"provider": "scripted", "custom_handler": Scripted()}
    litellm.custom_provider_map.append(entry)
    litellm.utils.custom_llm_setup()
    yield script
    litellm.custom_provider_map.remove(entry)


def test_invalid_items_are_asked_again_then_skipped_with_reasons(vat, tmp_path, scripted):
    out = tmp_path / "gen"
    result, summary = _gen(
        vat,
        "scenes",
        "model.name=scripted/x",
        "countries=[fr]",
        "topics=[leisure_sports]",
        "values=[security,tradition,achievement,power,benevolence]",
        f"out={out}",
    )
    assert result.code == 0, result.err
    scene = checked_scene(out / _free("fr", "leisure_sports")[1])
    ids = {a.id for a in scene.actions}
    assert ids == {f"{v}-{p}" for v in ("tradition", "power", "benevolence") for p in ("express", "suppress")}
    assert scripted.calls["Tradition/express"] == 2  # the re-ask after an unparseable answer succeeded
    assert scripted.calls["Security/express"] == 2  # two attempts, both invalid
    reasons = {(f["item"].split("/")[-1], f["stage"]): f["reason"] for f in scene.generated["failed"]}
    assert "first person" in reasons[("security-express", "action")]
    assert "names its own value" in reasons[("achievement-suppress", "action")]
    assert "not a score" in reasons[("power-express", "judge_action")]
    # The benevolence action's micro-value guess ("Helpful") is kept; a guess of another value's item is not.
    by_id = {a.id: a for a in scene.actions}
    assert (
        by_id["benevolence-express"].micro_value == "helpful" and by_id["power-express"].micro_value is None
    )
    assert set(scene.generated["scores"]["actions"]) == ids - {"power-express", "power-suppress"}
    assert summary["actions_written"] == 6 and summary["actions_expected"] == 10


# ---------------------------------------------------------------- the embedded real model


@pytest.mark.slow
def test_generate_on_the_embedded_model_runs_end_to_end(vat, tmp_path):
    """SmolLM2-135M writes poor, often unparseable JSON: the run must finish and account for every item."""
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS, prompts)
    for name, cap in (
        ("scene.yaml", 200),
        ("action.yaml", 60),
        ("judge_scene.yaml", 70),
        ("judge_action.yaml", 70),
    ):
        doc = yaml.safe_load((prompts / name).read_text())
        (prompts / name).write_text(yaml.safe_dump({**doc, "max_tokens": cap}, sort_keys=False))
    common = (
        "model.name=local/smollm2-135m",
        f"prompts={prompts}",
        "values=[security]",
        "attempts=1",
        "execution.timeout_s=600",
        "execution.max_retries=0",
    )
    r1, scenes = _gen(vat, "scenes", *common, "countries=[eg]", "topics=[religion]", f"out={tmp_path / 's'}")
    r2, actions = _gen(vat, "actions", *common, "scenes=[eg-religion]", f"out={tmp_path / 'a'}")
    for result, summary, stage in ((r1, scenes, "scenes"), (r2, actions, "actions")):
        assert result.code in (0, 3), result.err
        assert "Traceback" not in result.err and summary["model"] == "local/smollm2-135m"
        failures = summary["failure_examples"]  # all of them: fewer than 10 items were planned
        assert all(f["reason"] for f in failures)
        count = {
            st: sum(f["stage"] == st for f in failures)
            for st in ("scene", "action", "judge_scene", "judge_action")
        }
        # Every planned item made it into a file or is recorded with its reason.
        if count["scene"]:
            assert summary["scenes_failed"] and summary["actions_written"] == 0
        else:
            assert summary["actions_written"] + count["action"] == 2
        if summary["scenes_written"]:
            judged = summary["actions_written"] + (1 if stage == "scenes" else 0)
            assert summary["scored_items"] + count["judge_scene"] + count["judge_action"] == judged
        for f in summary["files"]:
            checked_scene(Path(f))
    print(json.dumps({"scenes": scenes, "actions": actions}, indent=1)[:4000])


# ---------------------------------------------------------------- a real HTTP provider with faults


def _fault_gen_args(srv, out, *extra: str) -> tuple[str, ...]:
    """`vat generate scenes` against the fault server ``srv``: one country, one topic, fast retries."""
    return (
        "scenes",
        "model.name=openai/fault-gen",
        f"model.api_base={srv.api_base}",
        "model.api_key_env=OPENAI_API_KEY",
        "execution.backoff_s=0.01",
        "execution.timeout_s=5",
        *extra,
        "countries=[gb]",
        "topics=[work]",
        f"out={out}",
    )


def test_provider_faults_are_retried_and_keys_never_leak(vat, tmp_path, monkeypatch):
    """LiteLLM → HTTP → the fault server (answers digits, so every item is unusable, but only after retries)."""
    from support.fault_server import FAKE_KEY, FaultPlan, FaultServer

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    plan = FaultPlan(seed=1, transient_rate=1.0, transient_attempts=1, transient_kinds=("429", "500", "503"))
    with FaultServer(plan) as srv:
        args = _fault_gen_args(srv, tmp_path / "gen")
        result, summary = _gen(vat, *args)
        assert result.code == 3 and "Traceback" not in result.err
        # Each of the 2 asks (attempts=2) first met a transport fault, retried, then got a digit.
        assert summary["calls"] == 2 and summary["provider_attempts"] == 4
        assert srv.stats()["requests"] == 4
        assert summary["failures_by_reason"] == [
            {"stage": "scene", "reason": "no JSON object in the answer", "count": 1}
        ]
        srv.configure(FaultPlan(permanent_rate=1.0, permanent_kinds=("401",)))
        result, _ = _gen(vat, *args, "overwrite=true")
        assert result.code == 1 and "rejected the credentials" in result.err
        assert FAKE_KEY not in result.err + result.out
    assert FAKE_KEY not in (tmp_path / "gen" / "generation-report.json").read_text()


def test_drafts_never_go_into_spec(vat, spec_copy):
    out = spec_copy / "scenarios" / "ng"
    result = vat("generate", "scenes", "model.name=mock/generator", f"spec_dir={spec_copy}", f"out={out}")
    assert result.code == 2 and "inside" in result.err
    shipped = {p.name for p in (SPEC / "scenarios" / "ng").glob("*.yaml")}
    assert {p.name for p in out.glob("*.yaml")} == shipped  # nothing was written
    result = vat("import", f"spec_dir={spec_copy}", f"out={spec_copy}", "source=x.csv")
    assert result.code == 2 and "inside" in result.err


def test_generate_keeps_to_requests_per_minute_like_a_run(vat, tmp_path, monkeypatch):
    """`execution.requests_per_minute` paces every attempt of `vat generate`, retries of a 429 included.

    The spacing is read from the server's own arrival times, so start-up time cannot hide a missing
    ceiling. The gate spaces sends, and LiteLLM's first send spends a few tenths of a second setting up
    its client after its slot, so the first gap is not checked; only lower bounds are asserted (a loaded
    machine can only spread requests further). Unpaced, the 4 attempts arrive within about 0.1 s.
    """
    from support.fault_server import FAKE_KEY, FaultPlan, FaultServer

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    plan = FaultPlan(seed=1, transient_rate=1.0, transient_attempts=1, transient_kinds=("429",))
    with FaultServer(plan) as srv:
        result, summary = _gen(
            vat, *_fault_gen_args(srv, tmp_path / "gen", "execution.requests_per_minute=60")
        )
        stats = srv.stats()
    assert result.code == 3 and "Traceback" not in result.err  # digits: unusable, as above
    assert summary["provider_attempts"] == 4 and stats["requests"] == 4
    arrivals = stats["arrivals"]
    gaps = [round(b - a, 2) for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps[1:]) >= 0.9, f"4 attempts at 60/min arrived {gaps} s apart: the ceiling was not applied"
