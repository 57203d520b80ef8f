"""A release compiled for one entry: every condition's plan, and the identity a bundle records of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.compile.plan import Plan, Request, compile_plan
from runner.core.errors import VatError
from runner.spec.entries import Entry, Release, release_problems, snapshot_dir


@dataclass(frozen=True)
class Condition:
    """One scored run of a release: strategy × target × direction, compiled."""

    strategy: str
    target: str
    direction: str
    plan: Plan


@dataclass(frozen=True)
class ReleasePlan:
    """A release compiled for one entry: the config, the spec index and one plan per condition."""

    release: Release
    entry: Entry
    cfg: DictConfig
    index: Any
    conditions: tuple[Condition, ...]

    def membership(self) -> list[tuple[str, str, int | None, str]]:
        """(run_id, condition, step, request key) of every judgment the release needs, in plan order."""
        return [
            (c.plan.run.run_id, r.condition, r.step, r.key) for c in self.conditions for r in c.plan.requests
        ]

    def requests_by_key(self) -> dict[str, Request]:
        """Every distinct request of the release by key."""
        return {r.key: r for c in self.conditions for r in c.plan.requests}

    def metric_params(self) -> dict[str, Any]:
        """The metric parameters of the release (``metrics.*`` with the release's overrides)."""
        return dict(OmegaConf.to_container(self.cfg.metrics, resolve=True))  # type: ignore[arg-type]


def release_config(entry: Entry, release: Release, overrides: Sequence[str] = ()) -> DictConfig:
    """The run config of ``entry`` under ``release``: the entry's model, the pinned scenes and prompt, the metrics."""
    from runner.config import compose

    prompt = release.prompt.split("@")[0]
    cfg = compose([f"model={entry.id}", "selection.split=all", f"prompt={prompt}", *overrides])
    cfg.selection.scenes = release.scene_ids
    cfg.selection.train_scenes = release.train_scene_ids  # demonstrations from the pinned train scenes only
    snap = snapshot_dir(release.id)
    if snap.is_dir():  # a frozen release compiles from its own copy of what it pins, not from spec/
        cfg.spec_dir = str(snap)
    cfg.selection.max_scenes = None
    for key, value in release.metrics.items():
        cfg.metrics[key] = value
    return cfg


def condition_config(cfg: DictConfig, strategy: str, target: str, direction: str) -> DictConfig:
    """A copy of ``cfg`` for one (strategy, target, direction) of the release."""
    out = cfg.copy()
    out.strategy, out.target, out.direction = strategy, target, direction
    return out


def compile_release(
    entry: Entry, release: Release, overrides: Sequence[str] = (), index: Any | None = None
) -> ReleasePlan:
    """Compile every condition of ``release`` for ``entry``; fail clearly when the release no longer resolves."""
    from runner.spec.load import load_index

    cfg = release_config(entry, release, overrides)
    index = index if index is not None else load_index(cfg.spec_dir)
    from runner.core.paths import leaderboard_dir

    file = leaderboard_dir() / "releases" / f"{release.id}.yaml"
    problems = release_problems(release, index, f"leaderboard/releases/{release.id}.yaml", file)
    if problems:
        raise VatError(f"{problems[0]}", 1)
    conditions = []
    for strategy in release.strategy_ids:
        for c in release.targets:
            c_cfg = condition_config(cfg, strategy, c.target, c.direction)
            conditions.append(Condition(strategy, c.target, c.direction, compile_plan(index, c_cfg)))
    return ReleasePlan(release, entry, cfg, index, tuple(conditions))


def spec_hashes(rp: ReleasePlan) -> dict[str, dict[str, Any]]:
    """``kind/id`` → {version, hash} of every spec document the release uses."""
    keys = [f"values/{rp.release.value_system.split('@')[0]}", f"prompts/{rp.release.prompt.split('@')[0]}"]
    keys += [f"scenarios/{s}" for s in rp.release.scene_ids + rp.release.train_scene_ids] + [
        f"strategies/{s}" for s in rp.release.strategy_ids
    ]
    return {k: {"version": rp.index.hashes[k][0], "hash": rp.index.hashes[k][1]} for k in keys}


def entry_identity(entry: Entry) -> dict[str, Any]:
    """The parts of an entry that change judgments (its display facts may be edited freely)."""
    return {"model": entry.model, "parameters": entry.parameters.model_dump(mode="json")}
