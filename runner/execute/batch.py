"""Stage 3 in batch mode (``execution.mode=batch``): send the plan's missing requests through a provider's Batch API.

The missing requests become JSONL batch files (``custom_id`` = request key, ``body`` = the chat completion
online mode would send), split under the provider's limits, uploaded and submitted through LiteLLM's file
and batch endpoints, polled until they end, and their output and error files ingested by request key
into the store. Each submitted batch is recorded at once in a sidecar JSON file next to the store
(``<store>.batches/<run_id>.json``: batch ids, states and keys; never a key or a prompt), so a run that is
interrupted, or told not to wait (``execution.batch_wait_s``), re-attaches to its in-flight batches on
the next run instead of submitting them again. A batch that expires or partly fails leaves its missing
keys without a response; the next run submits a new batch of those keys only.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from runner.compile.plan import Request
from runner.config import api_base_pool
from runner.core import display
from runner.core.errors import VatError, stop_reason
from runner.execute.faults import classify
from runner.execute.online import check_api_key, litellm_module, pending, response_row
from runner.execute.options import ExecOptions, ExecStats
from runner.execute.replicas import first
from runner.store.store import Store

BATCH_PROVIDERS = ("openai", "azure", "hosted_vllm", "litellm_proxy")
"""LiteLLM providers whose file and batch endpoints take OpenAI-shaped JSONL (the path tested here)."""
TERMINAL = {"completed", "failed", "expired", "cancelled"}
ENDPOINT = "/v1/chat/completions"
MODES = ("online", "batch")
_KEY_VARS = (
    "OPENAI_API_KEY",
    "AZURE_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "HOSTED_VLLM_API_KEY",
    "LITELLM_PROXY_API_KEY",
)
"""Where LiteLLM reads the key when ``model.api_key_env`` is not set: blanked out of every message too."""
TRANSFER_TIMEOUT_S = 600.0
"""Uploads and downloads of batch files (up to ~200 MB) get at least this long."""


@dataclass(frozen=True)
class BatchOptions:
    """Batch settings (from ``execution.*``)."""

    poll_s: float = 30.0
    completion_window: str = "24h"
    max_requests: int = 50_000
    max_bytes: int = 190 * 2**20
    """Per batch file; OpenAI allows 50,000 requests and 200 MB."""
    wait_s: float | None = None
    """Stop polling after this many seconds and leave the batches in flight (None: wait until they end)."""


def batch_options(cfg: DictConfig) -> BatchOptions:
    """Batch settings from the config, range-checked with a message naming the key."""
    ex = cfg.execution
    if isinstance(api_base_pool(cfg.model.api_base), tuple):
        raise VatError(
            "execution.mode=batch submits each batch to one server, but model.api_base lists several; "
            "give one URL (model.api_base=URL) or use execution.mode=online to spread requests over them",
            2,
        )
    checks = (  # (key, value, bound, strict)
        ("execution.batch_poll_s", ex.batch_poll_s, 0, False),
        ("execution.batch_max_requests", ex.batch_max_requests, 1, False),
        ("execution.batch_max_mb", ex.batch_max_mb, 0, True),
        ("execution.batch_wait_s", ex.batch_wait_s, 0, False),
    )
    for key, value, bound, strict in checks:
        if value is not None and (value < bound or (strict and value == bound)):
            raise VatError(
                f"{key}={value} is out of range; set {key} to a number {'>' if strict else '≥'} {bound}", 2
            )
    return BatchOptions(
        poll_s=float(ex.batch_poll_s),
        completion_window=str(ex.completion_window),
        max_requests=int(ex.batch_max_requests),
        max_bytes=int(float(ex.batch_max_mb) * 2**20),
        wait_s=None if ex.batch_wait_s is None else float(ex.batch_wait_s),
    )


def check_mode(mode: str) -> str:
    """``execution.mode`` if valid, else a clear error."""
    if mode not in MODES:
        raise VatError(
            f"execution.mode={mode!r} is not a mode; set execution.mode to one of: {', '.join(MODES)}", 2
        )
    return mode


def warn_open_batches(sidecar: Path, run_id: str) -> None:
    """Online mode on a run with batches still in flight: say so (their keys would be sent twice)."""
    if sidecar.exists() and (open_ := Sidecar(sidecar, run_id).open_batches):
        display.warn(
            f"{len(open_)} batch(es) of this run are still in flight ({sidecar}); online mode sends their "
            "requests again — run with execution.mode=batch to collect them instead"
        )


def sidecar_path(store_path: str | Path, run_id: str) -> Path:
    """Where a run's batch ids live: ``<store>.batches/<run_id>.json``."""
    return Path(f"{store_path}.batches") / f"{run_id}.json"


