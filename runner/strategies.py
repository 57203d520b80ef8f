"""Registered strategy kinds: the behaviour behind ``spec/strategies/*.yaml``.

A strategy file holds data (kind, params, templates); the code that turns it into messages lives here,
one small registered function per kind. Adding a kind is ``@register("name")`` plus tests — specs
never carry import paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from runner.errors import VatError
from runner.load import SpecIndex
from runner.specs import Prompt, Strategy

Message = dict[str, str]


@dataclass(frozen=True)
class Steering:
    """What a strategy adds to the baseline prompt for the post condition."""

    system_suffix: str = ""
    demonstrations: tuple[Message, ...] = ()
    post_models: tuple[tuple[int | None, str, str | None], ...] = ()
    """(training step, model string, api_base) per checkpoint; empty = the run's own model."""


@dataclass(frozen=True)
class Context:
    """Everything a strategy may use: the spec index, the prompt, the target and direction, checkpoints."""

    index: SpecIndex
    prompt: Prompt
    target: str
    direction: int  # +1 reinforce, −1 suppress
    checkpoints: tuple[tuple[int | None, str, str | None], ...] = ()


StrategyFn = Callable[[Strategy, Context], Steering]
_REGISTRY: dict[str, StrategyFn] = {}


def register(kind: str) -> Callable[[StrategyFn], StrategyFn]:
    """Register the function that implements a strategy kind."""

    def wrap(fn: StrategyFn) -> StrategyFn:
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


@register("fewshot")
def _fewshot(strategy: Strategy, ctx: Context) -> Steering:
    """K demonstrations of the target value from train scenes, rated in the intended direction.

    Half express and half suppress actions (express first), each from a different scene, chosen by a
    seeded hash so the choice is stable across runs and machines. The demonstrations are identical for
    every request of a run, which lets a local server reuse them as a cached prefix.
    """
    k = int(strategy.params.get("k", 4))
    seed = strategy.params.get("seed", 0)
    high, low = str(strategy.params.get("high", "5")), str(strategy.params.get("low", "1"))
    pools: dict[str, list[tuple[str, str, str]]] = {"express": [], "suppress": []}
    for scene in ctx.index.scenes_in("train"):
        for action in scene.actions:
            if action.value == ctx.target:
                rank = hashlib.sha256(f"{seed}:{scene.id}:{action.id}".encode()).hexdigest()
                pools[action.polarity.value].append(
                    (rank, scene.id, user_message(ctx.prompt, scene.text, action.text))
                )
    for pool in pools.values():
        pool.sort()
    need = {"express": (k + 1) // 2, "suppress": k // 2}
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
    good = {"express": high, "suppress": low} if ctx.direction > 0 else {"express": low, "suppress": high}
    demos: list[Message] = []
    for i in range(max(need.values())):
        for polarity in ("express", "suppress"):
            if i < len(chosen[polarity]):
                demos += [
                    {"role": "user", "content": chosen[polarity][i]},
                    {"role": "assistant", "content": good[polarity]},
                ]
    return Steering(demonstrations=tuple(demos))


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
