"""The Hydra app: ``vat run`` as a real Hydra app (``-m``, launchers, experiments), shards and ingest.

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
import json
import os
import platform
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.core import display
from runner.core.errors import VatError
from runner.sweep.scaleout import _PARALLEL_LAUNCHERS

_LAST_RC: list[int] = []


# ---------------------------------------------------------------- the Hydra app


def hydra_task(cfg: DictConfig) -> Any:
    """One job of ``vat run`` (single run or one point of a sweep); writes ``result.json`` in its folder.

    In a sweep it returns the job's summary (with its ``rc``): the launcher hands it back to the driver,
    which takes the sweep's exit code from these results (runner.sweep.scaleout), not from files.
    """
    from hydra.core.hydra_config import HydraConfig

    from runner.pipeline import execute_run, run_exit_code, run_summary
    from runner.sweep.scaleout import join, read_keys

    hc = HydraConfig.get()
    multirun = getattr(hc.mode, "name", None) == "MULTIRUN"
    overrides = list(hc.overrides.task)
    job_dir = Path(hc.runtime.output_dir)
    shard_dir = job_dir / "shard" if _shard_mode(cfg, hc) else None
    root = cfg.store.get("shard_dir")
    shard_url = join(str(root), str(hc.job.num)) if shard_dir and root and "://" in str(root) else None
    if shard_dir and root and not shard_url:
        shard_dir = Path(str(root)) / str(hc.job.num) / "shard"  # the job folder's shard/ by default
    try:
        shared = read_keys(str(cfg.store.stored_keys)) if shard_dir and cfg.store.get("stored_keys") else None
        compiled, stats = execute_run(cfg, overrides, shard_dir=shard_dir, shared=shared, shard_url=shard_url)
        summary = run_summary(cfg, compiled, stats)
        rc = run_exit_code(cfg, stats, quiet=multirun)
    except VatError as exc:
        display.error(str(exc))
        summary, rc = {"error": str(exc)}, exc.exit_code
        if not multirun:
            # A rejected single run leaves nothing behind: Hydra made its folder before we could check.
            # Only Hydra's own files are removed, never another run's results in a shared run dir.
            shutil.rmtree(job_dir / ".hydra", ignore_errors=True)
            with contextlib.suppress(OSError):
                job_dir.rmdir()  # only if now empty
            _LAST_RC.append(rc)
            return rc
    except Exception as exc:  # a sweep job reports its crash to the driver rather than vanishing
        if not multirun:
            raise
        traceback.print_exc()
        summary, rc = {"error": f"{type(exc).__name__}: {exc}"}, 1
    names = [str(n) for n in (cfg.execution.get("forward_env") or [])]
    summary.update(
        {
            "rc": rc,
            "overrides": overrides,
            "shard": shard_url or (str(shard_dir) if shard_dir else None),
            # Names only: whether each forwarded variable reached this worker, never its value.
            "forwarded_env": {n: n in os.environ for n in names},
            "node": _node(),
        }
    )
    job_dir.mkdir(parents=True, exist_ok=True)  # another process's rejected run may share a fixed run dir
    (job_dir / "result.json").write_text(json.dumps(summary, default=str, indent=1))
    if not multirun:
        from runner.pipeline import print_run_summary

        print_run_summary(cfg, summary)
    _LAST_RC.append(rc)
    return summary if multirun else rc


def _node() -> str:
    """Where the job ran: its Ray node's address on a Ray worker, else the host name."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            return str(ray.util.get_node_ip_address())
    return platform.node()


def _shard_mode(cfg: DictConfig, hc: Any) -> bool:
    """Write a shard instead of the store when jobs run in parallel processes (or when asked to)."""
    mode = str(cfg.store.shards)
    if mode in ("always", "never"):
        return mode == "always"
    launcher = str(hc.launcher.get("_target_", ""))
    return hc.mode.name == "MULTIRUN" and any(name in launcher for name in _PARALLEL_LAUNCHERS)


def run_hydra(argv: list[str]) -> int:
    """Run ``vat run`` through Hydra with ``argv`` (overrides, ``-m``, ``--cfg`` ...); return the exit code."""
    from runner.config import register_configs

    register_configs()
    _LAST_RC.clear()
    multirun = "-m" in argv or "--multirun" in argv
    if multirun and not any(a.startswith("--") and a != "--multirun" for a in argv):
        return _run_sweep(argv)
    code, _ = _hydra_main(argv)
    if code is not None:
        return code
    return _LAST_RC[-1] if _LAST_RC else 0


