"""Compilation: golden request keys, determinism, shared pre condition, strategies (stage 2)."""

from __future__ import annotations

import pytest

from runner.compile.plan import KEY_VERSION, compile_plan, request_key, select_scenes
from runner.config import compose
from runner.core.errors import VatError
from runner.spec.load import load_index


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


def test_a_checkpoint_served_by_several_replicas_is_a_pool_with_the_same_keys(index):
    one = "http://127.0.0.1:8001/v1"
    pool = f"[{one},http://127.0.0.1:8002/v1]"
    single = plan_for(
        index, "strategy=checkpoint", f"+checkpoints=[{{name: openai/ckpt, step: 1, api_base: {one}}}]"
    )
    pooled = plan_for(
        index, "strategy=checkpoint", f"+checkpoints=[{{name: openai/ckpt, step: 1, api_base: {pool}}}]"
    )
    post = [r for r in pooled.requests if r.condition == "post"]
    assert post and {r.api_base for r in post} == {(one, "http://127.0.0.1:8002/v1")}
    assert [r.key for r in pooled.requests] == [
        r.key for r in single.requests
    ]  # where it is served: not a key
    with pytest.raises(VatError, match=r"checkpoints\[0\]\.api_base\[0\]='ftp://x' is not a URL"):
        plan_for(
            index, "strategy=checkpoint", "+checkpoints=[{name: openai/ckpt, step: 1, api_base: [ftp://x]}]"
        )


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
    from runner.compile.plan import gen_params

    cfg = compose(["selection.max_scenes=3", "model.samples=2", "strategy=fewshot_4", "model.seed=7"])
    plan = compile_plan(index, cfg)
    params = gen_params(cfg.model)
    assert {r.condition for r in plan.requests} == {"pre", "post"}
    for r in plan.requests:
        assert r.key == request_key(r.model, params, r.messages, r.sample)


# ---------------------------------------------------------------- elicitation (docs/elicitation.md)

ONE_SCENE = ["selection.max_scenes=1", "model.name=openai/gpt-4o-mini"]


def _first_and_last(index, *overrides):
    plan = compile_plan(index, compose([*ONE_SCENE, *overrides]))
    pre = [r for r in plan.requests if r.condition == "pre"]
    post = [r for r in plan.requests if r.condition == "post"]
    return plan, pre[0], post[-1]


def test_todays_question_keeps_its_keys_and_run_id(index):
    # Pinned from the code before elicitation existed: the default question's keys and run id hold.
    plan, first, last = _first_and_last(index)
    assert plan.run.run_id == "c94b417405d5"
    assert (first.key, last.key) == ("be6c7aa47108fc4c10b9aa966bf7df61", "644b44c4b02f7f738abc39736ee825ed")
    assert {(r.asked_value, r.asked_micro_value, r.variant, r.scale_reversed) for r in plan.requests} == {
        (None, None, "base", False)
    }
    # The action question with bias controls: its base text is judgment's, so are its keys.
    controls, c_first, c_last = _first_and_last(index, "prompt=judgment_controls")
    assert (c_first.key, c_last.key) == (first.key, last.key) and controls.run.run_id != plan.run.run_id


@pytest.mark.parametrize(
    ("overrides", "n", "first", "last"),
    [
        (["elicitation=value"], 400, "e25cfce351b3e47b9763c830baaf6417", "a995d1c7e450d266d15633fc3b28d0b8"),
        (
            ["elicitation=micro_value"],
            400,
            "424c68e801c4d4fedbfda82c92657ad6",
            "0419d041ac5baa729ada32197f00f2d3",
        ),
        (
            ["elicitation=micro_value", "elicitation.micro_values=all"],
            2240,
            "1954ea76cbbc6eadc7ef01878cda8939",
            "d305a0ef26dd7a180443ddfd0b06be1a",
        ),
        (
            ["elicitation=value", "elicitation.variant=reversed"],
            400,
            "9e8540c5ac90d3cfea98d3a44ac598ed",
            "d5b2689dc7a16b455e80cfd93748faa2",
        ),
        (
            ["elicitation=value", "elicitation.variant=para1"],
            400,
            "1310d26f3ba5ac3ad344036caa290d52",
            "06064dd3a92ad9ee8cbe5e1c18ac1bcd",
        ),
        (
            ["elicitation=value", "elicitation.variant=para2"],
            400,
            "cc18a1abf181354227d31af5015c2f97",
            "6aa77808bd8c10f082536df0c7768019",
        ),
        (
            ["prompt=judgment_controls", "elicitation.variant=reversed"],
            40,
            "a1681db22d230395ca0ea626d1d02826",
            "dcf6a4af9242385e89a247bed7972693",
        ),
    ],
)
def test_golden_keys_of_each_elicitation(index, overrides, n, first, last):
    # Pinned: a change here changes the cache keys of that elicitation in every store.
    plan, a, b = _first_and_last(index, *overrides)
    assert len(plan.requests) == n and (a.key, b.key) == (first, last)
    assert len(set(plan.keys())) == n  # every (condition, action, asked value) has its own key


