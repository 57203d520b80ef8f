"""The Python API: what the `vat` verbs do, as calls that return data instead of printing.

Every function takes the same Hydra overrides as the command line (``"model.name=sim/circle"``,
``"strategy=fewshot_4"``, ``"store.path=results/vat.duckdb"``) and the CLI verbs call these same
functions, so a notebook and a terminal get the same numbers::

    from runner import api

    api.validate()                                    # [] when every spec file is sound
    api.plan("model.name=sim/circle", "strategy=fewshot_4")["to_send"]
    summary = api.run("model.name=sim/circle", "strategy=fewshot_4", "selection.max_scenes=5")
    rows = api.report(f"store.path={summary['store']}", target="security")
    rows[0]["nvat_corrected"], rows[0]["signal"]["nvat"]   # the tax beyond noise, and whether it is signal
    doc = api.results(f"store.path={summary['store']}")    # the versioned results document

Errors are :class:`runner.core.errors.VatError` with the one-sentence message the CLI prints. A run
that stops early (budget, interrupt, failed requests) returns its summary with a non-zero
``exit_code``, as ``vat run`` exits; it does not raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.config import compose
from runner.metrics import results_doc
from runner.metrics.row import ReportRow, to_json
from runner.spec.load import SpecIndex
from runner.spec.models import Problem

__all__ = ["config", "plan", "report", "results", "run", "validate"]


def config(*overrides: str) -> DictConfig:
    """The composed, checked run configuration (``conf/`` plus ``overrides``), as `vat plan --cfg` shows it."""
    return compose(list(overrides))


# ---------------------------------------------------------------- validate


@dataclass(frozen=True)
class SpecCheck:
    """What `vat validate` found: the index (None when the files do not load) and every problem."""

    index: SpecIndex | None
    problems: list[Problem]
    n_leaderboard: int  # how many of the problems are in leaderboard entries and releases (the rest: spec)


def check_spec(spec_dir: str = "spec", check_lock: bool = True) -> SpecCheck:
    """Load ``spec_dir`` and run every check `vat validate` runs: schema, lock, quality, review, entries."""
    from runner.spec.entries import leaderboard_problems
    from runner.spec.load import collect, unreviewed_problems
    from runner.spec.quality import quality_problems

    index, problems = collect(spec_dir, check_lock=check_lock)
    if index is not None:
        problems = sorted(set(problems) | set(quality_problems(index)) | set(unreviewed_problems(index)))
    board = set(leaderboard_problems(index))  # entries and releases
    problems = sorted(set(problems) | board)
    return SpecCheck(index, problems, len(problems) - len(set(problems) - board))


def validate(spec_dir: str = "spec") -> list[str]:
    """Every problem of the spec folder, one sentence each naming the file, line or field (empty: sound)."""
    return [str(p) for p in check_spec(spec_dir).problems]


# ---------------------------------------------------------------- plan and run


def plan(*overrides: str) -> dict[str, Any]:
    """What `vat plan` prints: the run's id, its requests, how many are stored and to send, the cost."""
    from runner.compile.plan import compile_plan
    from runner.pipeline import load_spec, plan_numbers

    cfg = config(*overrides)
    numbers, _, _ = plan_numbers(cfg, compile_plan(load_spec(cfg), cfg))
    return numbers


def run(*overrides: str) -> dict[str, Any]:
    """Run one condition (pre and post) and return `vat run`'s summary, with its ``exit_code``.

    Sends only what the store lacks. A sweep (``-m``) is the command line's: use `vat run -m`.
    """
    from runner.pipeline import execute_run, run_exit_code, run_summary

    cfg = config(*overrides)
    compiled, stats = execute_run(cfg, list(overrides))
    return {**run_summary(cfg, compiled, stats), "exit_code": run_exit_code(cfg, stats, quiet=True)}


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    """The rows of one report and what the store holds besides them (for the CLI's messages)."""

    rows: list[ReportRow]  # after the filters
    every: list[ReportRow]  # before them
    models: list[str]  # every model in the store
    values: list[str]
    filters: dict[str, list[str]]  # what was asked, report.model included


def report_rows(cfg: DictConfig, filters: Mapping[str, Sequence[str]] | None = None) -> Report:
    """The metrics rows of the runs in ``cfg.store.path``, filtered (``target``, ``strategy``, ``direction``, ``model``)."""
    from runner.pipeline import load_spec
    from runner.report import tables
    from runner.store.store import open_store

    index = load_spec(cfg)
    params = dict(cfg.metrics)
    circle = {v.id: v.circle_index for v in index.values}
    wanted = {k: list(v) for k, v in (filters or {}).items()}
    if cfg.report.model:
        wanted["model"] = [cfg.report.model]
    with open_store(cfg.store.path, read_only=True) as store:
        every = tables.build_rows(store, index.value_ids, params, model=cfg.report.model, circle_index=circle)
        models = tables.stored_models(store)
    return Report(tables.filter_rows(every, wanted), every, models, index.value_ids, wanted)


def results_document(cfg: DictConfig, rep: Report) -> dict[str, Any]:
    """The versioned results document (runner/results.schema.json) of ``rep``'s rows and families."""
    from runner.report import tables
    from runner.store.store import open_store

    runs: list[dict[str, Any]] = []
    if rep.rows:  # an empty store gives an empty, still valid, document
        with open_store(cfg.store.path, read_only=True) as store:
            runs = results_doc.run_provenance(store, [r["run_id"] for r in rep.rows])
    metrics: dict[str, Any] = dict(OmegaConf.to_container(cfg.metrics, resolve=True))  # type: ignore[arg-type]
    return results_doc.build(
        rep.rows,
        tables.families(rep.rows),
        filters=rep.filters,
        metrics=metrics,
        values=rep.values,
        runs=runs,
        store=str(cfg.store.path),
    )


def report(*overrides: str, **filters: str | Sequence[str]) -> list[ReportRow]:
    """The report rows, as `vat report format=json` has them; filters as keywords (``target="security"``)."""
    return report_rows(config(*overrides), _filters(filters)).rows


def results(*overrides: str, **filters: str | Sequence[str]) -> dict[str, Any]:
    """The results document `vat report format=results` prints (schema version, provenance, rows, families)."""
    cfg = config(*overrides)
    return to_json(results_document(cfg, report_rows(cfg, _filters(filters))))


def _filters(filters: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    from runner.core.errors import VatError

    unknown = set(filters) - {"target", "strategy", "direction", "model"}
    if unknown:
        raise VatError(
            f"unknown report filter(s) {sorted(unknown)}; use target, strategy, direction or model"
        )
    return {k: [v] if isinstance(v, str) else list(v) for k, v in filters.items()}
