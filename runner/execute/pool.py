"""Stage 3 across cores: the plan's missing requests, split by request key over N worker processes.

One process of ``litellm.acompletion`` tops out near 135 requests/s over HTTP (~9 ms of CPU per call,
FACTS.md), below what a high-tier provider admits. ``execution.workers=N`` runs N processes, each with
its own event loop and LiteLLM, each sending its share of the requests (``runner.execute.online.drive``, the
same loop a single process runs). They share one budget:

- **concurrency**: ``execution.concurrency`` is split between the workers, so the provider never sees
  more requests in flight than one process would send;
- **rate**: one :class:`runner.execute.rate_gate.RateGate` in shared memory: a 429 or a Retry-After seen by any
  worker pauses and paces all of them, and ``execution.requests_per_minute`` caps them together;
- **money**: ``execution.budget_usd`` is split evenly (the shares cost the same, being split by key).

This process is the single writer of the store: workers send their rows over a queue, and it commits
them exactly as a single process does. Each worker first appends every row it receives to its own
journal beside the store (``<store>.journal.w<i>``), so an answer is safe the moment it arrives, even
if this process is killed before the row reaches it; the next open of the store replays the journals
(skipping what was committed) and this process removes them once everything is committed.
Ctrl-C stops every worker (each keeps the answers it has received); a worker that dies takes only its
in-flight requests with it, and the next run sends the requests it had not answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue as queue_mod
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from runner.compile.plan import Request
from runner.core.errors import stop_reason
from runner.execute.online import Writer, drive, litellm_module
from runner.execute.options import ExecOptions, ExecStats
from runner.execute.rate_gate import RateGate
from runner.store.store import Journal, Store

ROWS_PER_MESSAGE = 64
"""Rows a worker batches into one queue message (fewer pickles); it also sends every ``SEND_EVERY_S``."""
SEND_EVERY_S = 0.05
POOL_FLUSH_EVERY = 2048
"""Rows per store commit in a pool run (at least ``execution.flush_every``)."""
DRAIN_S = 15.0
"""After Ctrl-C, how long to wait for the workers to hand over the answers they received."""


def split(todo: list[Request], n: int) -> list[list[Request]]:
    """``n`` shares of ``todo`` by request key (the key is a hex digest: its leading digits are uniform).

    Each share keeps plan order, so a worker's consecutive requests still share their scene prefix.
    """
    shares: list[list[Request]] = [[] for _ in range(n)]
    for r in todo:
        shares[int(r.key[:8], 16) % n].append(r)
    return shares


def _context() -> Any:
    """Fork where the platform has it (a worker starts in milliseconds, sharing the plan), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def worker_options(opts: ExecOptions, index: int, n: int) -> ExecOptions:
    """Worker ``index``'s share of the concurrency and of the budget; no progress bar of its own."""
    concurrency = opts.concurrency // n + (1 if index < opts.concurrency % n else 0)
    budget = opts.budget_usd / n if opts.budget_usd is not None else None
    return replace(opts, concurrency=max(1, concurrency), budget_usd=budget, progress=False, workers=1)


def run_pool(
    todo: list[Request],
    opts: ExecOptions,
    workers: int,
    store: Store,
    stats: ExecStats,
    on_done: Any,
    progress: Any = None,
    record: Callable[[], None] | None = None,
) -> None:
    """Send ``todo`` from ``workers`` processes; write every row they return to ``store`` (this process).

    ``stats`` is counted from the rows as they arrive, so a worker that dies still has its answers
    counted. ``on_done(None)`` is called after each batch of rows (it redraws the progress bar).
    ``record`` (recording the plan) runs once the workers are started, while they import LiteLLM.
    """
    ctx = _context()
    n = max(1, min(workers, len(todo)))
    state = ctx.RawArray("d", RateGate.new_state())
    lock = ctx.Lock()
    rows: Any = ctx.Queue()
    stop = ctx.Event()
    shares = split(todo, n)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                i,
                shares[i],
                worker_options(opts, i, n),
                state,
                lock,
                rows,
                stop,
                os.getpid(),
                store.worker_journal(i),
            ),
            name=f"vat-worker-{i}",
            daemon=True,  # never outlive this process
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    # The workers journaled every row, so bigger commits risk nothing, and each commit costs this
    # process CPU that the workers need (~7 ms per DuckDB commit).
    writer = Writer(store.commit, max(opts.flush_every, POOL_FLUSH_EVERY))
    try:
        if record is not None:
            record()  # no row is written before the plan is recorded: rows wait in the queue
        if progress is not None:
            progress.start()  # after the forks: the bar's refresh thread must not be copied into a worker
        _collect(procs, rows, stop, writer, stats, on_done)
        stats.paused_s = state[RateGate.PAUSED]  # the gate the workers shared
    except BaseException:
        stop.set()  # Ctrl-C or an error while recording the plan: no worker keeps sending
        raise
    finally:
        for p in procs:
            p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join()
        _drain(rows, writer, stats, stop, set())  # rows the last workers sent while exiting
        writer.flush()
        store.drop_worker_journals()  # everything they held is committed now


