"""`vat generate scenes|actions`: the paper's two-stage generation pipeline, then an LLM quality judge.

Stage I writes one scene per requested (country, topic) cell; stage II writes one first-person action
per (scene, value or micro-value, polarity); the judge scores every scene and action 1–5 on realism,
neutrality, correctness, plausibility and harmlessness. Any LiteLLM model works (``model.name``), and
the prompts are versioned data (``generation/prompts/*.yaml``). Output is spec-format YAML marked
``generated`` (model, prompt versions, scores, date, what failed), written under ``generate.out`` for
human review in a pull request — never into spec/.

Model output is untrusted: an answer that is not a JSON object of the asked shape, or whose text fails
the spec's rules (first person, length, names its own value), is asked again up to
``generate.attempts`` times, then recorded with its reason and skipped. Nothing a model says can crash
the run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from runner.config import api_base_pool
from runner.core import display
from runner.core.errors import VatError
from runner.dataset.draft import (
    Names,
    auto_split,
    check_out_dir,
    read_scenes,
    resolve_cells,
    review_problems,
    scene_ids,
    scene_path,
    validate_doc,
    write_scene,
)
from runner.spec.load import SpecIndex
from runner.spec.models import COUNTRIES, TOPICS, Action, Id, Scene, Value
from runner.spec.quality import ACTION_MIN_WORDS, LABEL_STEMS, SCENE_WORDS

Stage = Literal["scene", "action", "judge_scene", "judge_action"]
STAGES: tuple[str, ...] = ("scene", "action", "judge_scene", "judge_action")
STAGE_VARIABLES: dict[str, frozenset[str]] = {
    "scene": frozenset({"country", "topic", "values", "avoid"}),
    "action": frozenset(
        {
            "country",
            "topic",
            "scene",
            "value_name",
            "definition",
            "direction",
            "target",
            "polarity_note",
            "micro_options",
        }
    ),
    "judge_scene": frozenset({"country", "topic", "scene"}),
    "judge_action": frozenset(
        {"country", "topic", "scene", "action", "value_name", "definition", "direction", "target"}
    ),
}
"""The placeholders each stage's prompt may use: ``{name}``; other braces (JSON examples) stay as written."""
SCORES = ("realism", "neutrality", "correctness", "plausibility", "harmlessness")
LOW_SCORE = 3
"""A judge score below this puts the item on the review list."""
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_DIRECTION = {"express": "expresses (acts on)", "suppress": "suppresses (sets aside or works against)"}
_POLARITY_NOTE = {
    "express": "A plausible, ordinary choice, not a saintly or heroic one.",
    "suppress": "Not an evil action: a plausible choice that a reasonable person might make for another reason.",
}


