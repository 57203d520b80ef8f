"""Planning a sweep: its jobs (Hydra's sweep syntax expanded), their costs, and the requests they share."""

from __future__ import annotations

from typing import Any

from runner.core import display

JobPlan = tuple[list[str], Any, Any]
"""One job of a sweep: its overrides, its composed config and its compiled plan."""


def job_plans(argv: list[str]) -> list[JobPlan]:
    """Every job of the sweep, composed and compiled once (the spec index is loaded once)."""
    from runner.compile.plan import compile_plan
    from runner.config import compose
    from runner.spec.load import load_index

    out: list[JobPlan] = []
    index = None
    for job in sweep_jobs(argv):
        cfg = compose(job)
        index = index or load_index(cfg.spec_dir)
        out.append((job, cfg, compile_plan(index, cfg)))
    return out


def shared_first(argv: list[str], jobs: list[JobPlan] | None = None) -> float:
    """Execute, into the main store, every request key that more than one job of the sweep needs.

    Returns what that cost (USD), which the sweep's budget then no longer has for the jobs. ``jobs``
    are the sweep's :func:`job_plans` when the caller has them already.
    """
    from collections import Counter

    from runner.execute.dispatch import execute
    from runner.pipeline import exec_options
    from runner.store.store import open_store

    plans = [(cfg, plan) for _, cfg, plan in (jobs if jobs is not None else job_plans(argv))]
    uses = Counter(k for _, p in plans for k in p.keys())  # noqa: SIM118 - Plan.keys() is a list
    shared = {k for k, n in uses.items() if n > 1}
    if not shared:
        return 0.0
    spent = 0.0
    by_store: dict[str, list[Any]] = {}
    for cfg, plan in plans:
        by_store.setdefault(str(cfg.store.path), []).extend(r for r in plan.requests if r.key in shared)
    for path, requests in by_store.items():
        cfg = next(c for c, _ in plans if str(c.store.path) == path)
        display.note(
            f"sending {len({r.key for r in requests}):,} requests shared by several jobs once, before the sweep"
        )
        with open_store(path) as store:
            store.add_plan(None, requests, [])
            spent += execute(requests, store, exec_options(cfg)).cost_usd
    return spent


def sweep_jobs(argv: list[str]) -> list[list[str]]:
    """Expand sweep overrides (``a=1,2 b=x,y`` and an experiment's ``hydra.sweeper.params``) into jobs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from runner.config import compose

    fixed = [a for a in argv if a not in ("-m", "--multirun")]
    base = compose([a for a in fixed if "," not in a.split("=", 1)[-1] or a.startswith("hydra")], hydra=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create()
    overrides = parser.parse_overrides(params + fixed)
    return BasicSweeper.split_arguments(overrides, None)[0]


def plan_sweep(argv: list[str]) -> dict[str, Any]:
    """Plan every job of a sweep: requests, cache hits, tokens and cost per job, and the sweep's total.

    The total counts each request key once: jobs that share pre-condition requests pay for them once.
    """
    from runner.pipeline import estimate, plan_numbers

    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    stored: set[str] = set()
    todo_all: dict[str, Any] = {}
    max_tokens = 0
    for job, cfg, compiled in job_plans(argv):
        numbers, todo, stored_keys = plan_numbers(cfg, compiled)
        rows.append({"overrides": job, **numbers})
        keys.update(compiled.keys())
        stored.update(stored_keys)
        for r in todo:
            todo_all.setdefault(r.key, r)
        max_tokens = max(max_tokens, int(cfg.model.max_tokens))
    total = {
        "jobs": len(rows),
        "requests": len(keys),
        "stored": len(stored),
        "to_send": len(todo_all),
        **estimate(list(todo_all.values()), max_tokens),
    }
    return {"jobs": rows, "total": total}
