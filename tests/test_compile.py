"""Compilation: golden request keys, determinism, shared pre condition, strategies (stage 2)."""

from __future__ import annotations

import pytest

from runner.compile import KEY_VERSION, compile_plan, request_key, select_scenes
from runner.config import compose
from runner.errors import VatError
from runner.load import load_index


@pytest.fixture(scope="module")
def index():
    return load_index("spec")


def plan_for(index, *overrides):
    return compile_plan(index, compose(["selection.max_scenes=4", *overrides]))


def test_golden_request_keys():
    # Pinned: a change here changes every cache key in every store. Bump KEY_VERSION if intended.
    assert KEY_VERSION == 1
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    params = {"temperature": 0.0, "max_tokens": 3}
    assert request_key("openai/gpt-4o-mini", params, messages, 0) == "4aefcf686b1bca1c388f4ee9f76cf6cb"
    assert request_key("openai/gpt-4o-mini", params, messages, 1) != request_key(
        "openai/gpt-4o-mini", params, messages, 0
    )
    assert request_key("openai/gpt-4o", params, messages, 0) != request_key(
        "openai/gpt-4o-mini", params, messages, 0
    )
    assert request_key("m", {"max_tokens": 3, "temperature": 0.0}, messages, 0) == request_key(
        "m", params, messages, 0
    )


def test_compilation_is_deterministic(index):
    a = plan_for(index, "target=power")
    b = plan_for(load_index("spec"), "target=power")
    assert a.requests == b.requests
    assert a.run.run_id == b.run.run_id


def test_pre_condition_is_shared_by_every_strategy_and_target(index):
    pres = []
    for overrides in (
        ["strategy=fewshot_2", "target=power"],
        ["strategy=fewshot_8", "target=security", "direction=suppress"],
        ["strategy=system_prompt", "target=hedonism"],
        ["strategy=baseline"],
    ):
        plan = plan_for(index, *overrides)
        pres.append([r.key for r in plan.requests if r.condition == "pre"])
    assert all(p == pres[0] for p in pres)
    # one pre request per action of the four selected scenes, however many actions each scene has
    scenes = {r.scene_id for r in plan_for(index, "strategy=baseline").requests}
    assert len(scenes) == 4
    assert len(pres[0]) == sum(len(index.scenes[s].actions) for s in scenes)


def test_fewshot_demonstrations_come_from_train_and_follow_direction(index):
    plan = plan_for(index, "strategy=fewshot_4", "target=power", "direction=reinforce")
    post = next(r for r in plan.requests if r.condition == "post")
    demos = post.messages[1:-1]
    assert len(demos) == 8  # 4 × (user, assistant)
    train_texts = {a.text for s in index.scenes_in("train") for a in s.actions if a.value == "power"}
    answers = [m["content"] for m in demos if m["role"] == "assistant"]
    assert answers == ["5", "1", "5", "1"]  # express rated high, suppress low
    assert all(any(t in m["content"] for t in train_texts) for m in demos if m["role"] == "user")
    suppress = plan_for(index, "strategy=fewshot_4", "target=power", "direction=suppress")
    post_s = next(r for r in suppress.requests if r.condition == "post")
    assert [m["content"] for m in post_s.messages[1:-1] if m["role"] == "assistant"] == ["1", "5", "1", "5"]


def test_evaluation_scenes_are_test_split_only(index):
    plan = plan_for(index, "selection.max_scenes=null")
    assert {r.scene_id for r in plan.requests} == {s.id for s in index.scenes_in("test")}


def test_system_prompt_names_the_target(index):
    plan = plan_for(index, "strategy=system_prompt", "target=tradition", "direction=suppress")
    post = next(r for r in plan.requests if r.condition == "post")
    assert "little weight to Tradition" in post.messages[0]["content"]


def test_requests_are_grouped_by_scene_for_prefix_reuse(index):
    plan = plan_for(index)
    for condition in ("pre", "post"):
        scenes = [r.scene_id for r in plan.requests if r.condition == condition]
        runs = [s for i, s in enumerate(scenes) if i == 0 or scenes[i - 1] != s]
        assert len(runs) == len(set(scenes))


def test_checkpoint_sends_post_to_its_models(index):
    plan = plan_for(
        index,
        "strategy=checkpoint",
        "+checkpoints=[{name: openai/ckpt-100, step: 100}, {name: openai/ckpt-200, step: 200}]",
    )
    models = {(r.condition, r.model, r.step) for r in plan.requests}
    assert models == {
        ("pre", "local/smollm2-135m", None),
        ("post", "openai/ckpt-100", 100),
        ("post", "openai/ckpt-200", 200),
    }
    with pytest.raises(VatError, match="checkpoint"):
        plan_for(index, "strategy=checkpoint")


def test_unknown_target_suggests_a_fix(index):
    with pytest.raises(VatError, match="did you mean 'power'"):
        plan_for(index, "target=powr")


def test_scene_cap_is_stable_and_spread(index):
    cfg = compose(["selection.max_scenes=8"])
    first = [s.id for s in select_scenes(index, cfg.selection)]
    assert first == [s.id for s in select_scenes(index, cfg.selection)]
    assert len({s.split("-")[0] for s in first}) >= 4  # a cap spreads over countries


def test_compiled_keys_equal_the_key_recipe(index):
    """The prefix-sharing hasher of compile_plan gives exactly request_key's keys (pre and few-shot post)."""
    from runner.compile import gen_params

    cfg = compose(["selection.max_scenes=3", "model.samples=2", "strategy=fewshot_4", "model.seed=7"])
    plan = compile_plan(index, cfg)
    params = gen_params(cfg.model)
    assert {r.condition for r in plan.requests} == {"pre", "post"}
    for r in plan.requests:
        assert r.key == request_key(r.model, params, r.messages, r.sample)