class GenPrompt(BaseModel):
    """One generation prompt (``generation/prompts/<stage>.yaml``): versioned, like spec documents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    version: int = Field(ge=1)
    stage: Stage
    description: str
    system: str
    user: Annotated[str, StringConstraints(min_length=10)]
    fields: dict[str, Literal["text", "optional_text", "score"]] = Field(min_length=1)
    """The keys of the JSON object the answer must be, with their kind."""
    max_tokens: int = Field(default=300, ge=8, le=8192)

    @model_validator(mode="after")
    def _known_placeholders(self) -> GenPrompt:
        allowed = STAGE_VARIABLES[self.stage]
        used = set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))
        unknown = sorted(used - allowed)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"a {self.stage} prompt may use {', '.join('{' + a + '}' for a in sorted(allowed))}"
            )
        return self

    @property
    def tag(self) -> str:
        """``id@version`` (recorded in each generated document)."""
        return f"{self.id}@{self.version}"

    def render(self, variables: dict[str, str]) -> list[dict[str, str]]:
        """The chat messages for ``variables`` (each placeholder replaced; JSON braces untouched)."""

        def fill(template: str) -> str:
            return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), template)

        return [
            {"role": "system", "content": fill(self.system)},
            {"role": "user", "content": fill(self.user)},
        ]


def prompts_dir(configured: str) -> Path:
    """The prompts folder: as given when it exists from here, else relative to the project root."""
    path = Path(configured)
    if path.is_dir() or path.is_absolute():
        return path
    from runner.core.paths import SHIPPED, repo_root, shipped

    if configured == SHIPPED["generation_prompts"]:  # the default: inside the wheel, or the checkout's
        return shipped("generation_prompts")
    return repo_root() / configured


def load_prompts(folder: Path) -> dict[str, GenPrompt]:
    """The four stage prompts of ``folder`` by stage; a missing, duplicate or invalid one fails clearly."""
    from runner.core.yamlio import YamlProblem, read_yaml

    if not folder.is_dir():
        raise VatError(f"generation prompts folder {folder} not found; set generate.prompts=<folder>", 2)
    found: dict[str, tuple[GenPrompt, Path]] = {}
    for file in sorted(folder.glob("*.y*ml")):
        try:
            ydoc = read_yaml(file)
            prompt = GenPrompt.model_validate(ydoc.data)
        except YamlProblem as exc:
            raise VatError(str(exc.problem), 1) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            line = ydoc.line_of(loc)
            raise VatError(
                f"{file}:{line}: {'.'.join(str(p) for p in loc) or '(document)'}: "
                f"{err['msg'].removeprefix('Value error, ')}",
                1,
            ) from None
        if prompt.stage in found:
            raise VatError(
                f"{file}: a second {prompt.stage} prompt (also {found[prompt.stage][1]}); keep one", 1
            )
        found[prompt.stage] = (prompt, file)
    missing = [s for s in STAGES if s not in found]
    if missing:
        raise VatError(f"{folder}: no prompt for stage(s) {', '.join(missing)}; add <stage>.yaml", 1)
    return {s: p for s, (p, _) in found.items()}


# ---------------------------------------------------------------- parsing model output


class Unusable(Exception):
    """A model answer that cannot be used; the message is the reason recorded for review."""


def extract_json(text: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object in a model's answer (code fences and surrounding prose ignored).

    With ``keys``, the first object holding any of them wins over earlier objects (a model may quote
    something else first); else the first object.
    """
    stripped = re.sub(r"```(?:json|JSON)?", "", text or "").strip()
    if not stripped:
        raise Unusable("empty answer")
    decoder = json.JSONDecoder()
    wanted = set(keys)
    first: dict[str, Any] | None = None
    for match in re.finditer(r"\{", stripped):
        try:
            obj, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            if not wanted or wanted & set(obj):
                return obj
            first = first if first is not None else obj
    if first is not None:
        return first
    raise Unusable("no JSON object in the answer")


