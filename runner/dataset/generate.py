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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

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
    write_scene,
)
from runner.dataset.prompts import LOW_SCORE, SCORES, load_prompts, prompts_dir
from runner.dataset.stages import Job, Outcome, Pipeline, Settings, Slot, run_job, slots
from runner.spec.load import SpecIndex
from runner.spec.models import Scene

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
        requests_per_minute=e.requests_per_minute,
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
