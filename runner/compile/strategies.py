"""Registered strategy kinds: the behaviour behind ``spec/strategies/*.yaml``.

A strategy file holds data (kind, params, templates); the code that turns it into messages lives here,
one small registered function per kind. Adding a kind is ``@register("name")`` plus tests — specs
never carry import paths.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from runner.core.errors import VatError
from runner.spec.load import SpecIndex
from runner.spec.models import Prompt, Scene, Strategy

Message = dict[str, str]


@dataclass(frozen=True)
class Steering:
    """What a strategy adds to the baseline prompt for the post condition."""

    system_suffix: str = ""
    demonstrations: tuple[Message, ...] = ()
    post_models: tuple[tuple[int | None, str, str | tuple[str, ...] | None], ...] = ()
    """(training step, model string, api_base) per checkpoint; empty = the run's own model."""
    order: Callable[[str], tuple[int, ...]] | None = None
    """When set, which demonstration pairs (user, assistant) one item sees, in order, given its user
    message; ``demonstrations`` then holds the candidate pairs. None: all of them, as listed."""

    def demonstrations_for(self, user: str) -> tuple[Message, ...]:
        """The demonstrations shown before the item whose user message is ``user``."""
        if self.order is None:
            return self.demonstrations
        pairs = [self.demonstrations[i : i + 2] for i in range(0, len(self.demonstrations), 2)]
        return tuple(m for i in self.order(user) for m in pairs[i])


@dataclass(frozen=True)
class Context:
    """Everything a strategy may use: the spec index, the prompt, the target and direction, checkpoints."""

    index: SpecIndex
    prompt: Prompt
    target: str
    direction: int  # +1 reinforce, −1 suppress
    checkpoints: tuple[tuple[int | None, str, str | tuple[str, ...] | None], ...] = ()
    train_scenes: tuple[str, ...] = ()
    """The train scenes demonstrations may come from (a release pins them); empty: every train scene."""


StrategyFn = Callable[[Strategy, Context], Steering]
_REGISTRY: dict[str, StrategyFn] = {}


def register(kind: str) -> Callable[[StrategyFn], StrategyFn]:
    """Register the function that implements a strategy kind; a second function for one kind is refused."""

    def wrap(fn: StrategyFn) -> StrategyFn:
        taken = _REGISTRY.get(kind)
        if taken is not None and taken is not fn:
            raise ValueError(
                f"strategy kind {kind!r} is already registered by {taken.__module__}.{taken.__qualname__}; "
                f"pick another name for {fn.__module__}.{fn.__qualname__}"
            )
        _REGISTRY[kind] = fn
        return fn

    return wrap


def steer(strategy: Strategy, ctx: Context) -> Steering:
    """Apply a strategy: look up its kind's function and call it."""
    return _REGISTRY[strategy.kind.value](strategy, ctx)


def user_message(prompt: Prompt, scene_text: str, action_text: str) -> str:
    """Fill the judgment prompt's user template with one scene and one action."""
    return prompt.user.replace("{scene}", scene_text.strip()).replace("{action}", action_text.strip())


@register("baseline")
def _baseline(strategy: Strategy, ctx: Context) -> Steering:
    return Steering()


ORDERS = ("alternate", "shuffle")
"""Few-shot ``params.order``: ``alternate`` (express, suppress, express, ...: one order for the whole
run, so for even k every request ends on the same label), ``shuffle`` (balanced labels in a seeded
order drawn per request, so neither the last nor the majority label carries a signal)."""

Pool = list[tuple[str, str, str]]
"""(seeded rank, scene id, rendered user message) of one polarity's candidate demonstrations."""


def train_scenes(ctx: Context, strategy: Strategy) -> list[Scene]:
    """The train scenes demonstrations may come from: the pinned ones (a release), else every train scene."""
    if not ctx.train_scenes:
        return ctx.index.scenes_in("train")
    scenes = []
    for sid in ctx.train_scenes:
        scene = ctx.index.scenes.get(sid)
        if scene is None or scene.split.value != "train":
            raise VatError(
                f"strategy {strategy.id}: train scene {sid!r} is not a train scene of the spec; "
                "pin train scenes from `vat leaderboard release-scenes` (selection.train_scenes)",
                2,
            )
        scenes.append(scene)
    return sorted(scenes, key=lambda s: s.id)


def _pools(strategy: Strategy, ctx: Context, seed: object) -> dict[str, Pool]:
    """Every train action of the target value, by polarity, in a seeded hash order (stable everywhere)."""
    pools: dict[str, Pool] = {"express": [], "suppress": []}
    for scene in train_scenes(ctx, strategy):
        for action in scene.actions:
            if action.value == ctx.target:
                rank = hashlib.sha256(f"{seed}:{scene.id}:{action.id}".encode()).hexdigest()
                pools[action.polarity.value].append(
                    (rank, scene.id, user_message(ctx.prompt, scene.text, action.text))
                )
    for pool in pools.values():
        pool.sort()
    return pools