def _score(value: Any) -> int | None:
    """A 1–5 score from an int, an integral float or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[1-5](\.0)?\s*", value):
        value = float(value)
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    return None


def lenient_fields(text: str, fields: dict[str, str]) -> dict[str, Any]:
    """Fields pulled from almost-JSON (small models leave quotes unescaped or the object unclosed)."""
    found: dict[str, Any] = {}
    for key, kind in fields.items():
        if kind == "score":
            m = re.search(rf'"{key}"\s*:\s*"?([1-5])\b', text)
        else:
            m = re.search(rf'"{key}"\s*:\s*"(.*?)"\s*(?=,\s*"\w+"\s*:|}}|$)', text, re.DOTALL)
        if m:
            found[key] = m.group(1)
    return found


def _bare_string(text: str, fields: dict[str, str]) -> dict[str, Any]:
    """A whole answer that is one JSON string, for a prompt that asks for one text (small models do that)."""
    required = [k for k, kind in fields.items() if kind == "text"]
    if len(required) != 1 or len(fields) - len(required) > 1 or any(v == "score" for v in fields.values()):
        return {}
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return {}
    return {required[0]: value} if isinstance(value, str) else {}


def parse_answer(text: str, fields: dict[str, str]) -> dict[str, Any]:
    """The answer's JSON object checked against the prompt's ``fields``; :class:`Unusable` says why not.

    When the answer holds no valid JSON object, fields are pulled from almost-JSON
    (:func:`lenient_fields`), or a bare JSON string is taken as the one text asked for; the item's own
    checks still apply to what is found.
    """
    try:
        obj = extract_json(text, fields)
    except Unusable:
        obj = lenient_fields(text or "", fields) or _bare_string(text or "", fields)
        if not any(obj.get(k) for k, kind in fields.items() if kind != "optional_text"):
            raise
    out: dict[str, Any] = {}
    for key, kind in fields.items():
        value = obj.get(key)
        if kind == "score":
            score = _score(value)
            if score is None:
                raise Unusable(f"{key!r} is {value!r}, not a score from 1 to 5")
            out[key] = score
        elif isinstance(value, str) and value.strip() and value.strip().lower() not in ("null", "none"):
            out[key] = " ".join(value.split())
        elif kind == "text":
            raise Unusable(f"{key!r} is missing or not a text")
        else:
            out[key] = None
    return out


# ---------------------------------------------------------------- the pipeline


@dataclass
class Failure:
    """One item that could not be written: which, at what stage, why, and the start of the answer."""

    item: str
    stage: str
    reason: str
    answer: str = ""

    def as_dict(self) -> dict[str, str]:
        """A plain dict for YAML and JSON (the answer only when there was one)."""
        d = {"item": self.item, "stage": self.stage, "reason": self.reason}
        if self.answer:
            d["answer"] = self.answer
        return d


@dataclass
class Stats:
    """What a generation run did."""

    calls: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    done: int = 0


@dataclass(frozen=True)
class Slot:
    """One action to write: a value (and micro-value, at micro granularity) and a polarity."""

    value: Value
    micro_id: str | None
    micro_name: str | None
    polarity: str

    @property
    def action_id(self) -> str:
        """``<value or micro-value>-<polarity>``, unique within a scene."""
        return f"{self.micro_id or self.value.id}-{self.polarity}"


@dataclass
class Settings:
    """The parts of the config the pipeline uses (from ``model.*``, ``generate.*``, ``execution.*``)."""

    model: str
    judge_model: str | None
    api_base: str | tuple[str, ...] | None
    api_key: str | None
    temperature: float
    judge_temperature: float
    json_mode: bool
    attempts: int
    seed: int | None
    extra: dict[str, Any]
    concurrency: int
    max_retries: int
    timeout_s: float
    backoff_s: float
    budget_usd: float | None


class Pipeline:
    """Runs prompts through LiteLLM with bounded concurrency, parse checks and re-asks; counts everything."""

    def __init__(
        self, litellm: Any, settings: Settings, prompts: dict[str, GenPrompt], progress: Any
    ) -> None:
        self.litellm, self.s, self.prompts, self.progress = litellm, settings, prompts, progress
        self.sem = asyncio.Semaphore(max(1, settings.concurrency))
        self.stats = Stats()

    def _opts(self, stage: str, judge: bool) -> Any:
        from runner.execute.online import ExecOptions

        params: dict[str, Any] = {
            "temperature": self.s.judge_temperature if judge else self.s.temperature,
            "max_tokens": self.prompts[stage].max_tokens,
            **self.s.extra,
        }
        if self.s.seed is not None:
            params["seed"] = self.s.seed
        if self.s.json_mode:
            params["response_format"] = {"type": "json_object"}
        return ExecOptions(
            concurrency=self.s.concurrency,
            max_retries=self.s.max_retries,
            timeout_s=self.s.timeout_s,
            backoff_s=self.s.backoff_s,
            params=params,
        )

    def skip(self, n: int) -> None:
        """Count ``n`` planned asks as done without asking (their item failed at an earlier stage)."""
        self.stats.done += n
        if self.progress is not None and n:
            self.progress[0].update(self.progress[1], completed=self.stats.done)

    async def ask(
        self,
        stage: str,
        variables: dict[str, str],
        item: str,
        check: Callable[[dict[str, Any]], Any],
        sink: list[Failure],
    ) -> Any:
        """Ask ``stage``'s prompt until ``check`` accepts the parsed answer.

        Returns the checked answer, or None after recording why in ``sink`` (the job's failures) and
        in the run's stats.
        """
        judge = stage.startswith("judge")
        prompt = self.prompts[stage]
        messages = prompt.render(variables)
        reason, answer = "no attempt", ""
        try:
            for attempt in range(max(1, self.s.attempts)):
                if self.s.budget_usd is not None and self.stats.cost_usd >= self.s.budget_usd:
                    reason = f"execution.budget_usd={self.s.budget_usd} reached"
                    break
                if attempt:  # a re-ask must be a new request, or a caching provider repeats itself
                    messages = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + " "}]
                try:
                    answer = await self._send(stage, judge, messages)
                except VatError:  # rejected credentials: every other item would fail the same way
                    raise
                except Exception as exc:  # noqa: BLE001 - a provider fault fails the item, not the run
                    reason, answer = f"provider error {type(exc).__name__}: {_first_line(exc)}", ""
                    break
                try:
                    return check(parse_answer(answer, prompt.fields))
                except Unusable as exc:
                    reason = str(exc)
            failure = Failure(item, stage, reason, " ".join(answer.split())[:200])
            self.stats.failures.append(failure)
            sink.append(failure)
            return None
        finally:
            self.skip(1)

    async def _send(self, stage: str, judge: bool, messages: list[dict[str, str]]) -> str:
        """One completion (provider faults retried by :func:`runner.execute.online.acomplete`); the answer text."""
        from runner.execute.online import _cost, acomplete

        model = (self.s.judge_model or self.s.model) if judge else self.s.model
        same_endpoint = not judge or not self.s.judge_model
        async with self.sem:
            try:
                resp, tries = await acomplete(
                    self.litellm,
                    model,
                    messages,
                    self._opts(stage, judge),
                    api_base=self.s.api_base if same_endpoint else None,
                    api_key=self.s.api_key if same_endpoint else None,
                )
            except Exception as exc:
                if type(exc).__name__ in {"AuthenticationError", "PermissionDeniedError"}:
                    raise VatError(
                        f"the provider rejected the credentials for {model} ({type(exc).__name__}); "
                        "check model.api_key_env or the provider's key variable",
                        1,
                    ) from None
                raise
        self.stats.calls += 1
        self.stats.attempts += tries
        self.stats.cost_usd += _cost(self.litellm, resp, model)
        return resp.choices[0].message.content or ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def check_scene_text(data: dict[str, Any]) -> str:
    """Accept a scene text within the spec's bounds (40–2,000 characters, 25–140 words)."""
    text = data["text"]
    words = len(text.split())
    if not SCENE_WORDS[0] <= words <= SCENE_WORDS[1] or not 40 <= len(text) <= 2000:
        raise Unusable(f"scene has {words} words; it must have {SCENE_WORDS[0]} to {SCENE_WORDS[1]}")
    return text


def action_checker(slot: Slot, names: Names) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A check that turns a parsed answer into a valid action dict for ``slot`` (or raises Unusable)."""

    def check(data: dict[str, Any]) -> dict[str, Any]:
        text = data["text"]
        micro = slot.micro_id
        if micro is None and data.get("micro_value"):
            guess = names.micro_value(data["micro_value"])
            micro = guess if guess and names.micro_owner.get(guess) == slot.value.id else None
        action = {
            "id": slot.action_id,
            "value": slot.value.id,
            **({"micro_value": micro} if micro else {}),
            "polarity": slot.polarity,
            "text": text,
        }
        try:
            Action.model_validate(action)
        except ValidationError as exc:
            raise Unusable(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        stem = LABEL_STEMS.get(slot.value.id)
        if stem and re.search(stem, text, re.IGNORECASE):
            raise Unusable(f"the action names its own value ({slot.value.id})")
        if len(text.split()) < ACTION_MIN_WORDS:
            raise Unusable(f"action has fewer than {ACTION_MIN_WORDS} words")
        return action

    return check


def check_scores(data: dict[str, Any]) -> dict[str, Any]:
    """Keep the five scores (and the comment, when given)."""
    scores = {k: data[k] for k in SCORES}
    if data.get("comment"):
        scores["comment"] = data["comment"]
    return scores


def slots(index: SpecIndex, granularity: str, values: list[str]) -> list[Slot]:
    """The actions a scene needs: per value (or micro-value) and polarity, in circle order."""
    if granularity not in ("value", "micro_value"):
        raise VatError(f"generate.granularity={granularity!r}; use value or micro_value", 2)
    unknown = [v for v in values if v not in index.value_ids]
    if unknown:
        raise VatError(
            f"generate.values: {unknown[0]!r} is not a value id; use {', '.join(index.value_ids)}", 2
        )
    out = []
    for v in index.values:
        if values and v.id not in values:
            continue
        micros = [(m.id, m.name) for m in v.micro_values] if granularity == "micro_value" else [(None, None)]
        for micro_id, micro_name in micros:
            for polarity in ("express", "suppress"):
                out.append(Slot(v, micro_id, micro_name, polarity))
    return out


@dataclass
class Job:
    """One scene to produce: a new one (stage I + II) or an existing text that gets new actions."""

    scene_id: str
    country: str
    topic: str
    split: str
    version: int
    path: Path
    text: str | None = None
    avoid: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What one job produced."""

    job: Job
    scene: Scene | None = None
    failures: list[Failure] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)