class Sidecar:
    """The batches a run submitted (id, provider, state, keys), saved atomically after every change."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"run_id": run_id, "batches": []}
        if path.exists():
            try:
                self.data = json.loads(path.read_text())
            except ValueError:
                raise VatError(
                    f"{path} is not valid JSON; move it away (its batches are then forgotten)", 1
                ) from None

    @property
    def open_batches(self) -> list[dict[str, Any]]:
        """Batches not yet ingested (in flight, or ended but not collected)."""
        return [b for b in self.data["batches"] if not b.get("ingested")]

    def save(self) -> None:
        """Write the file atomically (a kill mid-write leaves the previous version)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


@dataclass
class _Target:
    """Where one group of requests goes: LiteLLM provider, model name sent in the body, base and key."""

    provider: str
    body_model: str
    api_base: str | None
    api_key: str | None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"custom_llm_provider": self.provider}
        if self.api_base:
            out["api_base"] = self.api_base
        if self.api_key:
            out["api_key"] = self.api_key
        return out


def _target(litellm: Any, model: str, api_base: str | None, api_key: str | None) -> _Target:
    """Resolve the provider of ``model``; refuse one without an OpenAI-style Batch API."""
    body_model, provider, _, _ = litellm.get_llm_provider(model=model, api_base=api_base)
    if provider not in BATCH_PROVIDERS:
        raise VatError(
            f"execution.mode=batch needs a provider with an OpenAI-style Batch API "
            f"({', '.join(p + '/' for p in BATCH_PROVIDERS)}); {model} is served by {provider!r}: "
            "use execution.mode=online",
            2,
        )
    return _Target(provider, body_model, api_base, api_key)


def batch_lines(requests: Sequence[Request], body_model: str, params: dict[str, Any]) -> Iterator[bytes]:
    """One JSONL line per request: the chat completion online mode would send, keyed by request key."""
    for r in requests:
        body = {"model": body_model, "messages": list(r.messages), **params}
        line = {"custom_id": r.key, "method": "POST", "url": ENDPOINT, "body": body}
        yield (json.dumps(line, ensure_ascii=False) + "\n").encode()


def chunks(
    requests: Sequence[Request], body_model: str, params: dict[str, Any], max_requests: int, max_bytes: int
) -> Iterator[tuple[list[Request], bytes]]:
    """Split the requests into batch files of at most ``max_requests`` lines and ``max_bytes`` bytes."""
    reqs: list[Request] = []
    parts: list[bytes] = []
    size = 0
    for r, line in zip(requests, batch_lines(requests, body_model, params), strict=True):
        if len(line) > max_bytes:
            raise VatError(
                f"request {r.key} alone is {len(line)} bytes, over execution.batch_max_mb; raise it", 2
            )
        if reqs and (len(reqs) >= max_requests or size + len(line) > max_bytes):
            yield reqs, b"".join(parts)
            reqs, parts, size = [], [], 0
        reqs.append(r)
        parts.append(line)
        size += len(line)
    if reqs:
        yield reqs, b"".join(parts)


def _clean(message: str, secret: str | None) -> str:
    """First line of a message, capped, with every key of the environment blanked out (runner.core.secrets)."""
    from runner.execute.faults import clean

    return clean(message, secret)