def _choose(
    strategy: Strategy, ctx: Context, pools: dict[str, Pool], need: dict[str, int]
) -> dict[str, list[str]]:
    """The first ``need[polarity]`` of each pool, each from a scene no other demonstration uses."""
    chosen: dict[str, list[str]] = {"express": [], "suppress": []}
    used_scenes: set[str] = set()
    for polarity in ("express", "suppress"):
        for _, scene_id, text in pools[polarity]:
            if len(chosen[polarity]) == need[polarity]:
                break
            if (
                scene_id not in used_scenes
            ):  # distinct scenes: the demonstrations teach the value, not a scene
                used_scenes.add(scene_id)
                chosen[polarity].append(text)
        if len(chosen[polarity]) < need[polarity]:
            raise VatError(
                f"strategy {strategy.id}: only {len(chosen[polarity])} train scenes have a {polarity} action for "
                f"{ctx.target!r}, {need[polarity]} needed; add train scenes or lower params.k"
            )
    return chosen


def _pair(text: str, rating: str) -> list[Message]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": rating}]


@register("fewshot")
def _fewshot(strategy: Strategy, ctx: Context) -> Steering:
    """K demonstrations of the target value from train scenes, rated in the intended direction.

    Each from a different scene, chosen by a seeded hash so the choice is stable across runs and
    machines. ``order: alternate`` (the default, version-1 strategies): half express and half suppress,
    express first, identical for every request of a run (a local server can reuse them as a cached
    prefix). ``order: shuffle``: per request, equal express and suppress counts (for odd k the extra
    one's polarity is a seeded coin) in a seeded random order, so the last and the majority label are
    independent of the item; no shared prefix to cache.
    """
    k = int(strategy.params.get("k", 4))
    seed = strategy.params.get("seed", 0)
    order = str(strategy.params.get("order", "alternate"))
    if order not in ORDERS:
        raise VatError(
            f"strategy {strategy.id}: params.order={order!r} is unknown; use one of {', '.join(ORDERS)} "
            f"in spec/strategies/{strategy.id}.yaml",
            2,
        )
    high, low = str(strategy.params.get("high", "5")), str(strategy.params.get("low", "1"))
    good = {"express": high, "suppress": low} if ctx.direction > 0 else {"express": low, "suppress": high}
    pools = _pools(strategy, ctx, seed)
    if order == "shuffle":
        chosen = _choose(strategy, ctx, pools, {"express": (k + 1) // 2, "suppress": (k + 1) // 2})
        polarities = [p for p in ("express", "suppress") for _ in chosen[p]]
        demos = tuple(m for p in ("express", "suppress") for text in chosen[p] for m in _pair(text, good[p]))
        seed_text = f"{seed}:{strategy.id}:{ctx.target}:{ctx.direction}"
        return Steering(demonstrations=demos, order=functools.partial(_item_order, polarities, k, seed_text))
    chosen = _choose(strategy, ctx, pools, {"express": (k + 1) // 2, "suppress": k // 2})
    return Steering(demonstrations=_alternating(chosen, good))


def _alternating(chosen: dict[str, list[str]], good: dict[str, str]) -> tuple[Message, ...]:
    """express, suppress, express, ...: the version-1 order, one for every request of a run."""
    demos: list[Message] = []
    for i in range(max(len(texts) for texts in chosen.values())):
        for polarity in ("express", "suppress"):
            if i < len(chosen[polarity]):
                demos += _pair(chosen[polarity][i], good[polarity])
    return tuple(demos)


def _item_order(polarities: list[str], k: int, seed: str, user: str) -> tuple[int, ...]:
    """Which k of the candidate pairs one item sees, in order: balanced polarities, order drawn from a hash.

    ``polarities[i]`` is the polarity of candidate pair i ((k+1)//2 of each). The item is its user
    message, so every question gets its own draw, the same on every machine.
    """
    item = hashlib.sha256(f"{seed}:{user}".encode()).hexdigest()

    def draw(tag: str) -> str:
        return hashlib.sha256(f"{item}:{tag}".encode()).hexdigest()

    # Odd k: one polarity has one demonstration more; a seeded coin per item says which.
    extra = "express" if int(draw("majority")[:8], 16) % 2 == 0 else "suppress"
    counts = {p: k // 2 + (1 if k % 2 and p == extra else 0) for p in ("express", "suppress")}
    picked = [
        i
        for p in ("express", "suppress")
        for i in [j for j, q in enumerate(polarities) if q == p][: counts[p]]
    ]
    # A hash-ranked permutation: the same everywhere (random.shuffle's algorithm is not promised to stay).
    return tuple(sorted(picked, key=lambda i: draw(f"order:{i}")))


@register("system_prompt")
def _system_prompt(strategy: Strategy, ctx: Context) -> Steering:
    """Append the direction's instruction, filled with the target value's name and definition."""
    key = "reinforce" if ctx.direction > 0 else "suppress"
    if key not in strategy.templates:
        raise VatError(
            f"strategy {strategy.id}: templates.{key} is missing; add it to spec/strategies/{strategy.id}.yaml"
        )
    value = ctx.index.value(ctx.target)
    text = (
        strategy.templates[key]
        .replace("{value_name}", value.name)
        .replace("{value_definition}", value.definition)
    )
    return Steering(system_suffix=text.strip())


@register("checkpoint")
def _checkpoint(strategy: Strategy, ctx: Context) -> Steering:
    """The post condition uses other model ids with the baseline prompt."""
    if not ctx.checkpoints:
        raise VatError(
            "strategy=checkpoint needs at least one checkpoint; add e.g. "
            "'checkpoints=[{step: 500, name: hosted_vllm/my-dpo, api_base: http://host:8000/v1}]'",
            exit_code=2,
        )
    return Steering(post_models=ctx.checkpoints)


def kinds() -> list[str]:
    """The registered strategy kinds."""
    return sorted(_REGISTRY)