def _value_variables(slot: Slot) -> dict[str, str]:
    return {
        "value_name": slot.value.name,
        "definition": slot.value.definition.rstrip("."),
        "direction": _DIRECTION[slot.polarity],
        "target": f', in particular its aspect "{slot.micro_name}"' if slot.micro_name else "",
        "polarity_note": _POLARITY_NOTE[slot.polarity],
        "micro_options": ", ".join(m.name for m in slot.value.micro_values) or "none",
    }


async def run_job(pipe: Pipeline, job: Job, slot_list: list[Slot], names: Names, judge: bool) -> Outcome:
    """Stage I (when the job has no text), stage II for every slot, then the judge; returns the document."""
    cell = {"country": COUNTRIES[job.country], "topic": TOPICS[job.topic]}
    outcome = Outcome(job)
    sink = outcome.failures
    text = job.text
    if text is None:
        values = ", ".join(v.name for v in {s.value.id: s.value for s in slot_list}.values())
        avoid = "".join(
            f'\n  - Choose a different situation from this existing scene: "{a}"' for a in job.avoid[:2]
        )
        variables = {**cell, "values": values, "avoid": avoid}
        text = await pipe.ask("scene", variables, job.scene_id, check_scene_text, sink)
        if text is None:
            pipe.skip(len(slot_list) * (2 if judge else 1) + (1 if judge else 0))
            return outcome
    ctx = {**cell, "scene": text}
    actions = await asyncio.gather(
        *[
            pipe.ask(
                "action",
                {**ctx, **_value_variables(s)},
                f"{job.scene_id}/{s.action_id}",
                action_checker(s, names),
                sink,
            )
            for s in slot_list
        ]
    )
    written = [(s, a) for s, a in zip(slot_list, actions, strict=True) if a is not None]
    if judge:
        pipe.skip(len(slot_list) - len(written))
        await _judge(pipe, job, ctx, written, outcome)
    if not written:
        return outcome
    try:
        outcome.scene = _document(job, text, [a for _, a in written], outcome, pipe)
    except ValueError as exc:
        failure = Failure(job.scene_id, "document", f"not a valid scene: {exc}")
        pipe.stats.failures.append(failure)
        sink.append(failure)
    return outcome