class _ApiError(VatError):
    """A file or batch call that failed for good (``kind`` as :func:`runner.execute.faults.classify` names it)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, 3)
        self.kind = kind


class _Batches:
    """One run's batch work: submit, poll, ingest (async; LiteLLM's batch calls run in its thread pool)."""

    def __init__(
        self,
        litellm: Any,
        store: Store,
        opts: ExecOptions,
        bopts: BatchOptions,
        side: Sidecar,
        stats: ExecStats,
    ) -> None:
        self.litellm, self.store, self.opts, self.bopts = litellm, store, opts, bopts
        self.side, self.stats = side, stats
        self.api_key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
        self.by_key: dict[str, Request] = {}
        self.progress: Any = None
        self.task_id: Any = None
        self.shown: set[str] = set()
        """Batches of this run's display: those open at the start and those it submits."""
        self.failed_keys: set[str] = set()
        """Keys whose batch ended without an answer for them in this run (some may be answered later)."""

    def clean(self, message: str) -> str:
        """A provider message fit to store or print: no key, whichever variable LiteLLM read it from."""
        text = _clean(message, self.api_key)
        for var in _KEY_VARS:
            text = _clean(text, os.environ.get(var))
        return text

    async def _api(self, what: str, call: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """One LiteLLM file/batch call; transient faults retried with backoff, others a clear error."""
        for attempt in range(1, self.opts.max_retries + 2):
            try:
                return await call(**kwargs, timeout=timeout or self.opts.timeout_s)
            except Exception as exc:  # noqa: BLE001 - classified below
                kind, status, transient = classify(exc)
                if transient and attempt <= self.opts.max_retries:
                    await asyncio.sleep(self.opts.backoff_s * 2 ** (attempt - 1))
                    continue
                hint = ""
                if kind in {"AuthenticationError", "PermissionDeniedError", "MissingCredentials"}:
                    hint = f"; check {self.opts.api_key_env or 'the API key environment variable'}"
                raise _ApiError(
                    f"{what} failed ({kind}{f' {status}' if status else ''}): {self.clean(str(exc))}{hint}",
                    kind,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def target(self, model: str, api_base: str | None) -> _Target:
        return _target(self.litellm, model, api_base, self.api_key)

    async def submit(self, todo: Sequence[Request]) -> None:
        """Upload and create batches for ``todo``, grouped by (model, api_base); record each at once."""
        groups: dict[tuple[str, str | None], list[Request]] = {}
        for r in todo:
            # A pool of replicas is refused in batch mode (batch_options): one server takes the batch.
            groups.setdefault((r.model, first(r.api_base)), []).append(r)
        for (model, api_base), reqs in groups.items():
            t = self.target(model, api_base)
            for part, data in chunks(
                reqs, t.body_model, self.opts.params, self.bopts.max_requests, self.bopts.max_bytes
            ):
                name = f"vat-{self.side.data['run_id']}-{len(self.side.data['batches']) + 1}.jsonl"
                f = await self._api(
                    "uploading the batch file",
                    self.litellm.acreate_file,
                    timeout=max(self.opts.timeout_s, TRANSFER_TIMEOUT_S),
                    file=(name, data),
                    purpose="batch",
                    **t.kwargs(),
                )
                b = await self._api(
                    "creating the batch",
                    self.litellm.acreate_batch,
                    completion_window=self.bopts.completion_window,
                    endpoint=ENDPOINT,
                    input_file_id=f.id,
                    metadata={"vat_run_id": self.side.data["run_id"]},
                    **t.kwargs(),
                )
                self.side.data["batches"].append(
                    {
                        "id": b.id,
                        "model": model,
                        "api_base": api_base,
                        "input_file_id": f.id,
                        "status": b.status,
                        "counts": {"total": len(part), "completed": 0, "failed": 0},
                        "submitted_at": datetime.now().isoformat(timespec="seconds"),
                        "ingested": False,
                        "keys": [r.key for r in part],
                    }
                )
                self.side.save()  # before anything else: a crash from here on re-attaches to this batch

    async def poll_once(self, entry: dict[str, Any]) -> None:
        """Refresh one open batch; ingest it when it has ended; forget it when the provider does not know it."""
        t = self.target(entry["model"], entry["api_base"])
        try:
            b = await self._api(
                f"polling batch {entry['id']}",
                self.litellm.aretrieve_batch,
                batch_id=entry["id"],
                **t.kwargs(),
            )
        except _ApiError as exc:
            if exc.kind != "NotFoundError":
                raise
            # Another account, a deleted batch, a different api_base: its keys are submitted again.
            display.warn(
                f"the provider does not know batch {entry['id']} any more; its requests are sent again"
            )
            entry["status"], entry["ingested"] = "not_found", True
            self.side.save()
            return
        entry["status"] = b.status
        counts = getattr(b, "request_counts", None)
        if counts is not None:
            entry["counts"] = {"total": counts.total, "completed": counts.completed, "failed": counts.failed}
        if b.status in TERMINAL:
            await self.ingest(entry, b, t)
        self.side.save()

    async def poll(self) -> None:
        """Poll the open batches until all end (ingesting each as it ends) or ``wait_s`` passes."""
        start = time.monotonic()
        while True:
            for entry in self.side.open_batches:
                await self.poll_once(entry)
            self.show()
            if not self.side.open_batches:
                return
            if self.bopts.wait_s is not None and time.monotonic() - start >= self.bopts.wait_s:
                ids = ", ".join(b["id"] for b in self.side.open_batches)
                self.stats.stopped = (
                    f"batch(es) {ids} still in flight at the provider (execution.batch_wait_s="
                    f"{self.bopts.wait_s:g}); run the same command again to collect the answers"
                )
                return
            await asyncio.sleep(self.bopts.poll_s)

    async def ingest(self, entry: dict[str, Any], batch: Any, t: _Target) -> None:
        """Store an ended batch's answers and per-request errors; its unanswered keys get an error row."""
        lines: list[dict[str, Any]] = []
        for fid in (getattr(batch, "output_file_id", None), getattr(batch, "error_file_id", None)):
            if fid:
                content = await self._api(
                    f"downloading {fid}",
                    self.litellm.afile_content,
                    timeout=max(self.opts.timeout_s, TRANSFER_TIMEOUT_S),
                    file_id=fid,
                    **t.kwargs(),
                )
                lines += _jsonl(content.content, fid)
        keys = [k for k in entry["keys"] if k in self.by_key]
        attempts = self._attempts(keys)
        responses, errors, seen = [], [], set()
        for line in lines:
            req = self.by_key.get(line.get("custom_id", ""))
            if req is None or req.key in seen:
                continue  # not this plan's (or a duplicate line): nothing to store
            seen.add(req.key)
            row, err = self._row(req, line, attempts.get(req.key, 0) + 1)
            if row is not None:
                responses.append(row)
            elif err is not None:
                errors.append(err)
        reason = self.clean(_batch_reason(batch))
        now = datetime.now()
        for k in keys:
            if k not in seen:  # expired, cancelled or failed before answering this request
                kind = "MissingFromResults" if batch.status == "completed" else f"Batch{batch.status.title()}"
                errors.append(_error(k, attempts.get(k, 0) + 1, kind, None, reason, now))
        self.store.add_responses(responses)
        self.store.add_errors(errors)
        self.failed_keys |= {e["request_key"] for e in errors}
        for e in errors:
            self.stats.error_kinds[e["error_type"]] = self.stats.error_kinds.get(e["error_type"], 0) + 1
        entry["ingested"] = True
        entry["answered"], entry["errors"] = len(responses), len(errors)

    def _row(
        self, req: Request, line: dict[str, Any], attempt: int
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(responses row, None) for an answer, else (None, errors row)."""
        resp = line.get("response") or {}
        body = resp.get("body") or {}
        status = resp.get("status_code")
        now = datetime.now()
        if status == 200 and body.get("choices"):
            try:
                model_resp = self.litellm.ModelResponse(**body)
                content = model_resp.choices[0].message.content
            except Exception as exc:  # noqa: BLE001 - a malformed answer is this request's error, not the run's
                message = self.clean(f"malformed answer: {exc}")
                return None, _error(req.key, attempt, "MalformedAnswer", status, message, now)
            if content and content.strip():
                cost = self._cost(model_resp, req.model)
                row = response_row(req, model_resp, 0.0, attempt, cost)
                row["latency_s"] = None  # a batch has no per-request latency
                self.stats.answered += 1
                self.stats.cost_usd += cost
                if row["rating"] is None and row["expected_rating"] is None:
                    self.stats.unparseable += 1
                return row, None
            return None, _error(
                req.key, attempt, "EmptyAnswer", status, "the provider returned an empty answer", now
            )
        err = body.get("error") or line.get("error") or {}
        kind = err.get("type") or err.get("code") or "BatchRequestError"
        return None, _error(
            req.key, attempt, str(kind), status, self.clean(str(err.get("message", err))), now
        )

    def _cost(self, resp: Any, model: str) -> float:
        """Batch price from LiteLLM's map (about half the online price); 0 for unknown models."""
        try:
            from litellm.cost_calculator import batch_cost_calculator

            prompt, completion = batch_cost_calculator(resp.usage, model)
            return float(prompt + completion)
        except Exception:  # noqa: BLE001 - no price known is not an error of the run
            return 0.0

    def _attempts(self, keys: Sequence[str]) -> dict[str, int]:
        """Failed attempts already recorded per key (so this attempt's number follows them)."""
        if not keys:
            return {}
        rows = self.store.query(
            "SELECT request_key, count(*) FROM errors WHERE request_key IN (SELECT unnest(?)) GROUP BY 1",
            [list(keys)],
        )
        return {k: int(n) for k, n in rows}

    def show(self) -> None:
        """Redraw the progress display from the batches' own counts."""
        if self.progress is None:
            return
        batches = self.side.data["batches"]
        live = [b for b in batches if not b.get("ingested") or b["id"] in self.shown]
        total = sum(b["counts"]["total"] for b in live)
        done = sum(b["counts"]["completed"] + b["counts"]["failed"] for b in live)
        failed = sum(b["counts"]["failed"] for b in live)
        states = ", ".join(sorted({b["status"] for b in live})) or "-"
        self.progress.update(
            self.task_id, total=total, completed=done, failed=failed, states=states, n=len(live)
        )


def _jsonl(data: bytes, file_id: str) -> list[dict[str, Any]]:
    """The JSON objects of a results file; a line that is not one is skipped with a warning."""
    out, bad = [], 0
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if isinstance(line, dict):
            out.append(line)
        else:
            bad += 1
    if bad:
        display.warn(
            f"{bad} line(s) of the provider's file {file_id} are not JSON objects; their requests are sent again"
        )
    return out


def _batch_reason(batch: Any) -> str:
    """Why a batch left requests unanswered (the provider's first error, else its state)."""
    errs = getattr(batch, "errors", None)
    data = getattr(errs, "data", None) if errs is not None else None
    if data:
        first = data[0]
        return str(getattr(first, "message", None) or first)[:500]
    return f"batch {batch.id} ended {batch.status} before answering this request"


def _error(
    key: str, attempt: int, kind: str, status: int | None, message: str, now: datetime
) -> dict[str, Any]:
    return {
        "request_key": key,
        "attempt": attempt,
        "error_type": kind,
        "status": status,
        "message": message,
        "final": True,  # this batch is done with it; the next run submits it again
        "created_at": now,
    }


def execute_batch(
    requests: Sequence[Request],
    store: Store,
    opts: ExecOptions,
    bopts: BatchOptions,
    sidecar: Path,
    run_id: str,
    skip: set[str] | frozenset[str] = frozenset(),
) -> ExecStats:
    """Collect the run's in-flight batches, submit the missing requests as new ones, and store the answers.

    Blocks until every batch ends, or ``bopts.wait_s`` passes, or Ctrl-C (both leave the batches in
    flight, recorded in ``sidecar``, for the next run to collect). Returns the same stats as online mode.
    """
    stats = ExecStats(planned=len({r.key for r in requests}))
    side = Sidecar(sidecar, run_id)
    if opts.budget_usd is not None:
        display.warn(
            "execution.budget_usd is not enforced in batch mode (a batch is priced as the provider runs it); "
            "bound the spend with selection.* or execution.batch_max_requests instead"
        )
    stored = store.stored_keys([r.key for r in requests]) | set(skip)
    stats.to_send = len(pending(requests, stored))
    if not stats.to_send and not side.open_batches:
        return stats
    check_api_key(opts, [r for r in requests if r.key not in stored])
    litellm = litellm_module({r.model for r in requests})
    work = _Batches(litellm, store, opts, bopts, side, stats)
    work.by_key = {r.key: r for r in requests}
    start = time.perf_counter()
    work.progress, work.task_id = _progress(opts.progress)
    try:
        if work.progress is not None:
            work.progress.start()
        asyncio.run(_main(work, requests, set(skip)))
    except KeyboardInterrupt as exc:
        stats.stopped = stop_reason(exc)
    finally:
        if work.progress is not None:
            work.show()
            work.progress.stop()
        stats.elapsed_s = time.perf_counter() - start
    return stats


async def _main(work: _Batches, requests: Sequence[Request], skip: set[str]) -> None:
    """Re-attach to the open batches (collecting those that ended), submit what is still missing, poll all."""
    work.shown = {b["id"] for b in work.side.open_batches}
    for entry in work.side.open_batches:
        await work.poll_once(entry)  # an expired batch is collected first, so its gaps are sent below
    stored = work.store.stored_keys([r.key for r in requests]) | skip
    in_flight = {k for b in work.side.open_batches for k in b["keys"]}
    todo = pending(requests, stored | in_flight)
    work.stats.retries = sum(r.key in work.failed_keys for r in todo)
    before = len(work.side.data["batches"])
    try:
        await work.submit(todo)
        work.shown |= {b["id"] for b in work.side.data["batches"][before:]}
        await work.poll()
    finally:  # failed: still without an answer when the run ends (as in online mode)
        work.stats.failed = len(work.failed_keys - work.store.stored_keys(sorted(work.failed_keys)))


def _progress(enabled: bool) -> tuple[Any, Any]:
    """A rich progress display on stderr: requests the provider finished, failed, batch states."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from runner.core.display import err

    progress = Progress(
        TextColumn("[bold]batch[/bold] ({task.fields[n]})"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed[/red] · {task.fields[states]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        refresh_per_second=2,
    )
    task_id = progress.add_task("batch", total=None, failed=0, states="submitting", n=0)
    return progress, task_id
