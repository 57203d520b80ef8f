"""Stage 3's one choice: online in this process, online across worker processes (pool), or the Batch API.

``execute_plan`` reads ``execution.mode`` (online | batch) and, online, ``execute`` picks one process
or a pool from ``execution.workers`` and the size of what is left to send. Both ways return the same
:class:`~runner.execute.options.ExecStats`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig

from runner.compile.plan import Request
from runner.core.errors import stop_reason
from runner.execute.batch import batch_options, check_mode, execute_batch, sidecar_path, warn_open_batches
from runner.execute.online import Writer, check_api_key, choose_workers, drive, litellm_module, pending
from runner.execute.options import ExecOptions, ExecStats
from runner.execute.rate_gate import RateGate
from runner.store.store import Store


def check_execution_mode(cfg: DictConfig) -> None:
    """Refuse a bad ``execution.mode`` or batch setting before the store is touched."""
    if check_mode(str(cfg.execution.mode)) == "batch":
        batch_options(cfg)


def execute_plan(
    cfg: DictConfig,
    requests: Sequence[Request],
    store: Store,
    opts: ExecOptions,
    run_id: str,
    skip: set[str] | frozenset[str] = frozenset(),
    record: Callable[[], None] | None = None,
) -> ExecStats:
    """Online execution, or the provider's Batch API with ``execution.mode=batch`` (same stats either way).

    ``record`` records the plan in the store: at once for batch mode, or while worker processes start.
    """
    sidecar = sidecar_path(cfg.store.path, run_id)  # next to the main store, also for sweep shards
    if check_mode(str(cfg.execution.mode)) == "batch":
        if record is not None:
            record()
        return execute_batch(requests, store, opts, batch_options(cfg), sidecar, run_id, skip=skip)
    warn_open_batches(sidecar, run_id)
    return execute(requests, store, opts, skip=skip, record=record)


def execute(
    requests: Sequence[Request],
    store: Store,
    opts: ExecOptions,
    skip: set[str] | frozenset[str] = frozenset(),
    record: Callable[[], None] | None = None,
) -> ExecStats:
    """Send every request whose key is not stored yet (nor in ``skip``); return what happened. Blocks until done.

    ``record`` (recording the plan in the store) runs before anything is written; with worker
    processes it runs while they start (each imports LiteLLM, ~3 s), so it costs no time.
    """
    stats = ExecStats(planned=len({r.key for r in requests}))
    todo = pending(requests, store.stored_keys([r.key for r in requests]) | set(skip))
    stats.to_send = len(todo)
    workers = stats.workers = choose_workers(opts.workers, len(todo)) if todo else 1
    if record is not None and (not todo or workers == 1):
        record()
    if not todo:
        return stats
    check_api_key(opts, todo)
    # Pool workers import LiteLLM themselves, in parallel; this process only writes.
    litellm = litellm_module({r.model for r in todo}) if workers == 1 else None
    start = time.perf_counter()
    progress, task_id = _progress(len(todo), opts.progress, workers)
    last = [0.0]

    def on_done(_: Request) -> None:
        if progress is None:
            return
        now = time.perf_counter()
        if now - last[0] > 0.1:  # redrawing per request would cost more than LiteLLM itself
            last[0] = now
            done = stats.answered + stats.failed
            progress.update(
                task_id,
                completed=done,
                errors=stats.failed,
                retries=stats.retries,
                rate=f"{done / max(now - start, 1e-9):.1f}/s",
            )

    try:
        if workers > 1:
            from runner.execute.pool import run_pool  # imports multiprocessing machinery: only when used

            run_pool(todo, opts, workers, store, stats, on_done, progress, record)  # starts the bar itself
        else:
            if progress is not None:
                progress.start()
            writer = Writer(store.commit, opts.flush_every, journal=store.journal_row)
            gate = RateGate(ceiling=opts.requests_per_s)
            try:
                asyncio.run(drive(litellm, todo, opts, writer, stats, on_done, gate))
            finally:
                stats.paused_s = gate.paused_s
    except KeyboardInterrupt as exc:
        stats.stopped = stop_reason(exc)
    finally:
        if progress is not None:
            progress.update(
                task_id, completed=stats.answered + stats.failed, errors=stats.failed, retries=stats.retries
            )
            progress.stop()
        stats.elapsed_s = time.perf_counter() - start
    return stats


def _progress(total: int, enabled: bool, workers: int = 1) -> tuple[Any, Any]:
    """A rich progress bar on stderr: done/total, rate, errors, ETA (and the worker processes, if several)."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from runner.core.display import err

    progress = Progress(
        TextColumn("[bold]judging[/bold]" + (f" ({workers} processes)" if workers > 1 else "")),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TextColumn("[red]{task.fields[errors]} errors[/red] · {task.fields[retries]} retries"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        refresh_per_second=4,
    )
    task_id = progress.add_task("judging", total=total, errors=0, retries=0, rate="")
    return progress, task_id