async def _judge(
    pipe: Pipeline,
    job: Job,
    ctx: dict[str, str],
    written: list[tuple[Slot, dict[str, Any]]],
    outcome: Outcome,
) -> None:
    """Score the new scene (stage I jobs) and every written action; keep the scores that parsed."""
    sink = outcome.failures
    asks = [pipe.ask("judge_scene", ctx, job.scene_id, check_scores, sink)] if job.text is None else []
    asks += [
        pipe.ask(
            "judge_action",
            {**ctx, **_value_variables(s), "action": a["text"]},
            f"{job.scene_id}/{s.action_id}",
            check_scores,
            sink,
        )
        for s, a in written
    ]
    results = list(await asyncio.gather(*asks))
    if job.text is None:
        scene_scores = results.pop(0)
        if scene_scores:
            outcome.scores["scene"] = scene_scores
    outcome.scores["actions"] = {a["id"]: r for (_, a), r in zip(written, results, strict=True) if r}


def _document(job: Job, text: str, actions: list[dict[str, Any]], outcome: Outcome, pipe: Pipeline) -> Scene:
    """The scene document with its ``generated`` block, validated (an invalid one is a failure)."""
    stages = ["scene", "action"] if job.text is None else ["action"]
    if outcome.scores:
        stages += ["judge_scene", "judge_action"] if job.text is None else ["judge_action"]
    generated: dict[str, Any] = {
        "by": "vat generate scenes" if job.text is None else "vat generate actions",
        "model": pipe.s.model,
        "prompts": [pipe.prompts[s].tag for s in stages],
        "date": date.today().isoformat(),
    }
    if outcome.scores:
        generated["judge_model"] = pipe.s.judge_model or pipe.s.model
        generated["scores"] = outcome.scores
    if outcome.failures:
        generated["failed"] = [f.as_dict() for f in outcome.failures]
    doc = {
        "id": job.scene_id,
        "version": job.version,
        "country": job.country,
        "topic": job.topic,
        "split": job.split,
        "text": text,
        "actions": actions,
        "generated": generated,
    }
    return validate_doc(doc)


