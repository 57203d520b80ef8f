"""One generation job from prompt to checked answer: ask, check, retry, judge.

:class:`Pipeline` sends a job's prompts, checks every answer against the spec's rules and asks again
up to ``generate.attempts`` times; :func:`slots` lists the (value or micro-value) slots of a scene, and
:func:`run_job` runs one :class:`Job` to an :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runner.core.errors import VatError
from runner.dataset.answers import Unusable, parse_answer
from runner.dataset.draft import (
    Names,
    validate_doc,
)
from runner.dataset.prompts import DIRECTION, POLARITY_NOTE, SCORES, GenPrompt
from runner.execute.rate_gate import RateGate
from runner.spec.load import SpecIndex
from runner.spec.models import COUNTRIES, TOPICS, Action, Scene, Value
from runner.spec.quality import ACTION_MIN_WORDS, LABEL_STEMS, SCENE_WORDS

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
    requests_per_minute: float | None = None


class Pipeline:
    """Runs prompts through LiteLLM with bounded concurrency, parse checks and re-asks; counts everything."""

    def __init__(
        self, litellm: Any, settings: Settings, prompts: dict[str, GenPrompt], progress: Any
    ) -> None:
        self.litellm, self.s, self.prompts, self.progress = litellm, settings, prompts, progress
        self.sem = asyncio.Semaphore(max(1, settings.concurrency))
        # One send rate for every ask, as a run's: the configured ceiling, and the rate learnt from 429s.
        rpm = settings.requests_per_minute
        self.gate = RateGate(ceiling=rpm / 60 if rpm else None)
        self.stats = Stats()

    def _opts(self, stage: str, judge: bool) -> Any:
        from runner.execute.options import ExecOptions

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
                    gate=self.gate,
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
        "direction": DIRECTION[slot.polarity],
        "target": f', in particular its aspect "{slot.micro_name}"' if slot.micro_name else "",
        "polarity_note": POLARITY_NOTE[slot.polarity],
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
