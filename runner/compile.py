"""Stage 2, compile: spec index × config → a :class:`Plan` of judgment requests. Pure: no I/O.

Same input, byte-identical plan. Each request has a **request key**: the hash of everything that can
change its response (key-format version, model string, generation parameters, rendered messages,
sample index). The pre condition uses the baseline prompt only, so its requests — and keys — are
shared by every strategy and target of a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from runner.config import check_against_spec, to_container
from runner.errors import VatError
from runner.load import SpecIndex
from runner.specs import Scene
from runner.strategies import Context, Steering, steer, user_message

KEY_VERSION = 1
"""Bump when the key recipe changes (golden keys are pinned in tests/test_compile.py)."""

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class Request:
    """One judgment to obtain: a rendered prompt for one (scene, action, condition, sample)."""

    key: str
    condition: str  # "pre" | "post"
    model: str
    api_base: str | None
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
    The result is byte-for-byte :func:`request_key` (tests/test_compile.py checks both agree).
    """

    def __init__(self, model: str, params: dict[str, Any], head: tuple[Message, ...]) -> None:
        opening = '{"messages":[' + "".join(_canonical(m) + "," for m in head)
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


def _messages(system: str, steering: Steering, user: str) -> tuple[Message, ...]:
    return (
        {"role": "system", "content": system},
        *steering.demonstrations,
        {"role": "user", "content": user},
    )


def _condition_requests(
    condition: str,
    index: SpecIndex,
    cfg: DictConfig,
    scenes: list[Scene],
    steering: Steering,
    model: str,
    api_base: str | None,
    step: int | None,
) -> Iterator[Request]:
    """Requests of one condition and model, scene by scene (consecutive requests share the scene prefix)."""
    prompt = index.prompts[cfg.prompt]
    system = prompt.system.strip() + (f"\n\n{steering.system_suffix}" if steering.system_suffix else "")
    params = gen_params(cfg.model)
    samples = int(cfg.model.samples)
    hasher = _KeyHasher(model, params, _messages(system, steering, "")[:-1])
    for scene in scenes:
        for action in scene.actions:
            messages = _messages(system, steering, user_message(prompt, scene.text, action.text))
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
                )


def run_identity(index: SpecIndex, cfg: DictConfig, scenes: list[Scene], kind: str) -> RunSpec:
    """The run's id: a hash of the model, strategy, target, direction, scenes, spec versions and parameters."""
    versions = {
        "prompt": index.version_tag("prompts", cfg.prompt),
        "strategy": index.version_tag("strategies", cfg.strategy),
        "values": index.version_tag("values", index.value_system.id),
    }
    params = gen_params(cfg.model)
    checkpoints = [dict(c) for c in cfg.checkpoints] if kind == "checkpoint" else []
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
    checkpoints = tuple((c.step, c.name, c.api_base) for c in cfg.checkpoints)
    direction = 1 if cfg.direction.value == "reinforce" else -1
    ctx = Context(
        index=index,
        prompt=index.prompts[cfg.prompt],
        target=cfg.target,
        direction=direction,
        checkpoints=checkpoints,
    )
    steering = steer(strategy, ctx)
    scenes = select_scenes(index, cfg.selection)
    run = run_identity(index, cfg, scenes, strategy.kind.value)
    model, api_base = cfg.model.name, cfg.model.api_base
    requests = list(_condition_requests("pre", index, cfg, scenes, Steering(), model, api_base, None))
    posts = steering.post_models or ((None, model, api_base),)
    for step, post_model, post_base in posts:
        post_steering = Steering(steering.system_suffix, steering.demonstrations)
        requests += _condition_requests(
            "post", index, cfg, scenes, post_steering, post_model, post_base or api_base, step
        )
    return Plan(run=run, requests=tuple(requests))