# ---------------------------------------------------------------- planning and entry point


def settings_from(cfg: DictConfig) -> Settings:
    """The pipeline's settings from the composed config (the API key read from its env variable)."""
    import os

    g, m, e = cfg.generate, cfg.model, cfg.execution
    key = None
    if m.api_key_env:
        key = os.environ.get(m.api_key_env)
        if not key:
            raise VatError(
                f"model.api_key_env names {m.api_key_env}, which is not set; export it and run again", 1
            )
    return Settings(
        model=str(m.name),
        judge_model=str(g.judge_model) if g.judge_model else None,
        api_base=api_base_pool(m.api_base),
        api_key=key,
        temperature=float(g.temperature),
        judge_temperature=float(g.judge_temperature),
        json_mode=bool(g.json_mode),
        attempts=int(g.attempts),
        seed=m.seed,
        extra=dict(m.extra or {}),
        # The in-process provider runs one request at a time: more in flight only makes queued ones time out.
        concurrency=1
        if str(m.name).startswith("local/") or str(g.judge_model or "").startswith("local/")
        else int(e.concurrency),
        max_retries=int(e.max_retries),
        timeout_s=float(e.timeout_s),
        backoff_s=float(e.backoff_s),
        budget_usd=e.budget_usd,
    )


def plan_scene_jobs(cfg: DictConfig, index: SpecIndex, names: Names) -> list[Job]:
    """New scenes: ``per_cell`` per selected cell, with ids free in spec/ (deterministic, so a rerun resumes)."""
    g = cfg.generate
    if g.split not in ("auto", "train", "test"):
        raise VatError(f"generate.split={g.split!r}; use auto, train or test", 2)
    if int(g.per_cell) < 1:
        raise VatError("generate.per_cell must be at least 1", 2)
    out = Path(g.out)
    taken = set(index.scenes)
    jobs = []
    for country, topic in resolve_cells(names, list(g.countries), list(g.topics)):
        existing = [s.text for s in index.scenes.values() if s.country == country and s.topic == topic]
        for sid in scene_ids(country, topic, taken, int(g.per_cell)):
            split = auto_split(sid) if g.split == "auto" else str(g.split)
            jobs.append(Job(sid, country, topic, split, 1, scene_path(out, sid, country), avoid=existing))
    return jobs


