"""Stage 2, compile: spec index × config → a :class:`Plan` of judgment requests. Pure: no I/O.

Same input, byte-identical plan. Each request has a **request key**: the hash of everything that can
change its response (key-format version, model string, generation parameters, rendered messages,
sample index). The pre condition uses the baseline prompt only, so its requests — and keys — are
shared by every strategy and target of a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from runner.compile.strategies import Context, Steering, steer, user_message
from runner.config import api_base_pool, check_against_spec, to_container
from runner.core.errors import VatError
from runner.spec.load import DEFAULT_PROMPT, SpecIndex
from runner.spec.models import Prompt, Scene

KEY_VERSION = 1
"""Bump when the key recipe changes (golden keys are pinned in tests/compile/test_plan.py)."""

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class Request:
    """One judgment to obtain: a rendered prompt for one (scene, action, condition, sample)."""

    key: str
    condition: str  # "pre" | "post"
    model: str
    api_base: str | tuple[str, ...] | None
    """Where to send it: the provider's default, one URL, or replicas (runner.execute.replicas); not in the key."""
    messages: tuple[Message, ...]
    scene_id: str
    scene_version: int
    action_id: str
    value: str
    micro_value: str | None
    polarity: str
    sample: int = 0
    step: int | None = None
    """Checkpoint training step (post requests of the checkpoint strategy)."""
    asked_value: str | None = None
    """The value the question names (None: the question names none, the ``judgment`` prompt)."""
    asked_micro_value: str | None = None
    """The micro-value the question names (None when it names a whole value, or none)."""
    variant: str = "base"
    """The question wording's id in its prompt spec ("base", "para1", ..., "reversed")."""
    scale_reversed: bool = False
    """Whether the answer scale was shown reversed (1 = strongly agree); ratings stay as displayed."""


@dataclass(frozen=True)
class RunSpec:
    """The identity and provenance of a run: one (model, strategy, target, direction, selection)."""

    run_id: str
    model: str
    strategy: str
    target: str
    direction: str
    split: str
    scene_ids: tuple[str, ...]
    spec_versions: dict[str, str]
    gen_params: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A compiled run: its identity and its ordered requests (pre first, then post; scene-grouped)."""

    run: RunSpec
    requests: tuple[Request, ...]

    def keys(self) -> list[str]:
        """Distinct request keys in plan order."""
        return list(dict.fromkeys(r.key for r in self.requests))

    def elicitation(self) -> dict[str, Any]:
        """What the plan asks and what it costs against one question per action (``vat plan`` shows it).

        ``judgments_per_action`` is the cost multiplier: judgments per (scene, action, condition, sample)
        (1 for elicitation=action, 10 for value, the micro-values asked for micro_value).
        """
        el = self.run.config.get("elicitation") or {}
        items = {(r.condition, r.step, r.scene_id, r.action_id, r.sample) for r in self.requests}
        return {
            "elicitation": el.get("ask", "action"),
            "variant": el.get("variant", "base"),
            "judgments": len(self.requests),
            "judgments_per_action": round(len(self.requests) / max(len(items), 1), 2),
        }


def gen_params(model_cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The generation parameters that change a response (and so enter the request key)."""
    params: dict[str, Any] = {
        "temperature": float(model_cfg["temperature"]),
        "max_tokens": int(model_cfg["max_tokens"]),
    }
    if model_cfg["logprobs"]:
        params["logprobs"] = True
        params["top_logprobs"] = int(model_cfg["top_logprobs"])
    if model_cfg.get("seed") is not None:
        params["seed"] = int(model_cfg["seed"])
    params.update(dict(model_cfg.get("extra") or {}))
    return params


