"""Sweeps: ``vat run`` as a real Hydra app (``-m``, launchers, experiments), shards and ingest.

``vat run`` hands its arguments to Hydra, so everything Hydra offers works: ``-m`` sweeps over any key,
``hydra/launcher=joblib`` for parallel processes, the Ray or submitit launchers for clusters,
``experiment=<name>`` bundles and ``--cfg job``. DuckDB allows one writing process per file, so jobs
launched in parallel processes each write a *shard* (a DuckDB file exported to Parquet) in their job
folder, and the :class:`IngestShards` callback (or ``vat ingest``) loads the shards into the store at the
end of the sweep. Every load is keyed by request key, so nothing is lost or duplicated when two jobs
obtained the same pre-condition answers.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.core import display
from runner.core.errors import VatError
from runner.store.shards import ingest

_PARALLEL_LAUNCHERS = ("joblib", "ray", "submitit", "rq")
_LAST_RC: list[int] = []


# ---------------------------------------------------------------- the Hydra app


def hydra_task(cfg: DictConfig) -> int:
    """One job of ``vat run`` (single run or one point of a sweep); writes ``result.json`` in its folder."""
    from hydra.core.hydra_config import HydraConfig

    from runner.pipeline import execute_run, run_exit_code, run_summary

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    job_dir = Path(hc.runtime.output_dir)
    shard_dir = job_dir / "shard" if _shard_mode(cfg, hc) else None
    try:
        compiled, stats = execute_run(cfg, overrides, shard_dir=shard_dir)
        summary = run_summary(cfg, compiled, stats)
        rc = run_exit_code(cfg, stats, quiet=hc.mode.name == "MULTIRUN")
    except VatError as exc:
        display.error(str(exc))
        summary, rc = {"error": str(exc)}, exc.exit_code
        if hc.mode.name != "MULTIRUN":
            # A rejected single run leaves nothing behind: Hydra made its folder before we could check.
            # Only Hydra's own files are removed, never another run's results in a shared run dir.
            shutil.rmtree(job_dir / ".hydra", ignore_errors=True)
            with contextlib.suppress(OSError):
                job_dir.rmdir()  # only if now empty
            _LAST_RC.append(rc)
            return rc
    summary.update({"rc": rc, "overrides": overrides, "shard": str(shard_dir) if shard_dir else None})
    job_dir.mkdir(parents=True, exist_ok=True)  # another process's rejected run may share a fixed run dir
    (job_dir / "result.json").write_text(json.dumps(summary, default=str, indent=1))
    if hc.mode.name != "MULTIRUN":
        from runner.pipeline import print_run_summary

        print_run_summary(cfg, summary)
    _LAST_RC.append(rc)
    return rc


def _shard_mode(cfg: DictConfig, hc: Any) -> bool:
    """Write a shard instead of the store when jobs run in parallel processes (or when asked to)."""
    mode = str(cfg.store.shards)
    if mode in ("always", "never"):
        return mode == "always"
    launcher = str(hc.launcher.get("_target_", ""))
    return hc.mode.name == "MULTIRUN" and any(name in launcher for name in _PARALLEL_LAUNCHERS)


def run_hydra(argv: list[str]) -> int:
    """Run ``vat run`` through Hydra with ``argv`` (overrides, ``-m``, ``--cfg`` ...); return the exit code."""
    import hydra

    from runner.config import conf_dir, register_configs

    register_configs()
    _LAST_RC.clear()
    saved = sys.argv
    sys.argv = ["vat run", *argv]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(hydra_task)()
    except SystemExit as exc:  # Hydra exits on composition errors after printing them
        code = exc.code if isinstance(exc.code, int) else 2
        return 2 if code == 1 else code
    finally:
        sys.argv = saved
    multirun = "-m" in argv or "--multirun" in argv
    if multirun:
        return _sweep_exit_code(as_json="format=json" in argv)
    return _LAST_RC[-1] if _LAST_RC else 0


def _sweep_exit_code(as_json: bool = False) -> int:
    """After a multirun: the worst exit code of its jobs (read from their result.json files).

    With ``as_json`` (``format=json``), stdout gets one document: every job's result, in job order.
    """
    from runner.core.display import emit_json, note

    jobs = [json.loads(Path(p).read_text()) for p in LAST_SWEEP_RESULTS]
    if _LAST_RC:  # basic launcher: the jobs ran in this process
        codes = list(_LAST_RC)
    else:
        codes = [job.get("rc", 1) for job in jobs]
    failed = [c for c in codes if c]
    note(f"sweep finished: {len(codes)} job(s), {len(failed)} with errors")
    if as_json:
        emit_json({"jobs": jobs, "failed": len(failed), "rc": max(codes) if codes else 0})
    return max(codes) if codes else 0


def job_order(path: str) -> tuple[int, str]:
    """Sort key of a job's result.json: its job number as a number (0, 1, 2, ..., 10), not as text."""
    name = Path(path).parent.name
    return (int(name) if name.isdigit() else 1 << 30, path)