def test_value_elicitation_asks_every_action_about_every_value(index):
    plan = compile_plan(index, compose([*ONE_SCENE, "elicitation=value"]))
    values = set(index.value_ids)
    for condition in ("pre", "post"):
        reqs = [r for r in plan.requests if r.condition == condition]
        by_action = {}
        for r in reqs:
            by_action.setdefault(r.action_id, set()).add(r.asked_value)
        assert len(by_action) == 20 and all(asked == values for asked in by_action.values())
    pre = [(r.action_id, r.asked_value) for r in plan.requests if r.condition == "pre"]
    post = [(r.action_id, r.asked_value) for r in plan.requests if r.condition == "post"]
    assert pre == post  # pre and post hold identical items, in the same order
    security = index.value("security")
    r = next(r for r in plan.requests if r.asked_value == "security")
    assert f"Value: {security.name} - {security.definition}" in r.messages[-1]["content"]
    assert r.asked_micro_value is None and r.variant == "base" and not r.scale_reversed


def test_micro_value_elicitation_names_the_micro_value_with_its_value_as_gloss(index):
    plan = compile_plan(index, compose([*ONE_SCENE, "elicitation=micro_value"]))
    scene = index.scenes[plan.run.scene_ids[0]]
    named = {a.micro_value for a in scene.actions}
    assert {r.asked_micro_value for r in plan.requests} == named  # micro_values=scene
    r = next(r for r in plan.requests if r.asked_micro_value == "freedom")
    sd = index.value("self_direction")
    assert r.asked_value == "self_direction"
    assert f"Value: Freedom - one aspect of {sd.name}: {sd.definition}" in r.messages[-1]["content"]
    everything = compile_plan(
        index, compose([*ONE_SCENE, "elicitation=micro_value", "elicitation.micro_values=all"])
    )
    assert len({r.asked_micro_value for r in everything.requests}) == 56