def request_key(
    model: str, params: dict[str, Any], messages: tuple[Message, ...] | list[Message], sample: int
) -> str:
    """SHA-256 (hex, 32 chars) of the canonical JSON of everything that can change the response."""
    blob = _canonical(
        {"v": KEY_VERSION, "model": model, "params": params, "messages": list(messages), "sample": sample}
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def _canonical(obj: Any) -> str:
    """The canonical JSON of the key recipe (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class _KeyHasher:
    """:func:`request_key` for many requests that share a model, parameters and leading messages.

    The canonical JSON's keys sort as messages, model, params, sample, v, so the shared system prompt
    and demonstrations open every blob: their hash state is computed once and copied, and only the
    last message and the tail are hashed per request (a 100,000-request plan compiles ~5× faster).
    The result is byte-for-byte :func:`request_key` (tests/compile/test_plan.py checks both agree).
    """

    def __init__(
        self, model: str, params: dict[str, Any], head: tuple[Message, ...], opening: str | None = None
    ) -> None:
        # ``opening``: the canonical text of the head, when the caller has it already (_ItemHasher).
        opening = opening or '{"messages":[' + "".join(_canonical(m) + "," for m in head)
        self._state = hashlib.sha256(opening.encode("utf-8"))
        self._tail = f'],"model":{_canonical(model)},"params":{_canonical(params)},"sample":'
        self._end = f',"v":{KEY_VERSION}}}'

    def keys(self, last: Message, samples: int) -> list[str]:
        """Keys of samples 0..samples-1 of the messages ``head + (last,)``."""
        state = self._state.copy()
        state.update((_canonical(last) + self._tail).encode("utf-8"))
        out = []
        for sample in range(samples):
            h = state.copy()
            h.update(f"{sample}{self._end}".encode())
            out.append(h.hexdigest()[:32])
        return out


def select_scenes(index: SpecIndex, selection: DictConfig | dict[str, Any]) -> list[Scene]:
    """Scenes of the selected split and filters; a cap takes a stable hash order so it spreads widely."""
    scenes = index.scenes_in(selection["split"])
    for key, attr in (("countries", "country"), ("topics", "topic")):
        wanted = set(selection.get(key) or [])
        if wanted:
            scenes = [s for s in scenes if getattr(s, attr) in wanted]
    if selection.get("scenes"):
        wanted_ids = set(selection["scenes"])
        unknown = wanted_ids - set(index.scenes)
        if unknown:
            raise VatError(f"selection.scenes names unknown scene(s): {', '.join(sorted(unknown))}", 2)
        scenes = [s for s in scenes if s.id in wanted_ids]
    cap = selection.get("max_scenes")
    if cap is not None:
        scenes = sorted(scenes, key=lambda s: hashlib.sha256(s.id.encode()).hexdigest())[: int(cap)]
    if not scenes:
        raise VatError("the selection matches no scene; widen selection.split / countries / topics", 2)
    return sorted(scenes, key=lambda s: s.id)


ASKS = ("action", "value", "micro_value")
"""elicitation.ask: what each judgment is about (docs/elicitation.md)."""
MICRO_VALUE_SETS = ("scene", "all")
"""elicitation.micro_values: the micro-values asked about each action of a scene."""


@dataclass(frozen=True, slots=True)
class Asked:
    """The value (or micro-value) a judgment asks about, as the question names it."""

    value: str | None
    micro_value: str | None
    label: str
    gloss: str


NO_VALUE = Asked(None, None, "", "")
"""elicitation=action: the question names no value."""


@dataclass(frozen=True)
class Wording:
    """A prompt in one variant: the text shown, and whether its answer scale runs the other way."""

    prompt: Prompt
    variant: str
    scale_reversed: bool


def wording(prompt: Prompt, variant: str) -> Wording:
    """The prompt as variant ``variant`` words it (``base``: its own text); an unknown variant fails."""
    if variant == "base":
        return Wording(prompt, "base", False)
    if variant not in prompt.variants:
        options = ", ".join(["base", *prompt.variants])
        raise VatError(
            f"elicitation.variant={variant!r} is not a variant of spec/prompts/{prompt.id}.yaml; "
            f"choose one of: {options}",
            2,
        )
    v = prompt.variants[variant]
    shown = prompt.model_copy(update={"system": v.system or prompt.system, "user": v.user or prompt.user})
    return Wording(shown, variant, v.scale_reversed)


def asked_values(index: SpecIndex, prompt: Prompt, ask: str, micro_values: str, scene: Scene) -> list[Asked]:
    """What each action of ``scene`` is asked about: nothing (action), each value, or each micro-value."""
    if ask == "action":
        return [NO_VALUE]
    values = index.value_system.values
    if ask == "value":
        return [Asked(v.id, None, v.name, v.definition) for v in values]
    named = {a.micro_value for a in scene.actions if a.micro_value}
    if micro_values == "scene" and not named:
        raise VatError(
            f"scene {scene.id} names no micro-value on its actions, so elicitation.micro_values=scene asks "
            "nothing there; use elicitation.micro_values=all or elicitation=value",
            2,
        )
    gloss = prompt.micro_value_gloss or "{value_definition}"
    return [
        Asked(
            v.id,
            m.id,
            m.name,
            gloss.replace("{value_name}", v.name).replace("{value_definition}", v.definition),
        )
        for v in values
        for m in v.micro_values
        if micro_values == "all" or m.id in named
    ]


def ask_about(prompt: Prompt, asked: Asked) -> Prompt:
    """The prompt with its value placeholders filled (unchanged for a question that names no value)."""
    if asked.value is None:
        return prompt
    user = prompt.user.replace("{value_label}", asked.label).replace("{value_gloss}", asked.gloss)
    return prompt.model_copy(update={"user": user})


def check_elicitation(cfg: DictConfig, prompt: Prompt) -> None:
    """Fail clearly when ``elicitation`` and ``prompt`` do not fit together."""
    el = cfg.elicitation
    for key, got, options in (("ask", el.ask, ASKS), ("micro_values", el.micro_values, MICRO_VALUE_SETS)):
        if got not in options:
            raise VatError(f"elicitation.{key}={got!r} is not known; choose one of: {', '.join(options)}", 2)
    if (el.ask != "action") != prompt.names_value:
        has = "names a value in its question" if prompt.names_value else "names no value"
        need = (
            "one that names a value, such as judgment_micro"
            if el.ask != "action"
            else "one that names none, such as judgment"
        )
        raise VatError(
            f"prompt={prompt.id} {has}, but elicitation.ask={el.ask} needs {need}; "
            f"set prompt= accordingly, or choose elicitation={el.ask}, which sets both",
            2,
        )


def _displayed(steering: Steering, reversed_scale: bool) -> Steering:
    """Demonstrations as shown on the answer scale in use: a reversed scale shows digit d as 6 − d."""
    if not reversed_scale:
        return steering
    demos = tuple(
        {**m, "content": "".join(str(6 - int(c)) if c in "12345" else c for c in m["content"])}
        if m["role"] == "assistant"
        else m
        for m in steering.demonstrations
    )
    return dataclasses.replace(steering, demonstrations=demos)  # keeps every other field (e.g. order)


def _messages(system: str, steering: Steering, user: str) -> tuple[Message, ...]:
    return (
        {"role": "system", "content": system},
        *steering.demonstrations_for(user),
        {"role": "user", "content": user},
    )


class _ItemHasher:
    """:class:`_KeyHasher` for steering whose demonstrations are ordered per item (no shared head)."""

    def __init__(self, model: str, params: dict[str, Any], system: str, steering: Steering) -> None:
        if steering.order is None:
            raise ValueError("_ItemHasher is for steering with a per-item order; use _KeyHasher")
        self._model, self._params, self._order = model, params, steering.order
        # Each message's canonical JSON once; an item's opening is then a join in its own order.
        self._opening = '{"messages":[' + _canonical({"role": "system", "content": system}) + ","
        demos = [_canonical(m) + "," for m in steering.demonstrations]
        self._pairs = ["".join(demos[i : i + 2]) for i in range(0, len(demos), 2)]

    def keys(self, last: Message, samples: int) -> list[str]:
        """Keys of samples 0..samples-1 of this item's messages (its own demonstrations, then ``last``)."""
        opening = self._opening + "".join(self._pairs[i] for i in self._order(last["content"]))
        return _KeyHasher(self._model, self._params, (), opening).keys(last, samples)


def _hasher(model: str, params: dict[str, Any], system: str, steering: Steering) -> _KeyHasher | _ItemHasher:
    """The key hasher of one condition: a shared head unless the demonstrations vary per item."""
    if steering.order is not None:
        return _ItemHasher(model, params, system, steering)
    return _KeyHasher(model, params, _messages(system, steering, "")[:-1])


def _condition_requests(
    condition: str,
    index: SpecIndex,
    cfg: DictConfig,
    scenes: list[Scene],
    steering: Steering,
    model: str,
    api_base: str | tuple[str, ...] | None,
    step: int | None,
) -> Iterator[Request]:
    """Requests of one condition and model, scene by scene (consecutive requests share the scene prefix).

    Each action is asked about each value of :func:`asked_values` (one question naming no value for
    elicitation=action), so pre and post hold the same items.
    """
    el = cfg.elicitation
    shown = wording(index.prompts[cfg.prompt], str(el.variant))
    prompt = shown.prompt
    system = prompt.system.strip() + (f"\n\n{steering.system_suffix}" if steering.system_suffix else "")
    params = gen_params(cfg.model)
    samples = int(cfg.model.samples)
    hasher = _hasher(model, params, system, steering)
    for scene in scenes:
        questions = [
            (a, ask_about(prompt, a)) for a in asked_values(index, prompt, el.ask, el.micro_values, scene)
        ]
        for action in scene.actions:
            for asked, question in questions:
                messages = _messages(system, steering, user_message(question, scene.text, action.text))
                for sample, key in enumerate(hasher.keys(messages[-1], samples)):
                    yield Request(
                        key=key,
                        condition=condition,
                        model=model,
                        api_base=api_base,
                        messages=messages,
                        scene_id=scene.id,
                        scene_version=scene.version,
                        action_id=action.id,
                        value=action.value,
                        micro_value=action.micro_value,
                        polarity=action.polarity.value,
                        sample=sample,
                        step=step,
                        asked_value=asked.value,
                        asked_micro_value=asked.micro_value,
                        variant=shown.variant,
                        scale_reversed=shown.scale_reversed,
                    )


def run_identity(index: SpecIndex, cfg: DictConfig, scenes: list[Scene], kind: str) -> RunSpec:
    """The run's id: a hash of the model, strategy, target, direction, scenes, spec versions and parameters."""
    versions = {
        "prompt": index.version_tag("prompts", cfg.prompt),
        "strategy": index.version_tag("strategies", cfg.strategy),
        "values": index.version_tag("values", index.value_system.id),
    }
    params = gen_params(cfg.model)
    checkpoints = (
        [to_container(c) for c in cfg.checkpoints] if kind == "checkpoint" else []
    )  # plain: a list of replicas too
    el = cfg.elicitation
    # Only a non-default elicitation enters the identity, so the runs of today's question keep their ids.
    elicitation = (
        {}
        if el.ask == "action" and el.variant == "base"
        else {"elicitation": {"ask": el.ask, "micro_values": el.micro_values, "variant": el.variant}}
    )
    identity = {
        "model": cfg.model.name,
        "strategy": cfg.strategy,
        "target": cfg.target,
        "direction": str(cfg.direction.value),
        "scenes": [f"{s.id}@{s.version}" for s in scenes],
        "versions": versions,
        "params": params,
        "samples": int(cfg.model.samples),
        "checkpoints": checkpoints,
        **elicitation,
    }
    run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return RunSpec(
        run_id=run_id,
        model=cfg.model.name,
        strategy=cfg.strategy,
        target=cfg.target,
        direction=str(cfg.direction.value),
        split=str(cfg.selection.split),
        scene_ids=tuple(s.id for s in scenes),
        spec_versions=versions,
        gen_params=params,
        config=to_container(cfg),
    )


def compile_plan(index: SpecIndex, cfg: DictConfig) -> Plan:
    """Compile the pre and post requests of one run. Deterministic; raises VatError on a bad config."""
    check_against_spec(cfg, index.value_ids, list(index.strategies))
    strategy = index.strategies[cfg.strategy]
    if cfg.prompt not in index.prompts:
        raise VatError(f"prompt={cfg.prompt!r} is not defined in spec/prompts/", 2)
    check_elicitation(cfg, index.prompts[cfg.prompt])
    shown = wording(index.prompts[cfg.prompt], str(cfg.elicitation.variant))
    checkpoints = tuple(
        (c.step, c.name, api_base_pool(c.api_base, f"checkpoints[{i}].api_base"))
        for i, c in enumerate(cfg.checkpoints)
    )
    direction = 1 if cfg.direction.value == "reinforce" else -1
    ctx = Context(
        index=index,
        # Demonstrations are the intervention, not the measurement: with a value-naming question they
        # stay the action question (ratings of the target's actions), identical across elicitations.
        prompt=index.prompts[DEFAULT_PROMPT] if shown.prompt.names_value else shown.prompt,
        target=cfg.target,
        direction=direction,
        checkpoints=checkpoints,
        train_scenes=tuple(cfg.selection.get("train_scenes") or ()),
    )
    steering = _displayed(steer(strategy, ctx), shown.scale_reversed)
    scenes = select_scenes(index, cfg.selection)
    run = run_identity(index, cfg, scenes, strategy.kind.value)
    model, api_base = cfg.model.name, api_base_pool(cfg.model.api_base)
    requests = list(_condition_requests("pre", index, cfg, scenes, Steering(), model, api_base, None))
    posts = steering.post_models or ((None, model, api_base),)
    for step, post_model, post_base in posts:
        post_steering = dataclasses.replace(steering, post_models=())
        requests += _condition_requests(
            "post", index, cfg, scenes, post_steering, post_model, post_base or api_base, step
        )
    return Plan(run=run, requests=tuple(requests))
