"""The simulated judge: reading prompts, the documented generative model, LiteLLM, and its vectorised twin."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.shipped_counts import ITEMS_PER_VALUE
from support.specs import SPEC

from runner.compile.plan import select_scenes
from runner.compile.strategies import Context, steer, user_message
from runner.core.errors import VatError
from runner.execute.parse import expected_rating, top_logprobs_of_answer
from runner.execute.providers import sim, sim_model
from runner.metrics import vat as metrics
from runner.spec.load import SpecIndex, load_index

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def index() -> SpecIndex:
    return load_index(SPEC, check_lock=False)


@pytest.fixture(scope="module")
def judge(index: SpecIndex) -> sim.SimJudge:
    return sim.SimJudge(index)


def _messages(
    index: SpecIndex,
    scene_id: str,
    action_id: str,
    strategy: str = "baseline",
    target: str = "security",
    direction: int = 1,
) -> list[dict[str, str]]:
    """A request as runner.compile.plan renders it: system (+ suffix), demonstrations, the item."""
    prompt = index.prompts["judgment"]
    steering = steer(
        index.strategies[strategy], Context(index=index, prompt=prompt, target=target, direction=direction)
    )
    system = prompt.system.strip() + (f"\n\n{steering.system_suffix}" if steering.system_suffix else "")
    scene = index.scenes[scene_id]
    action = next(a for a in scene.actions if a.id == action_id)
    return [
        {"role": "system", "content": system},
        *steering.demonstrations,
        {"role": "user", "content": user_message(prompt, scene.text, action.text)},
    ]


def _a_test_scene(index: SpecIndex) -> str:
    return index.scenes_in("test")[0].id


# ---------------------------------------------------------------- profiles and the planted shift


def test_shift_follows_the_circle_with_gain_dose_and_direction(judge: sim.SimJudge) -> None:
    p = judge.profile("circle")
    g, a = p.doc.intervention.gain, p.doc.intervention.amplitude
    k = dict(zip(p.values, p.shift("security", -1, 0.5), strict=True))
    assert k["security"] == pytest.approx(-0.5 * g)
    assert k["power"] == pytest.approx(
        -0.5 * g * a * math.cos(math.radians(36))
    )  # neighbour: with the target
    assert k["conformity"] == pytest.approx(k["power"])
    assert k["self_direction"] == pytest.approx(+0.5 * g * a)  # opposite: against the target
    assert k["achievement"] == pytest.approx(-0.5 * g * a * math.cos(math.radians(72)))


def test_no_offtarget_and_hub_profiles_plant_what_they_say(judge: sim.SimJudge) -> None:
    k = judge.profile("no_offtarget").shift("hedonism", 1, 1.0)
    assert np.count_nonzero(k) == 1 and k[judge.tables.values.index("hedonism")] > 0
    hub = judge.profile("hub_security")
    h = hub.doc.intervention.coupling["security"]
    k = dict(zip(hub.values, hub.shift("achievement", 1, 0.8), strict=True))
    assert k["security"] == pytest.approx(0.8 * hub.doc.intervention.gain * h)
    assert sum(1 for v in k.values() if v != 0) == 2
    # The hub term never replaces the on-target gain when the hub is itself the target.
    assert hub.shift("security", 1, 1.0)[hub.values.index("security")] == pytest.approx(
        hub.doc.intervention.gain
    )


def test_fewshot_dose_grows_with_k(judge: sim.SimJudge) -> None:
    p = judge.profile("circle")
    doses = [p.dose("fewshot", k) for k in (2, 4, 8)]
    assert doses == sorted(doses) and doses[1] == pytest.approx(4 / 6)


def test_profile_errors_name_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: SpecIndex
) -> None:
    (tmp_path / "sim").mkdir()
    good = (ROOT / "conf" / "sim" / "circle.yaml").read_text()
    (tmp_path / "sim" / "typo.yaml").write_text(good.replace("  noise: 0.3", "  noize: 0.3"))
    (tmp_path / "sim" / "lacking.yaml").write_text(good.replace("  hedonism: 0.0\n", "", 1))
    monkeypatch.setenv("VAT_CONF_DIR", str(tmp_path))
    with pytest.raises(VatError, match=r"conf/sim/typo.yaml:\d+: judge.noize: .*fix the profile"):
        sim.load_profile("typo", index.value_ids)
    with pytest.raises(VatError, match="weights has no entry for hedonism"):
        sim.load_profile("lacking", index.value_ids)
    with pytest.raises(VatError, match="no simulated judge profile 'nope'; choose one of: lacking, typo"):
        sim.load_profile("nope", index.value_ids)


# ---------------------------------------------------------------- reading the request


def test_reads_item_and_no_intervention_from_the_baseline_prompt(
    index: SpecIndex, judge: sim.SimJudge
) -> None:
    scene = _a_test_scene(index)
    item, found = sim.read_request(
        _messages(index, scene, "power-suppress"), judge.tables, judge.profile("circle")
    )
    assert (item.scene_id, item.action_id, item.value, item.sign) == (scene, "power-suppress", "power", -1)
    assert found == []


@pytest.mark.parametrize(("strategy", "k"), [("fewshot_2", 2), ("fewshot_4", 4), ("fewshot_8", 8)])
@pytest.mark.parametrize("direction", [1, -1])
def test_reads_target_direction_and_dose_from_demonstrations(
    index: SpecIndex, judge: sim.SimJudge, strategy: str, k: int, direction: int
) -> None:
    msgs = _messages(index, _a_test_scene(index), "hedonism-express", strategy, "tradition", direction)
    profile = judge.profile("circle")
    _, found = sim.read_request(msgs, judge.tables, profile)
    assert [(f.target, f.direction, f.source) for f in found] == [("tradition", direction, f"fewshot k={k}")]
    assert found[0].dose == pytest.approx(profile.dose("fewshot", k))


@pytest.mark.parametrize("direction", [1, -1])
def test_reads_target_and_direction_from_the_system_prompt(
    index: SpecIndex, judge: sim.SimJudge, direction: int
) -> None:
    msgs = _messages(index, _a_test_scene(index), "power-express", "system_prompt", "benevolence", direction)
    _, found = sim.read_request(msgs, judge.tables, judge.profile("circle"))
    assert [(f.target, f.direction, f.source) for f in found] == [("benevolence", direction, "system_prompt")]


def test_checkpoint_model_string_carries_the_intervention(index: SpecIndex, judge: sim.SimJudge) -> None:
    name, ckpt = sim.parse_model("sim/circle:power:suppress:0.5")
    _, found = sim.read_request(
        _messages(index, _a_test_scene(index), "power-express"), judge.tables, judge.profile(name), ckpt
    )
    assert [(f.target, f.direction, f.dose) for f in found] == [("power", -1, 0.5)]
    with pytest.raises(ValueError, match="must be sim/<profile>"):
        sim.parse_model("circle:power:sideways")


def test_noise_follows_item_and_condition_not_wording(index: SpecIndex, judge: sim.SimJudge) -> None:
    scene = _a_test_scene(index)
    pre = _messages(index, scene, "achievement-express")
    post = _messages(index, scene, "achievement-express", "fewshot_4", "power", 1)
    a, b = judge.answer("no_offtarget", pre), judge.answer("no_offtarget", post)
    assert a.mu != b.mu  # pre and post draw independent noise even where nothing is shifted
    other = judge.answer(
        "no_offtarget", _messages(index, scene, "achievement-express", "system_prompt", "power", 1)
    )
    assert len({a.mu, b.mu, other.mu}) == 3
    prompt = index.prompts["judgment"]
    reworded_prompt = prompt.model_copy(
        update={"system": "Rate it 1-5.", "user": "{scene}\n{action}\nDigit:"}
    )
    reworded = replace(index, prompts={"judgment": reworded_prompt})
    twin = sim.SimJudge(reworded)
    assert twin.answer("no_offtarget", _messages(reworded, scene, "achievement-express")).mu == a.mu
    assert (
        twin.answer(
            "no_offtarget", _messages(reworded, scene, "achievement-express", "fewshot_4", "power", 1)
        ).mu
        == b.mu
    )


def test_unknown_prompts_are_refused(index: SpecIndex, judge: sim.SimJudge) -> None:
    msgs = _messages(index, _a_test_scene(index), "power-express")
    with pytest.raises(ValueError, match="not the judgment prompt rendered"):
        judge.answer("circle", [*msgs[:-1], {"role": "user", "content": "Is water wet?"}])
    with pytest.raises(ValueError, match="instruction that no system_prompt strategy"):
        judge.answer("circle", [{"role": "system", "content": msgs[0]["content"] + "\n\nBe nice."}, msgs[-1]])
    with pytest.raises(ValueError, match="demonstrations before the item"):
        judge.answer(
            "circle",
            [msgs[0], {"role": "user", "content": "hi"}, {"role": "assistant", "content": "5"}, msgs[-1]],
        )
    with pytest.raises(ValueError, match="no simulated judge profile"):
        judge.answer("nope", msgs)


# ---------------------------------------------------------------- answers


def test_answers_are_deterministic_and_follow_the_documented_model(
    index: SpecIndex, judge: sim.SimJudge
) -> None:
    scene = _a_test_scene(index)
    msgs = _messages(index, scene, "benevolence-express")
    a, b = judge.answer("circle", msgs), judge.answer("circle", msgs)
    assert a.rating == b.rating and np.array_equal(a.probs, b.probs)
    p = judge.profile("circle")
    seed, sc, jd = p.doc.seed, p.doc.scenes, p.doc.judge
    lam = p.weights[p.values.index("benevolence")] + sc.value_sd * sim_model.normal_draw(
        seed, "value", scene, "benevolence"
    )
    key = f"circle\x1f{scene}/benevolence-express\x1fbaseline"
    assert sim.condition_key("circle", a.item, a.interventions) == key
    beta = sc.action_sd * sim_model.normal_draw(seed, "action", scene, "benevolence-express")
    assert a.mu == pytest.approx(
        3.0 + 2.0 * lam + beta + jd.noise * sim_model.normal_draw(seed, "noise", key)
    )
    assert a.rating == int(np.argmax(a.probs)) + 1  # temperature 0: the most likely digit


def test_intervention_moves_the_latent_by_susceptibility_times_shift(
    index: SpecIndex, judge: sim.SimJudge
) -> None:
    scene = _a_test_scene(index)
    p = judge.profile("circle")
    item, found = sim.read_request(
        _messages(index, scene, "power-express", "fewshot_4", "security", 1), judge.tables, p
    )
    before, after = judge.latent(p, item, []), judge.latent(p, item, found)
    k = p.shift("security", 1, p.dose("fewshot", 4))[p.values.index("power")]
    assert after - before == pytest.approx(sim.susceptibility(p, scene) * k)


def test_logprobs_give_the_expected_rating_of_the_answer_distribution(
    index: SpecIndex, judge: sim.SimJudge
) -> None:
    ans = judge.answer("circle", _messages(index, _a_test_scene(index), "tradition-suppress"))
    top = top_logprobs_of_answer(sim.logprobs_payload(ans, 5))
    assert expected_rating(top) == pytest.approx(float(ans.probs @ sim.SCALE))
    assert sorted(top) == ["1", "2", "3", "4", "5"]
    assert len(top_logprobs_of_answer(sim.logprobs_payload(ans, 2))) == 2


def test_samples_at_temperature_differ_follow_the_distribution_and_reproduce(index: SpecIndex) -> None:
    msgs = _messages(index, _a_test_scene(index), "stimulation-express")
    first, second = sim.SimJudge(index), sim.SimJudge(index)
    draws = [first.answer("circle", msgs, 1.0).rating for _ in range(600)]
    assert draws == [second.answer("circle", msgs, 1.0).rating for _ in range(600)]  # same process history
    probs = first.answer("circle", msgs).probs
    counts = np.bincount(draws, minlength=6)[1:]
    chi2 = float((((counts - 600 * probs) ** 2) / np.maximum(600 * probs, 1e-9)).sum())
    assert len(set(draws)) >= 2 and chi2 < 18.5  # χ²(4) 99.9 % point


def test_litellm_serves_sim_models(index: SpecIndex) -> None:
    import litellm

    sim.configure(index)
    sim.register()
    msgs = _messages(index, _a_test_scene(index), "universalism-express", "system_prompt", "power", -1)
    resp = litellm.completion(
        model="sim/hub_security", messages=msgs, temperature=0, max_tokens=3, logprobs=True, top_logprobs=5
    )
    ans = sim.judge().answer("hub_security", msgs)
    assert resp.choices[0].message.content == str(ans.rating)
    top = top_logprobs_of_answer(resp.choices[0].logprobs)
    assert expected_rating(top) == pytest.approx(float(ans.probs @ sim.SCALE))
    plain = litellm.completion(model="sim/hub_security", messages=msgs, temperature=0, max_tokens=3)
    assert getattr(plain.choices[0], "logprobs", None) is None


# ---------------------------------------------------------------- the vectorised twin


def _provider_deltas(index: SpecIndex, judge: sim.SimJudge, seeds: range, scenes: list) -> np.ndarray:
    """post − pre value states answered by the provider, one dataset per profile seed."""
    base = judge.profile("circle")
    pre_msgs = {(s.id, a.id): _messages(index, s.id, a.id) for s in scenes for a in s.actions}
    post_msgs = {
        (s.id, a.id): _messages(index, s.id, a.id, "fewshot_4", "security", 1)
        for s in scenes
        for a in s.actions
    }
    out = []
    for seed in seeds:
        judge._profiles["circle"] = replace(base, doc=base.doc.model_copy(update={"seed": seed}))
        arrays = []
        for msgs in (pre_msgs, post_msgs):
            e = np.zeros((len(scenes), 10))
            for i, s in enumerate(scenes):
                per_value = {v: sum(x.value == v for x in s.actions) for v in {x.value for x in s.actions}}
                for a in s.actions:  # the mean evidence σ(r − 3)/2 of a value's items in the scene
                    r = float(judge.answer("circle", msgs[(s.id, a.id)]).probs @ sim.SCALE)
                    e[i, judge.tables.values.index(a.value)] += (
                        (1 if a.polarity.value == "express" else -1) * (r - 3) / (2 * per_value[a.value])
                    )
            arrays.append(e)
        out.append(arrays[1] - arrays[0])
    judge._profiles["circle"] = base
    return np.array(out)


def test_provider_and_vectorised_simulation_agree_in_distribution(index: SpecIndex) -> None:
    judge = sim.SimJudge(index)
    scenes = select_scenes(index, {"split": "all", "max_scenes": 30})
    provider = _provider_deltas(index, judge, range(100, 124), scenes)
    p = judge.profile("circle")
    k = p.shift("security", 1, p.dose("fewshot", 4))
    pre, (post,) = sim.simulate_states(
        p, [k], len(scenes), 2000, np.random.default_rng(0), items_per_value=ITEMS_PER_VALUE
    )
    twin = post - pre
    for stat in (lambda d: d.mean(axis=1), lambda d: d.std(axis=1)):
        a, b = stat(provider), stat(twin)  # (datasets, values)
        se = b.std(axis=0) * math.sqrt(1 / len(a) + 1 / len(b))
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < 4.5 * se)
    nvat = [metrics.system_tax(metrics.coupling_batch(d, 5))["nvat"] for d in (provider, twin)]
    se = nvat[1].std() * math.sqrt(1 / len(nvat[0]) + 1 / len(nvat[1]))
    assert abs(nvat[0].mean() - nvat[1].mean()) < 4 * se


def test_population_shift_matches_the_linear_formula_for_small_shifts(judge: sim.SimJudge) -> None:
    p = judge.profile("circle")
    k = p.shift("self_direction", 1, 1.0, gain=0.05)
    pre, (post,) = sim.simulate_states(p, [k], 40_000, 1, np.random.default_rng(3), paired_noise=True)
    m = (post - pre)[0].mean(axis=0)
    # m(v) ≈ k_v (E S = 1); the flattening of r̂ near the scale's ends shrinks it by a few per cent.
    assert np.all(np.abs(m - k) <= 0.1 * np.abs(k) + 0.002)
    assert np.all(np.sign(m) == np.sign(k))


# ---------------------------------------------------------------- value-named questions, variants, bias


def _compiled(index: SpecIndex, *overrides: str) -> list:
    """The requests runner.compile.plan makes for one test scene (the sim judge reads exactly these)."""
    from runner.compile.plan import compile_plan
    from runner.config import compose

    cfg = compose(["selection.max_scenes=1", "model.name=sim/circle", *overrides])
    return list(compile_plan(index, cfg).requests)


@pytest.mark.parametrize(
    "overrides",
    [
        ("elicitation=value",),
        ("elicitation=micro_value", "elicitation.micro_values=all"),
        ("elicitation=value", "elicitation.variant=reversed"),
        ("elicitation=value", "elicitation.variant=para2"),
        ("prompt=judgment_controls", "elicitation.variant=reversed"),
        ("prompt=judgment_controls", "elicitation.variant=para1"),
    ],
)
def test_reads_the_asked_value_variant_and_scale_of_every_request(
    index: SpecIndex, judge: sim.SimJudge, overrides: tuple[str, ...]
) -> None:
    profile = judge.profile("circle")
    for r in _compiled(index, *overrides)[::7]:
        item, found = sim.read_request(r.messages, judge.tables, profile)
        got = (item.scene_id, item.action_id, item.asked_value, item.asked_micro_value, item.variant)
        assert got == (r.scene_id, r.action_id, r.asked_value, r.asked_micro_value, r.variant)
        assert item.scale_reversed == r.scale_reversed
        # the demonstrations of the post condition still read as fewshot_4 towards security, reinforce
        assert [(f.target, f.direction) for f in found] == (
            [("security", 1)] if r.condition == "post" else []
        )


def test_a_value_named_answer_follows_the_documented_model(index: SpecIndex, judge: sim.SimJudge) -> None:
    p = judge.profile("circle")
    seed, sc, jd = p.doc.seed, p.doc.scenes, p.doc.judge
    reqs = _compiled(index, "elicitation=value")
    own = next(
        r for r in reqs if r.condition == "pre" and r.asked_value == r.value and r.polarity == "suppress"
    )
    other = next(
        r for r in reqs if r.condition == "pre" and r.value == "power" and r.asked_value == "security"
    )
    for r, rho in ((own, -1.0), (other, p.doc.judge.relevance * math.cos(math.radians(36)))):
        a = judge.answer("circle", r.messages)
        u = r.asked_value
        moved = sc.value_sd * sim_model.normal_draw(
            seed, "value", r.scene_id, u
        )  # λ − w with no intervention
        key = f"circle\x1f{r.scene_id}/{r.action_id}@{u}\x1fbaseline"
        assert sim.condition_key("circle", a.item, a.interventions) == key
        want = (
            3.0
            + 2.0 * (jd.read * rho + jd.lens * moved)
            + sc.action_sd * sim_model.normal_draw(seed, "action", r.scene_id, r.action_id, u)
            + jd.noise * sim_model.normal_draw(seed, "noise", key)
        )
        assert a.mu == pytest.approx(want)


def test_the_reversed_scale_shows_the_same_judgment_the_other_way_round(
    index: SpecIndex, judge: sim.SimJudge
) -> None:
    for overrides in (("elicitation=value",), ("prompt=judgment_controls",)):
        base = _compiled(index, *overrides)
        flipped = _compiled(index, *overrides, "elicitation.variant=reversed")
        for a, b in zip(base[::13], flipped[::13], strict=True):
            x, y = judge.answer("circle", a.messages), judge.answer("circle", b.messages)
            assert y.mu == pytest.approx(6.0 - x.mu)  # same item, same noise, scale shown reversed
            assert (a.condition, a.action_id, a.asked_value) == (b.condition, b.action_id, b.asked_value)


def _acquiescence(judge: sim.SimJudge, profile: str, requests: list) -> float:
    """Mean canonical expected rating over the express and suppress items that ask about their own value."""
    ratings = []
    for r in requests:
        if r.condition != "pre" or r.asked_value not in (None, r.value):
            continue
        shown = float(judge.answer(profile, r.messages).probs @ sim.SCALE)
        ratings.append(6.0 - shown if r.scale_reversed else shown)
    return float(np.mean(ratings))


@pytest.mark.parametrize(
    "overrides",
    [(), ("elicitation=value",), ("prompt=judgment_controls", "elicitation.variant=reversed")],
)
def test_an_always_agree_judge_looks_acquiescent_and_a_neutral_one_does_not(
    index: SpecIndex, judge: sim.SimJudge, overrides: tuple[str, ...]
) -> None:
    from runner.compile.plan import compile_plan
    from runner.config import compose

    cfg = compose(["selection.max_scenes=10", "model.name=sim/circle", "strategy=baseline", *overrides])
    reqs = list(compile_plan(index, cfg).requests)
    agree, neutral = _acquiescence(judge, "acquiescent", reqs), _acquiescence(judge, "circle", reqs)
    assert agree > 4.0  # 200 items: mean canonical rating far above the middle
    assert abs(neutral - 3.0) < 0.15  # express and suppress items cancel for a judge that reads them


def test_paraphrases_move_answers_only_by_the_planted_wording_effect(index: SpecIndex) -> None:
    judge = sim.SimJudge(index)
    base = _compiled(index, "elicitation=value")[::5]
    para = _compiled(index, "elicitation=value", "elicitation.variant=para1")[::5]
    same = [
        judge.answer("circle", a.messages).mu == judge.answer("circle", b.messages).mu
        for a, b in zip(base, para, strict=True)
    ]
    assert all(same)  # wording_sd 0: rewording redraws nothing
    p = judge.profile("circle")
    judge._profiles["circle"] = replace(
        p, doc=p.doc.model_copy(update={"judge": p.doc.judge.model_copy(update={"wording_sd": 0.4})})
    )
    diff = [
        judge.answer("circle", b.messages).mu - judge.answer("circle", a.messages).mu
        for a, b in zip(base, para, strict=True)
    ]
    assert 0.3 < float(np.std(diff)) < 0.5 and len(diff) == len(base) >= 40  # sd of the planted effect: 0.4


def _provider_pair_deltas(index: SpecIndex, judge: sim.SimJudge, seeds: range, n_scenes: int) -> np.ndarray:
    """post − pre pair states (elicitation=value) answered by the provider, one dataset per seed."""
    from runner.compile.plan import compile_plan
    from runner.config import compose

    cfg = compose(
        [
            f"selection.max_scenes={n_scenes}",
            "selection.split=all",
            "model.name=sim/circle",
            "elicitation=value",
        ]
    )
    reqs = compile_plan(index, cfg).requests
    pairs = sorted({(r.scene_id, r.action_id) for r in reqs})
    row = {p: i for i, p in enumerate(pairs)}
    base = judge.profile("circle")
    out = []
    for seed in seeds:
        judge._profiles["circle"] = replace(base, doc=base.doc.model_copy(update={"seed": seed}))
        e = np.zeros((2, len(pairs), 10))
        for r in reqs:
            rating = float(judge.answer("circle", r.messages).probs @ sim.SCALE)
            cell = (
                int(r.condition == "post"),
                row[(r.scene_id, r.action_id)],
                judge.tables.values.index(r.asked_value),
            )
            e[cell] = (rating - 3) / 2
        out.append(e[1] - e[0])
    judge._profiles["circle"] = base
    return np.array(out)


def test_provider_and_vectorised_pair_simulation_agree_in_distribution(index: SpecIndex) -> None:
    judge = sim.SimJudge(index)
    provider = _provider_pair_deltas(index, judge, range(200, 208), 4)  # 8 datasets × 80 pairs
    p = judge.profile("circle")
    k = p.shift("security", 1, p.dose("fewshot", 4))
    pre, (post,), groups = sim.simulate_pair_states(
        p, [k], 4, 2000, np.random.default_rng(0), items_per_value=ITEMS_PER_VALUE
    )
    assert post.shape == (2000, 80, 10) and list(groups[:21]) == [0] * 20 + [1]
    twin = post - pre
    for stat in (lambda d: d.mean(axis=1), lambda d: d.std(axis=1)):
        a, b = stat(provider), stat(twin)  # (datasets, values)
        se = b.std(axis=0) * math.sqrt(1 / len(a) + 1 / len(b))
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < 4.5 * se)
    # every pair carries the value's shift with its own sign: the mean over pairs ≈ k (lens 1)
    m = twin.mean(axis=(0, 1))
    assert np.all(np.abs(m - k) < 0.1 * np.abs(k) + 0.01)


def test_pair_susceptibility_varies_shifts_within_a_scene() -> None:
    judge_index = load_index(SPEC, check_lock=False)
    p = sim.SimJudge(judge_index).profile("pair_hub")
    k = p.shift("achievement", 1, 0.8)
    rng = np.random.default_rng(1)
    pre, (post,), groups = sim.simulate_pair_states(p, [k], 41, 200, rng, items_per_value=ITEMS_PER_VALUE)
    hub = p.values.index("security")
    d = (post - pre)[..., hub].reshape(200, 41, 20)
    within = d.std(axis=2).mean()
    flat = replace(
        p,
        doc=p.doc.model_copy(
            update={"scenes": p.doc.scenes.model_copy(update={"pair_susceptibility_sd": 0.0})}
        ),
    )
    pre0, (post0,), _ = sim.simulate_pair_states(
        flat, [k], 41, 200, np.random.default_rng(1), items_per_value=ITEMS_PER_VALUE
    )
    within0 = (post0 - pre0)[..., hub].reshape(200, 41, 20).std(axis=2).mean()
    assert within > 1.1 * within0  # the planted pair-level factor adds spread between a scene's actions