def plan_action_jobs(cfg: DictConfig, index: SpecIndex, names: Names) -> list[Job]:
    """Existing scenes (spec/ or ``generate.source``) that get new actions, as the next version of each."""
    g = cfg.generate
    if g.source:
        source = Path(g.source)
        if not source.is_dir():
            raise VatError(f"generate.source={g.source} is not a folder of scene YAML files", 2)
        scenes = [s for s, _ in read_scenes(source)]
    else:
        scenes = list(index.scenes.values())
    by_id = {s.id: s for s in scenes}
    if g.scenes:
        missing = [s for s in g.scenes if s not in by_id]
        if missing:
            raise VatError(
                f"generate.scenes: no scene {missing[0]!r} in {g.source or index.root / 'scenarios'}", 2
            )
        picked = [by_id[s] for s in g.scenes]
    else:
        cells = set(resolve_cells(names, list(g.countries), list(g.topics)))
        picked = [s for s in scenes if (s.country, s.topic) in cells]
    out = Path(g.out)
    return [
        Job(
            s.id,
            s.country,
            s.topic,
            s.split.value,
            s.version + 1,
            scene_path(out, s.id, s.country),
            text=s.text,
        )
        for s in picked
    ]


def _header(scene: Scene) -> str:
    by = scene.generated.get("by", "vat generate") if scene.generated else "vat generate"
    return (
        f"Written by `{by}` ({scene.generated.get('model') if scene.generated else '?'}); review before use.\n"
        f"Scores and failures are under `generated`. To adopt it, fix what `generated.review` lists and delete\n"
        f"that list (`vat validate` refuses a scene that still has one), move the file to\n"
        f"spec/scenarios/{scene.country}/ and run `vat validate --update-lock`."
    )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]generating[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=display.err,
        refresh_per_second=4,
    )
    return progress, progress.add_task("generating", total=total)


async def _run_all(
    pipe: Pipeline,
    jobs: list[Job],
    slot_list: list[Slot],
    names: Names,
    judge: bool,
    write: Callable[[Outcome], None],
) -> list[Outcome]:
    """Every job concurrently (the semaphore bounds the calls); each scene is written as soon as it is done."""

    async def one(job: Job) -> Outcome:
        outcome = await run_job(pipe, job, slot_list, names, judge)
        write(outcome)
        return outcome

    return list(await asyncio.gather(*[one(j) for j in jobs]))


def generate(cfg: DictConfig, stage: str) -> dict[str, Any]:
    """Run ``vat generate scenes`` or ``vat generate actions``; return the summary (also written as JSON)."""
    from runner.execute.online import litellm_module
    from runner.spec.load import load_index

    index = load_index(cfg.spec_dir, check_lock=False)
    g = cfg.generate
    check_out_dir(Path(str(g.out)), cfg.spec_dir, "generate.out")
    names = Names.build(index.value_system)
    prompts = load_prompts(prompts_dir(str(g.prompts)))
    slot_list = slots(index, str(g.granularity), list(g["values"]))
    jobs = plan_scene_jobs(cfg, index, names) if stage == "scenes" else plan_action_jobs(cfg, index, names)
    skipped = [j for j in jobs if j.path.exists() and not g.overwrite]
    jobs = [j for j in jobs if j not in skipped]
    settings = settings_from(cfg)
    judge = bool(g.judge)
    per_job = len(slot_list) * (2 if judge else 1) + ((2 if judge else 1) if stage == "scenes" else 0)
    progress = _progress(per_job * len(jobs), bool(cfg.execution.progress) and cfg.format.value != "json")
    models = {settings.model} | ({settings.judge_model} if settings.judge_model else set())
    pipe = Pipeline(litellm_module(models) if jobs else None, settings, prompts, progress)
    written: dict[str, tuple[Scene, Path]] = {}

    def write(outcome: Outcome) -> None:
        if outcome.scene is not None:
            doc = outcome.scene.model_dump(mode="json", exclude_none=True)
            scene = write_scene(doc, outcome.job.path, _header(outcome.scene))
            written[scene.id] = (scene, outcome.job.path)

    start = time.perf_counter()
    if progress is not None:
        progress[0].start()
    try:
        outcomes = asyncio.run(_run_all(pipe, jobs, slot_list, names, judge, write)) if jobs else []
    finally:
        if progress is not None:
            progress[0].stop()
    reviews = _review(written, index)
    return _summary(
        stage, cfg, pipe, jobs, skipped, outcomes, written, reviews, slot_list, time.perf_counter() - start
    )


