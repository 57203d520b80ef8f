"""The run use case every feature calls: compile a run, record it, execute what is missing, keep a shard.

``execute_run`` is stage 1 → 2 → 4 → 3 for one composed config: load the specs, compile the plan,
record the run and its requests in the store, send what is not stored yet (``execute.dispatch`` picks
online, pool or batch). The CLI (``vat run``), sweeps, leaderboard releases and the known-answer
validation all call it; none of them imports the CLI.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from runner.compile.plan import compile_plan, gen_params
from runner.core import display
from runner.core.errors import disk_full_is_an_error
from runner.core.paths import git_revision
from runner.execute.dispatch import check_execution_mode, execute_plan
from runner.execute.online import check_api_key, pending
from runner.execute.options import FROM_CONF, ExecOptions, ExecStats
from runner.report.tables import model_caveat
from runner.spec.load import load_index
from runner.store.shards import export_shard
from runner.store.store import open_store


def provenance(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Where a run came from: git revision, package versions, overrides (never secrets)."""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    # A sweep's driver captures it (a worker may run from an installed copy with no git checkout).
    rev = os.environ.get("VAT_GIT_REVISION") or git_revision()  # of the package's checkout, not the cwd
    forwarded = [str(n) for n in (cfg.execution.get("forward_env") or [])] if "execution" in cfg else []
    return {
        "git_revision": rev,
        **({"forwarded_env": forwarded} if forwarded else {}),
        "source": "git checkout" if rev else "not a git checkout",
        "overrides": [o for o in overrides if "key" not in o.split("=", 1)[0].lower()],
        "versions": {n: version(n) for n in ("vat-bench", "litellm", "duckdb", "hydra-core", "xllamacpp")},
        "started_at": datetime.now().isoformat(timespec="seconds"),
    }


def spec_rows(index: Any) -> list[dict[str, Any]]:
    """Snapshot rows of the spec documents (stored with each run)."""
    docs: dict[str, Any] = {
        "values": {index.value_system.id: index.value_system},
        "scenarios": index.scenes,
        "strategies": index.strategies,
        "prompts": index.prompts,
    }
    rows = []
    for kind, items in docs.items():
        for doc_id, doc in items.items():
            version, digest = index.hashes[f"{kind}/{doc_id}"]
            rows.append(
                {
                    "kind": kind,
                    "id": doc_id,
                    "version": version,
                    "hash": digest,
                    "body": json.dumps(doc.model_dump(mode="json"), ensure_ascii=False),
                }
            )
    return rows


@lru_cache(maxsize=1)
def _price_map() -> dict[str, Any]:
    """LiteLLM's bundled price map, read as JSON (no litellm import, no network)."""
    dist = importlib.metadata.distribution("litellm")
    path = Path(str(dist.locate_file("litellm/model_prices_and_context_window_backup.json")))
    return json.loads(path.read_text()) if path.exists() else {}