LAST_SWEEP_RESULTS: list[str] = []


class IngestShards(Callback):
    """Hydra callback around a sweep: shared requests first, shards ingested and a table at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """With a parallel launcher, send the requests that several jobs share (the pre condition) first.

        Parallel jobs cannot see each other's shards, so each would send the shared pre-condition
        requests again; doing them once here, into the store every job reads, avoids paying twice.
        """
        if not any(name in str(config.hydra.launcher.get("_target_", "")) for name in _PARALLEL_LAUNCHERS):
            return
        try:
            shared_first(list(config.hydra.overrides.task))
        except VatError as exc:
            display.error(str(exc))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Ingest the shards under the sweep folder into ``store.path``."""
        sweep_dir = Path(config.hydra.sweep.dir)
        results = sorted(glob.glob(str(sweep_dir / "**" / "result.json"), recursive=True), key=job_order)
        LAST_SWEEP_RESULTS[:] = results
        shards = [str(Path(r).parent / "shard") for r in results if (Path(r).parent / "shard").is_dir()]
        if shards:
            counts = ingest(shards, str(config.store.path))
            display.note(
                f"ingested {len(shards)} shard(s) into {config.store.path}: "
                + ", ".join(f"{k} +{v}" for k, v in counts.items() if v)
            )
        _print_sweep_table(results)


def _print_sweep_table(results: list[str]) -> None:
    from rich.table import Table

    table = Table(title="sweep", title_justify="left")
    for col in ("job", "overrides", "requests", "sent", "answered", "failed", "cost $", "s", "rc"):
        table.add_column(col)
    for path in results:
        r = json.loads(Path(path).read_text())
        table.add_row(
            Path(path).parent.name,
            " ".join(r.get("overrides", [])),
            str(r.get("requests", "")),
            str(r.get("sent", "")),
            str(r.get("answered", "")),
            str(r.get("failed", "")),
            f"{r.get('cost_usd', 0):.4f}",
            f"{r.get('elapsed_s', 0):.1f}",
            str(r.get("rc")),
        )
    display.err.print(table)


def shared_first(argv: list[str]) -> None:
    """Execute, into the main store, every request key that more than one job of the sweep needs."""
    from collections import Counter

    from runner.compile.plan import compile_plan
    from runner.config import compose
    from runner.execute.dispatch import execute
    from runner.pipeline import exec_options
    from runner.spec.load import load_index
    from runner.store.store import open_store

    plans = []
    index = None
    for job in sweep_jobs(argv):
        cfg = compose(job)
        index = index or load_index(cfg.spec_dir)
        plans.append((cfg, compile_plan(index, cfg)))
    uses = Counter(k for _, p in plans for k in p.keys())  # noqa: SIM118 - Plan.keys() is a list
    shared = {k for k, n in uses.items() if n > 1}
    if not shared:
        return
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
            execute(requests, store, exec_options(cfg))


# ---------------------------------------------------------------- shards and ingest


# ---------------------------------------------------------------- planning a sweep


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
    from runner.compile.plan import compile_plan
    from runner.config import compose
    from runner.pipeline import estimate, plan_numbers
    from runner.spec.load import load_index

    index = None
    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    stored: set[str] = set()
    todo_all: dict[str, Any] = {}
    max_tokens = 0
    for job in sweep_jobs(argv):
        cfg = compose(job)
        index = index or load_index(cfg.spec_dir)
        compiled = compile_plan(index, cfg)
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