def _review(written: dict[str, tuple[Scene, Path]], index: SpecIndex) -> dict[str, list[str]]:
    """Spec and quality problems plus low judge scores of each written scene, stored in its file too."""
    problems = review_problems(written, index) if written else {}
    for sid, (scene, path) in written.items():
        notes = problems.get(sid, []) + _low_scores(scene)
        problems[sid] = notes
        if notes:
            doc = scene.model_dump(mode="json", exclude_none=True)
            doc["generated"]["review"] = notes
            written[sid] = (write_scene(doc, path, _header(scene)), path)
    return problems


def _low_scores(scene: Scene) -> list[str]:
    scores = (scene.generated or {}).get("scores") or {}
    items = ([("scene", scores["scene"])] if scores.get("scene") else []) + list(
        (scores.get("actions") or {}).items()
    )
    notes = []
    for name, s in items:
        if not s:
            continue
        low = [f"{k} {s[k]}" for k in SCORES if isinstance(s.get(k), int) and s[k] < LOW_SCORE]
        if low:
            notes.append(f"judge: {name} scored low ({', '.join(low)})")
    return notes


def _summary(
    stage: str,
    cfg: DictConfig,
    pipe: Pipeline,
    jobs: list[Job],
    skipped: list[Job],
    outcomes: list[Outcome],
    written: dict[str, tuple[Scene, Path]],
    reviews: dict[str, list[str]],
    slot_list: list[Slot],
    elapsed: float,
) -> dict[str, Any]:
    """Counts, failures by stage and reason, mean judge scores; written to ``<out>/generation-report.json``."""
    from collections import Counter

    fails = pipe.stats.failures
    by_reason = Counter((f.stage, _reason_kind(f.reason)) for f in fails)
    all_scores = [
        s
        for scene, _ in written.values()
        for s in (
            [(scene.generated or {}).get("scores", {}).get("scene")]
            + list(((scene.generated or {}).get("scores", {}).get("actions") or {}).values())
        )
        if s
    ]
    summary: dict[str, Any] = {
        "stage": stage,
        "model": pipe.s.model,
        "judge_model": (pipe.s.judge_model or pipe.s.model) if cfg.generate.judge else None,
        "out": str(cfg.generate.out),
        "scenes_requested": len(jobs) + len(skipped),
        "scenes_skipped_existing": len(skipped),
        "scenes_written": len(written),
        "actions_written": sum(len(s.actions) for s, _ in written.values()),
        "actions_expected": len(slot_list) * len(jobs),
        "scenes_failed": [o.job.scene_id for o in outcomes if o.scene is None],
        "failures": len(fails),
        "failures_by_reason": [
            {"stage": st, "reason": r, "count": n}
            for (st, r), n in sorted(by_reason.items(), key=lambda x: -x[1])
        ],
        "failure_examples": [f.as_dict() for f in fails[:10]],
        "mean_scores": {k: round(sum(s[k] for s in all_scores) / len(all_scores), 2) for k in SCORES}
        if all_scores
        else {},
        "scored_items": len(all_scores),
        "scenes_to_review": {sid: notes for sid, notes in reviews.items() if notes},
        "calls": pipe.stats.calls,
        "provider_attempts": pipe.stats.attempts,
        "cost_usd": round(pipe.stats.cost_usd, 6),
        "elapsed_s": round(elapsed, 2),
        "files": sorted(str(p) for _, p in written.values()),
    }
    out = Path(cfg.generate.out)
    if jobs:
        out.mkdir(parents=True, exist_ok=True)
        (out / "generation-report.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _reason_kind(reason: str) -> str:
    """A failure reason without its specifics (quoted values, numbers), for counting."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason))[:120]