def model_prices(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token for a LiteLLM model string, or None when the map does not know it."""
    prices = _price_map()
    for name in (model, model.split("/", 1)[-1]):
        entry = prices.get(name)
        if entry and "input_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))
    return None


def estimate(requests: list[Any], max_tokens: int) -> dict[str, Any]:
    """Estimated prompt tokens (≈ characters / 4) and cost of sending ``requests``."""
    tokens = sum(sum(len(m["content"]) for m in r.messages) // 4 + 4 * len(r.messages) for r in requests)
    cost = 0.0
    unknown = set()
    per_model: dict[str, int] = {}
    for r in requests:
        per_model[r.model] = (
            per_model.get(r.model, 0) + sum(len(m["content"]) for m in r.messages) // 4 + 4 * len(r.messages)
        )
    for model, n in per_model.items():
        count = sum(1 for r in requests if r.model == model)
        price = model_prices(model)
        if price is None:
            if not model.startswith(("local/", "sim/")):
                unknown.add(model)
            continue
        cost += n * price[0] + count * max_tokens * price[1]
    return {"est_prompt_tokens": tokens, "est_cost_usd": round(cost, 6), "unpriced_models": sorted(unknown)}


def has_tables(store: Any) -> bool:
    """Whether the store has been written to (a fresh file has no ``responses`` table)."""
    return bool(store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'responses'"))


def plan_numbers(
    cfg: DictConfig, plan: Any, shared: set[str] | None = None
) -> tuple[dict[str, Any], list[Any], set[str]]:
    """(numbers, requests still to send, keys already stored) for one compiled plan.

    With ``shared`` (a sweep job: the keys the driver found stored), the main store is not opened.
    """
    keys = plan.keys()
    stored: set[str] = set()
    if shared is not None:
        stored = shared.intersection(keys)
    elif Path(cfg.store.path).exists():
        with open_store(cfg.store.path, read_only=True) as store:
            stored = store.stored_keys(keys) if has_tables(store) else set()
    todo = pending(plan.requests, stored)
    numbers = {
        "run_id": plan.run.run_id,
        "model": plan.run.model,
        "strategy": plan.run.strategy,
        "target": plan.run.target,
        "direction": plan.run.direction,
        "scenes": len(plan.run.scene_ids),
        "requests": len(keys),
        "stored": len(stored),
        "to_send": len(todo),
        **plan.elicitation(),
    }
    numbers.update(estimate(todo, int(cfg.model.max_tokens)))
    return numbers, todo, stored


def execute_run(
    cfg: DictConfig,
    overrides: list[str],
    shard_dir: Path | None = None,
    shared: set[str] | None = None,
    shard_url: str | None = None,
) -> tuple[Any, Any]:
    """Compile, record and execute one run; return (plan, stats).

    With ``shard_dir`` (parallel sweep jobs), answers go to a private shard store exported to Parquet
    there (and uploaded to ``shard_url``, an fsspec folder, when given), and keys already in the main
    store are skipped: those in ``shared`` when the sweep driver passed them (the job then never opens
    the main store), else those the main store holds. `vat ingest` loads the shard later.
    """
    index = load_spec(cfg)
    compiled = compile_plan(index, cfg)
    run = compiled.run
    run_row = {
        "run_id": run.run_id,
        "created_at": datetime.now(),
        "model": run.model,
        "strategy": run.strategy,
        "target": run.target,
        "direction": run.direction,
        "split": run.split,
        "n_scenes": len(run.scene_ids),
        "config": json.dumps(run.config),
        "provenance": json.dumps({**provenance(cfg, overrides), "specs": run.spec_versions}),
    }
    opts = exec_options(cfg)
    # Asked once: what the main store already holds (the key check needs what is left to send; a shard
    # job skips what is stored).
    _, todo, stored_elsewhere = plan_numbers(cfg, compiled, shared)
    check_api_key(opts, todo)  # before the store is created or touched
    check_execution_mode(cfg)
    if shard_dir is None:
        with disk_full_is_an_error(cfg.store.path), open_store(cfg.store.path) as store:
            record = functools.partial(store.add_plan, run_row, compiled.requests, spec_rows(index))
            stats = execute_plan(cfg, compiled.requests, store, opts, run.run_id, record=record)
        return compiled, stats
    with disk_full_is_an_error(shard_dir), open_store(shard_dir / "shard.duckdb") as shard:
        record = functools.partial(shard.add_plan, run_row, compiled.requests, spec_rows(index))
        try:
            stats = execute_plan(
                cfg, compiled.requests, shard, opts, run.run_id, skip=stored_elsewhere, record=record
            )
        finally:
            export_shard(shard, shard_dir, shard_url)  # even after an interrupt: what was answered is kept
    return compiled, stats


def batch_together(units: Sequence[tuple[DictConfig, Any]], what: str) -> ExecStats:
    """Send the requests of several batch-mode runs (a sweep's jobs, a release's conditions) as one submission.

    Run one by one, N runs take N batch windows (up to 24 h each), and a sweep sends the pre condition
    its jobs share online first. Here the runs' requests are pooled by request key, so a request several
    runs need (the shared pre) is sent once, and submitted together: split only where one provider batch
    cannot hold them (another store, model or server; files over the batch limits). The runs, started
    after this, find every answer stored and submit nothing. ``units`` are (config, compiled plan) pairs.

    The pool's batches are recorded under a run id made from its keys (:func:`pooled_run_id`), so running
    the same sweep or release again re-attaches to the batches in flight instead of submitting them again.
    """
    from runner.execute.batch import batch_options, execute_batch, sidecar_path

    groups: dict[tuple[str, str, str], tuple[DictConfig, dict[str, Any]]] = {}
    for cfg, plan in units:
        where = (str(cfg.store.path), str(cfg.model.name), str(cfg.model.get("api_base") or ""))
        _, requests = groups.setdefault(where, (cfg, {}))
        for r in plan.requests:
            requests.setdefault(r.key, r)
    total = ExecStats()
    for (path, model, _), (cfg, by_key) in groups.items():
        requests = list(by_key.values())
        run_id = pooled_run_id(requests)
        display.note(
            f"batch mode: the {len(units)} {what} send their {len(requests):,} requests together ({model})"
        )
        with disk_full_is_an_error(path), open_store(path) as store:
            store.add_plan(None, requests, [])  # the requests alone: each run records itself when it runs
            stats = execute_batch(
                requests, store, exec_options(cfg), batch_options(cfg), sidecar_path(path, run_id), run_id
            )
        _add(total, stats)
    return total


def pooled_run_id(requests: Sequence[Any]) -> str:
    """The run id of a pooled batch submission: a hash of its request keys (the same pool, the same id)."""
    digest = hashlib.sha256("\n".join(sorted(r.key for r in requests)).encode()).hexdigest()
    return f"pooled-{digest[:16]}"


def _add(total: ExecStats, stats: ExecStats) -> None:
    """Sum ``stats`` into ``total`` (the first reason to stop wins)."""
    for name in (
        "planned",
        "to_send",
        "answered",
        "unparseable",
        "failed",
        "retries",
        "cost_usd",
        "elapsed_s",
    ):
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    total.stopped = total.stopped or stats.stopped
    for kind, n in stats.error_kinds.items():
        total.error_kinds[kind] = total.error_kinds.get(kind, 0) + n


def pooled_problem(stats: ExecStats) -> str | None:
    """Why a pooled batch submission left requests without an answer (the runs must not start), or None."""
    waiting = stats.to_send - stats.answered - stats.failed
    if stats.stopped:
        return f"the pooled batch submission stopped: {stats.stopped}"
    if waiting > 0:
        return (
            f"{waiting:,} request(s) are still in batches in flight (execution.batch_wait_s ran out); "
            "run the same command again to collect them"
        )
    if stats.failed:
        return (
            f"{stats.failed:,} request(s) of the pooled batches ended in errors (the store's `errors` table); "
            "run the same command again to submit only those"
        )
    return None


def exec_options(cfg: DictConfig) -> Any:
    """Execution options from the config (``execution.*`` and the model's generation parameters)."""
    # An in-process model serves one request at a time: more concurrency only queues requests behind
    # it, where their timeouts expire. Remote providers get the configured concurrency.
    in_process = cfg.model.name.startswith("local/") and not cfg.checkpoints
    rpm = cfg.execution.get("requests_per_minute")
    return ExecOptions(
        **{name: cfg.execution[name] for name in FROM_CONF},  # typed by the ExecutionConf schema
        concurrency=1 if in_process else int(cfg.execution.concurrency),
        # One process holds the embedded model; more would each load a copy and fight for the cores.
        workers=1 if in_process else int(cfg.execution.workers or 0),
        progress=bool(cfg.execution.progress) and cfg.format.value != "json",
        params=gen_params(cfg.model),
        api_key_env=cfg.model.api_key_env,
        requests_per_s=None if rpm is None else float(rpm) / 60.0,
    )


def run_summary(cfg: DictConfig, compiled: Any, stats: Any) -> dict[str, Any]:
    """The numbers of a finished run (printed, written to the job's result.json, or emitted as JSON)."""
    return {
        "run_id": compiled.run.run_id,
        "model": compiled.run.model,
        "strategy": compiled.run.strategy,
        "target": compiled.run.target,
        "direction": compiled.run.direction,
        "store": cfg.store.path,
        "requests": stats.planned,
        "already_stored": stats.planned - stats.to_send,
        "to_send": stats.to_send,
        # What reached the provider: answered or finally failed. Less than to_send when a run stops early
        # (budget, interrupt, abort); the rest was never sent and the rerun sends it.
        "sent": stats.answered + stats.failed,
        "not_sent": stats.to_send - stats.answered - stats.failed,
        "answered": stats.answered,
        "unparseable": stats.unparseable,
        "failed": stats.failed,
        "retries": stats.retries,
        "cost_usd": round(stats.cost_usd, 6),
        "elapsed_s": round(stats.elapsed_s, 2),
        "judgments_per_s": round(stats.answered / stats.elapsed_s, 2) if stats.elapsed_s else None,
        "workers": stats.workers,
        "stopped": stats.stopped,
        "rate_limit_pause_s": round(stats.paused_s, 2),
        "errors_by_kind": stats.error_kinds,
    }


def run_exit_code(cfg: DictConfig, stats: Any, quiet: bool = False) -> int:
    """0 when every request was answered; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); 3 budget, abort or failed requests (with a message)."""
    messages = {
        "interrupted": "interrupted; answers received so far are stored — run the same command again to resume",
        "terminated": "terminated (SIGTERM); answers received so far are stored — run the same command again "
        "to resume",
        "budget": f"stopped before exceeding execution.budget_usd={cfg.execution.budget_usd}; "
        "raise it and run the same command again to resume",
    }
    if stats.stopped:
        code = {"interrupted": 130, "terminated": 143}.get(stats.stopped, 3)
        message = messages.get(stats.stopped, f"run aborted: {stats.stopped}")
    elif stats.failed:
        code = 3
        message = (
            f"{stats.failed} request(s) ended in errors (recorded in the store's `errors` table); "
            "run the same command again to retry only those"
        )
    elif stats.unusable():
        code, message = 3, stats.unusable()
    else:
        if not quiet and stats.unparseable_warning():
            display.warn(stats.unparseable_warning())
        return 0
    if not quiet:
        display.error(message)
    return code


def print_run_summary(cfg: DictConfig, s: dict[str, Any]) -> None:
    """Print a run's summary (JSON on stdout with format=json) and the model caveat."""
    if cfg.format.value == "json":
        display.emit_json(s)
        return
    if "requests" not in s:
        return
    display.out.print(
        f"run [bold]{s['run_id']}[/bold]: {s['requests']:,} requests, {s['already_stored']:,} already stored, "
        f"{s['sent']:,} sent → {s['answered']:,} answered ({s['unparseable']} unparseable), {s['failed']} failed, "
        + (f"{s['not_sent']:,} not sent, " if s["not_sent"] else "")
        + f"{s['retries']} retries, ${s['cost_usd']:.4f}, {s['elapsed_s']:.1f} s"
        + (f" ({s['judgments_per_s']:.2f} judgments/s)" if s["judgments_per_s"] else "")
    )
    display.note(
        f"stored in {s['store']} — query it with `duckdb {s['store']}`; see the numbers with `vat report`"
    )
    caveat = model_caveat(cfg.model.name)
    if caveat:
        display.warn(caveat)


def load_spec(cfg: DictConfig) -> Any:
    """The spec index of ``cfg.spec_dir``."""
    return load_index(cfg.spec_dir)