def _collect(procs: list[Any], rows: Any, stop: Any, writer: Writer, stats: ExecStats, on_done: Any) -> None:
    """Take rows until every worker has finished or died; Ctrl-C asks them all to stop."""
    finished: set[int] = set()
    deadline: float | None = None
    while len(finished) < len(procs):
        try:
            msg = rows.get(timeout=0.2)
        except queue_mod.Empty:
            msg = None
        except KeyboardInterrupt as exc:
            if deadline is not None:  # a second Ctrl-C: stop waiting for the workers
                stats.stopped = stop_reason(exc)
                raise
            stop.set()
            stats.stopped = stop_reason(exc)
            deadline = time.monotonic() + DRAIN_S
            continue
        if msg is not None:
            _handle(msg, writer, stats, stop, finished)
            on_done(None)
            continue
        for i, p in enumerate(procs):
            if i not in finished and not p.is_alive():
                _drain(rows, writer, stats, stop, finished)  # its last rows may still be in the pipe
                if i not in finished:
                    finished.add(i)
                    stats.stopped = stats.stopped or (
                        f"worker process {i} died (exit code {p.exitcode}); run the same command again "
                        "to send its remaining requests"
                    )
        if deadline is not None and time.monotonic() > deadline:
            return


def _drain(rows: Any, writer: Writer, stats: ExecStats, stop: Any, finished: set[int]) -> None:
    """Handle every message already waiting in the queue."""
    while True:
        try:
            msg = rows.get(timeout=0.05)
        except queue_mod.Empty:
            return
        _handle(msg, writer, stats, stop, finished)


def _handle(msg: tuple[Any, ...], writer: Writer, stats: ExecStats, stop: Any, finished: set[int]) -> None:
    """One message from a worker: rows to write (and count), or its final word."""
    kind, index = msg[0], msg[1]
    if kind == "rows":
        for row in msg[2]:
            writer.add(response=row)
            stats.count(response=row)
        for err in msg[3]:
            writer.add(error=err)
            stats.count(error=err)
    elif kind == "done":
        finished.add(index)
        stopped = msg[2]
        if stopped and stopped not in ("interrupted", "terminated"):
            if stopped != "budget":
                stop.set()  # an abort (credentials, unreachable endpoint) holds for every worker
            stats.stopped = stats.stopped or stopped


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the writing process dies.

    A SIGKILLed run then leaves no orphans sending requests that nobody will record.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(
    index: int,
    share: list[Request],
    opts: ExecOptions,
    state: Any,
    lock: Any,
    rows: Any,
    stop: Any,
    parent: int,
    journal: Journal,
) -> None:
    """A worker process: send ``share`` through LiteLLM, journal and ship the rows, say how it ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    _die_with_parent()
    if os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took effect
    # to_send sizes the "cannot reach" rule (two failed attempts per request for a small plan): left at
    # 0 it stopped a 2,000-request worker after its first two timeouts.
    stats = ExecStats(to_send=len(share))
    # Every row is journaled the moment it arrives, then shipped to the writing process in batches.
    writer = Writer(
        lambda responses, errors: rows.put(("rows", index, responses, errors)),
        ROWS_PER_MESSAGE,
        journal=journal.append,
        max_age_s=SEND_EVERY_S,
    )
    try:
        litellm = litellm_module({r.model for r in share})
        # The full ceiling, not a share: the gate's state (the next send slot) is shared by every worker.
        gate = RateGate(state=state, lock=lock, ceiling=opts.requests_per_s)
        asyncio.run(_run_until_stopped(litellm, share, opts, writer, stats, gate, stop))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which ends the run with it
        stats.stopped = f"worker process {index} failed: {type(exc).__name__}: {exc}"
    finally:
        writer.flush()
        rows.put(("done", index, stats.stopped))
        rows.close()
        rows.join_thread()  # the queue's feeder thread must hand everything over before we exit
        journal.close()  # an empty journal goes; one with rows stays until the writer commits them


async def _run_until_stopped(
    litellm: Any,
    share: list[Request],
    opts: ExecOptions,
    writer: Writer,
    stats: ExecStats,
    gate: RateGate,
    stop: Any,
) -> None:
    """``drive`` the share; cancel it when the parent sets ``stop`` or disappears."""
    parent = os.getppid()
    task = asyncio.ensure_future(drive(litellm, share, opts, writer, stats, lambda _: None, gate))

    async def watch() -> None:
        while not task.done():
            if stop.is_set() or os.getppid() != parent:
                stats.stopped = stats.stopped or "interrupted"
                task.cancel()
                return
            # A stop (Ctrl-C, abort) should reach every worker within a request or two.
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        watcher.cancel()
