"""Few-shot demonstration order: ``order: alternate`` (version-1 strategies, kept for v0.1's keys) and
``order: shuffle`` (balanced labels in a seeded order per request, so the last and the majority label
carry no signal about the item)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from support.specs import SPEC

from runner.core.errors import VatError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index():
    from runner.spec.load import load_index

    return load_index(SPEC, check_lock=False)


def _plan(index, strategy: str, target: str = "security", direction: str = "reinforce"):
    from runner.compile.plan import compile_plan
    from runner.config import compose

    cfg = compose([f"strategy={strategy}", f"target={target}", f"direction={direction}", "model.name=mock/a"])
    return compile_plan(index, cfg)


def _ratings(request) -> list[str]:
    """The demonstrated ratings of a request, in order."""
    return [m["content"] for m in request.messages[1:-1] if m["role"] == "assistant"]


def _posts(plan) -> list:
    return [r for r in plan.requests if r.condition == "post"]


def test_alternate_order_ends_every_request_on_the_same_label(index):
    """The bias the shuffle removes: fewshot_4@1 alternates express/suppress, so every request ends on '1'."""
    posts = _posts(_plan(index, "fewshot_4"))
    assert {tuple(_ratings(r)) for r in posts} == {("5", "1", "5", "1")}


@pytest.mark.parametrize("k", [2, 4, 8])
def test_shuffled_demonstrations_are_balanced_and_end_on_either_label(index, k):
    plan = _plan(index, f"fewshot_{k}_balanced")
    posts = _posts(plan)
    assert len(posts) == sum(len(s.actions) for s in index.scenes_in("test"))
    for r in posts:
        assert Counter(_ratings(r)) == {"5": k // 2, "1": k // 2}
    # The same k demonstrations in every request, only their order varies.
    assert len({frozenset(m["content"] for m in r.messages[1:-1]) for r in posts}) == 1
    assert len({tuple(m["content"] for m in r.messages[1:-1]) for r in posts}) > 1
    # Last label: under a fair coin per item the count of '5' is Binomial(n, 1/2); 4 sd either side.
    n = len(posts)
    last_high = sum(_ratings(r)[-1] == "5" for r in posts)
    assert abs(last_high - n / 2) < 4 * (n / 4) ** 0.5, (last_high, n)
    # ... and independent of the item: express and suppress items end on '5' equally often.
    for polarity in ("express", "suppress"):
        items = [r for r in posts if r.polarity == polarity]
        share = sum(_ratings(r)[-1] == "5" for r in items) / len(items)
        assert abs(share - 0.5) < 4 * (0.25 / len(items)) ** 0.5, (polarity, share)


def test_shuffle_is_deterministic_and_keeps_the_shared_pre_condition(index):
    a, b = _plan(index, "fewshot_4_balanced"), _plan(index, "fewshot_4_balanced")
    assert a.keys() == b.keys()
    alternate = _plan(index, "fewshot_4")
    pre = {r.key for r in a.requests if r.condition == "pre"}
    assert pre == {r.key for r in alternate.requests if r.condition == "pre"}
    # A post key is shared exactly where the drawn order happens to be the alternate one (same messages).
    demos = _posts(alternate)[0].messages[1:-1]
    same_order = {r.key for r in _posts(a) if r.messages[1:-1] == demos}
    assert {r.key for r in _posts(a)} & {r.key for r in _posts(alternate)} == same_order
    assert len(same_order) < len(_posts(a)) / 6  # one order in 4! = 24 on average


def test_last_label_over_many_seeds_is_a_fair_coin(index):
    """Simulation: over 400 seeds, one item's last label is '5' about half the time, for odd k too."""
    from runner.compile.strategies import Context, steer, user_message

    base = index.strategies["fewshot_2_balanced"]
    ctx = Context(index=index, prompt=index.prompts["judgment"], target="power", direction=-1)
    scene = index.scenes_in("test")[0]
    item = user_message(ctx.prompt, scene.text, scene.actions[0].text)
    for k in (3, 4):
        last, majority = 0, 0
        for seed in range(400):
            strategy = base.model_copy(update={"params": {**base.params, "k": k, "seed": seed}})
            demos = steer(strategy, ctx).demonstrations_for(item)
            ratings = [m["content"] for m in demos if m["role"] == "assistant"]
            counts = Counter(ratings)
            assert len(ratings) == k and abs(counts["5"] - counts["1"]) == k % 2
            last += ratings[-1] == "5"
            majority += counts["5"] > counts["1"]
        assert abs(last - 200) < 4 * 10, (k, last)  # sd of Binomial(400, 1/2) is 10
        if k % 2:
            assert abs(majority - 200) < 4 * 10, (k, majority)


def test_unknown_order_is_a_clear_error(index):
    from runner.compile.strategies import Context, steer

    base = index.strategies["fewshot_2_balanced"]
    strategy = base.model_copy(update={"params": {**base.params, "order": "random"}})
    ctx = Context(index=index, prompt=index.prompts["judgment"], target="power", direction=1)
    with pytest.raises(VatError, match="params.order='random' is unknown; use one of alternate, shuffle"):
        steer(strategy, ctx)


def test_per_item_keys_are_the_key_recipe_of_each_requests_messages(index):
    """The per-item hasher's shortcut gives exactly request_key of the messages each request carries."""
    from runner.compile.plan import gen_params, request_key
    from runner.config import compose

    plan = _plan(index, "fewshot_2_balanced")
    params = gen_params(compose(["model.name=mock/a"]).model)
    for r in _posts(plan)[::37]:
        assert r.key == request_key(r.model, params, r.messages, r.sample)