@pytest.mark.parametrize(
    ("overrides", "per_action"),
    [([], 1.0), (["elicitation=value"], 10.0), (["elicitation=micro_value"], 10.0),
     (["elicitation=micro_value", "elicitation.micro_values=all"], 56.0)],
)  # fmt: skip
def test_plan_shows_the_cost_multiplier(vat, store_path, overrides, per_action):
    import json

    res = vat("plan", "model.name=sim/circle", f"store.path={store_path}", *overrides, "format=json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["judgments_per_action"] == per_action
    assert out["requests"] == out["judgments"] == int(41 * 20 * 2 * per_action)  # 41 test scenes, pre + post
    assert out["elicitation"] == (overrides[0].split("=")[1] if overrides else "action")


def test_reversed_scale_shows_demonstrations_on_its_scale(index):
    base = compile_plan(index, compose([*ONE_SCENE, "prompt=judgment_controls"]))
    flipped = compile_plan(
        index, compose([*ONE_SCENE, "prompt=judgment_controls", "elicitation.variant=reversed"])
    )
    post_b = next(r for r in base.requests if r.condition == "post")
    post_f = next(r for r in flipped.requests if r.condition == "post")
    digits_b = [m["content"] for m in post_b.messages if m["role"] == "assistant"]
    digits_f = [m["content"] for m in post_f.messages if m["role"] == "assistant"]
    assert digits_b and digits_f == [str(6 - int(d)) for d in digits_b]
    assert all(r.scale_reversed and r.variant == "reversed" for r in flipped.requests)
    assert "5 = strongly disagree" in post_f.messages[0]["content"]


def test_value_elicitation_keeps_the_action_question_in_demonstrations(index):
    plan = compile_plan(index, compose([*ONE_SCENE, "elicitation=value"]))
    post = next(r for r in plan.requests if r.condition == "post")
    demos = [m["content"] for m in post.messages[1:-1] if m["role"] == "user"]
    assert demos and all("How much do you agree with this action?" in d for d in demos)


def test_an_elicitation_that_does_not_fit_the_prompt_fails_clearly(index):
    with pytest.raises(
        VatError,
        match="prompt=judgment names no value, but elicitation.ask=value needs one that names a value, such as judgment_micro",
    ):
        compile_plan(index, compose([*ONE_SCENE, "elicitation=value", "prompt=judgment"]))
    with pytest.raises(
        VatError,
        match="prompt=judgment_micro names a value in its question, but elicitation.ask=action needs one that names none",
    ):
        compile_plan(index, compose([*ONE_SCENE, "prompt=judgment_micro"]))
    with pytest.raises(
        VatError,
        match=r"variant='para9' is not a variant of spec/prompts/judgment_micro.yaml; choose one of: base, para1",
    ):
        compile_plan(index, compose([*ONE_SCENE, "elicitation=value", "elicitation.variant=para9"]))
    with pytest.raises(
        VatError, match="elicitation.ask='values' is not known; choose one of: action, value, micro_value"
    ):
        compile_plan(index, compose([*ONE_SCENE, "elicitation.ask=values"]))
    with pytest.raises(
        VatError, match="elicitation='values' names no file in conf/elicitation/; did you mean 'value'"
    ):
        compose(["elicitation=values"])


def test_the_elicitation_is_recorded_in_the_run(index):
    plan = compile_plan(index, compose([*ONE_SCENE, "elicitation=micro_value", "elicitation.variant=para1"]))
    assert plan.run.config["elicitation"] == {
        "ask": "micro_value",
        "micro_values": "scene",
        "variant": "para1",
    }
    assert plan.run.config["prompt"] == "judgment_micro"


def test_micro_values_of_the_scene_need_actions_that_name_them(index):
    from dataclasses import replace

    scene_id = compile_plan(index, compose(ONE_SCENE)).run.scene_ids[0]
    scene = index.scenes[scene_id]
    bare = scene.model_copy(
        update={"actions": [a.model_copy(update={"micro_value": None}) for a in scene.actions]}
    )
    stripped = replace(index, scenes={**index.scenes, scene_id: bare})
    with pytest.raises(VatError, match=f"scene {scene_id} names no micro-value.*micro_values=all"):
        compile_plan(stripped, compose([*ONE_SCENE, "elicitation=micro_value"]))
    assert len(compile_plan(stripped, compose([*ONE_SCENE, "elicitation=value"])).requests) == 400


def test_a_variant_cannot_redefine_base(tmp_path):
    import shutil

    from runner.core.errors import VatError as Err

    spec = tmp_path / "spec"
    shutil.copytree("spec", spec)
    path = spec / "prompts" / "judgment_micro.yaml"
    path.write_text(path.read_text().replace("  para1:\n", "  base:\n", 1))
    with pytest.raises(Err, match=r"judgment_micro.yaml:\d+: variants.*'base' is the prompt's own text"):
        load_index(spec)


def test_a_balanced_strategy_on_a_reversed_scale_keeps_its_per_item_order(index):
    """The reversed scale rewrites the demonstrated digits (6 − d) and must keep the per-item order: a
    balanced strategy shows k demonstrations, one polarity each half, in an order that varies by item."""
    import json

    base = ("strategy=fewshot_4_balanced", "prompt=judgment_controls", "selection.max_scenes=2")
    for variant in ("base", "reversed"):
        plan = plan_for(index, *base, f"elicitation.variant={variant}")
        orders = set()
        for req in [q for q in plan.requests if q.condition == "post"]:
            msgs = json.loads(req.messages) if isinstance(req.messages, str) else req.messages
            shown = tuple(m["content"] for m in msgs if m["role"] == "assistant")
            assert len(shown) == 4 and sorted(shown) == ["1", "1", "5", "5"], (variant, shown)
            assert req.scale_reversed == (variant == "reversed")
            orders.add(shown)
        assert len(orders) > 1, f"{variant}: every item shows its demonstrations in the same order"