def _hydra_main(argv: list[str]) -> tuple[int | None, Any]:
    """Hydra's main with ``argv``: (exit code if Hydra exited, the sweeper's returns in a multirun).

    In a multirun the returns are the sweeper's list of ``JobReturn`` batches, or the exception the
    launcher raised (a killed joblib worker, a submitit timeout): Hydra would print it and exit 1,
    leaving the driver nothing to ingest or report from.
    """
    import hydra
    from hydra._internal.hydra import Hydra

    from runner.config import conf_dir

    captured: list[Any] = []
    original = Hydra.multirun

    def multirun(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ret = original(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the driver, which reports it
            captured.append(exc)
            return None
        captured.append(ret)  # hydra.main drops the sweeper's returns: keep them for the driver
        return ret

    saved = sys.argv
    sys.argv = ["vat run", *argv]
    Hydra.multirun = multirun  # type: ignore[method-assign]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(hydra_task)()
    except SystemExit as exc:  # Hydra exits on composition errors after printing them
        code = exc.code if isinstance(exc.code, int) else 2
        return (2 if code == 1 else code), None
    finally:
        sys.argv = saved
        Hydra.multirun = original  # type: ignore[method-assign]
    return None, captured[0] if captured else None


def _run_sweep(argv: list[str]) -> int:
    """A multirun through the driver (runner.sweep.scaleout): resolve, launch, take results, ingest, summarise."""
    from runner.sweep import scaleout

    as_json = "format=json" in argv
    plan = scaleout.plan_sweep_run(argv)
    scaleout.prepare(argv, plan)
    launch_error = None
    returns = None
    ingested: Any
    code: int | None = None
    try:
        with scaleout.ray_session(plan, argv):
            code, returns = _hydra_main(scaleout.with_overrides(argv, plan))
    except Exception as exc:  # Ray could not start or join its cluster
        launch_error = scaleout.report_failure(exc, plan.sweep_dir)
    if isinstance(returns, BaseException):  # a killed worker (joblib), a scheduler's timeout (submitit) ...
        launch_error, returns = scaleout.report_failure(returns, plan.sweep_dir), None
    if code is not None and returns is None and launch_error is None:
        return code  # Hydra refused the overrides (it printed why)
    jobs, problems = scaleout.job_results(returns, plan.expected_jobs)
    if launch_error:
        problems.insert(0, launch_error)
    try:
        ingested = scaleout.ingest_sweep(plan)
    except VatError as exc:
        problems.append(f"{exc}; the shards stay under {plan.shard_root} for `vat ingest`")
        ingested = False
    if ingested:
        shards, with_shared, counts = ingested
        display.note(
            f"ingested {shards} shard(s)"
            + (" and the shared answers" if with_shared else "")
            + f" into {plan.store_path}: "
            + ", ".join(f"{k} +{v}" for k, v in counts.items() if v)
        )
    LAST_SWEEP_JOBS[:] = jobs
    hidden = set(plan.overrides)
    _print_sweep_table(jobs, hidden)
    rc = scaleout.sweep_exit_code(jobs, problems, plan.expected_jobs)
    if ingested is None and plan.shard_root and jobs:
        problems.append(f"no shard was found under {plan.shard_root}, so nothing was ingested")
        rc = max(rc, 1)
    failed = [j for j in jobs if j.get("rc")]
    cost = plan.shared_cost_usd + sum(float(j.get("cost_usd") or 0) for j in jobs)
    display.note(
        f"sweep spent ${cost:.4f}"
        + (f" (shared requests ${plan.shared_cost_usd:.4f})" if plan.shared_cost_usd else "")
        + (
            f" of execution.budget_usd={plan.budget_usd} for the whole sweep"
            if plan.budget_usd is not None
            else ""
        )
    )
    if plan.job_concurrency is not None:
        display.note(
            f"each job had execution.concurrency={plan.job_concurrency} of the sweep's {plan.concurrency} "
            f"({plan.at_once} job(s) at once)"
        )
    if plan.job_requests_per_minute is not None:
        display.note(
            f"each job had execution.requests_per_minute={plan.job_requests_per_minute:g} of the sweep's "
            f"{plan.requests_per_minute:g}"
        )
    display.note(
        f"sweep finished: {len(jobs)} of {plan.expected_jobs} job(s) returned, {len(failed)} with errors"
    )
    for p in problems:
        display.error(p)
    if as_json:
        display.emit_json(
            {
                "jobs": jobs,
                "failed": len(failed),
                "problems": problems,
                "cost_usd": round(cost, 6),
                "per_job": plan.shares(),
                "rc": rc,
            }
        )
    return rc


LAST_SWEEP_JOBS: list[dict[str, Any]] = []


class IngestShards(Callback):
    """Hydra callback kept for configs that name it; the sweep driver (runner.sweep.scaleout) does its work.

    It sent the shared requests first and ingested the shards from the sweep folder; both now happen in
    the driver, which sees the launcher's job results and works when the workers share no disk with it.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Nothing: the driver sent the shared requests before Hydra started."""
        return None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Nothing: the driver ingests once the launcher has returned the job results."""
        return None


def _print_sweep_table(jobs: list[dict[str, Any]], hidden: set[str] | None = None) -> None:
    """The jobs' numbers, one row each; the driver's own resolved overrides (``hidden``) are left out."""
    from rich.table import Table

    table = Table(title="sweep", title_justify="left")
    for col in ("job", "overrides", "requests", "sent", "answered", "failed", "cost $", "s", "rc"):
        table.add_column(col)
    for r in sorted(jobs, key=lambda j: int(j.get("job", 0))):
        table.add_row(
            str(r.get("job", "")),
            " ".join(o for o in r.get("overrides", []) if o not in (hidden or set())) or r.get("error", ""),
            str(r.get("requests", "")),
            str(r.get("sent", "")),
            str(r.get("answered", "")),
            str(r.get("failed", "")),
            f"{r.get('cost_usd', 0):.4f}",
            f"{r.get('elapsed_s', 0):.1f}",
            str(r.get("rc")),
        )
    display.err.print(table)
