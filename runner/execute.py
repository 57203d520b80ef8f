"""Stage 3, execute: send the plan's missing requests through LiteLLM and store the answers.

The only module that imports ``litellm`` (lazily: importing it costs ~3 s). Requests go out in plan
order with bounded concurrency, so consecutive requests share their scene prefix (llama.cpp and
provider prompt caches reuse it). Transient failures (429, 5xx, timeouts, dropped connections) are
retried with exponential backoff, honouring Retry-After; every failed attempt is recorded in the
``errors`` table. Answers are written in batches, each one transaction: a crash or Ctrl-C loses only
the requests in flight, and running the same command again resumes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.compile import Request
from runner.errors import VatError
from runner.parse import expected_rating, parse_rating, top_logprobs_of_answer
from runner.store import Store

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


@dataclass
class ExecStats:
    """What a run did: counts, cost and why it stopped."""

    planned: int = 0
    to_send: int = 0
    answered: int = 0
    unparseable: int = 0
    failed: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    stopped: str | None = None
    """None when every request was attempted; else "budget", "interrupted" or an abort reason."""
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecOptions:
    """Execution settings (from ``execution.*`` and ``model.*``)."""

    concurrency: int = 8
    max_retries: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    budget_usd: float | None = None
    flush_every: int = 256
    progress: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None


def litellm_module(models: Iterable[str] = ()) -> Any:
    """Import LiteLLM on first use, quietly and without network look-ups; register the providers ``models`` need."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers without logprobs (Anthropic, ...) would otherwise reject the call
    from runner.providers import register_for

    register_for(models)
    return litellm


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait, from a Retry-After header on the exception, if any."""
    candidates = [getattr(exc, "headers", None), getattr(exc, "litellm_response_headers", None)]
    response = getattr(exc, "response", None)
    if response is not None:
        candidates.append(getattr(response, "headers", None))
    for headers in candidates:
        if not headers:
            continue
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
        except AttributeError:
            continue
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def classify(exc: BaseException) -> tuple[str, int | None, bool]:
    """(error type, HTTP status or None, transient?) for a provider exception."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int) else None
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | ConnectionError):
        return name, status, True
    if name in {
        "Timeout",
        "APITimeoutError",
        "APIConnectionError",
        "RateLimitError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
        "APIError",
        "EmptyAnswer",
        "JSONDecodeError",
        "APIResponseValidationError",
    }:
        return (
            name,
            status,
            status is None or status in TRANSIENT_STATUS or status >= 500 or name != "APIError",
        )
    if status is not None:
        return name, status, status in TRANSIENT_STATUS
    return name, status, False


class EmptyAnswer(Exception):
    """The provider answered with no content: treated as a transient fault and retried."""


def _clean(message: str, secret: str | None) -> str:
    """First line of an error message, capped, with the API key (if any) blanked out."""
    text = (message or "").strip().splitlines()[0][:500] if message else ""
    if secret and len(secret) >= 6:
        text = text.replace(secret, "***")
    return text


def response_row(req: Request, resp: Any, latency: float, attempts: int, cost: float) -> dict[str, Any]:
    """Turn a LiteLLM ModelResponse into one ``responses`` row."""
    choice = resp.choices[0]
    text = (choice.message.content or "") if choice.message else ""
    top = top_logprobs_of_answer(getattr(choice, "logprobs", None))
    usage = getattr(resp, "usage", None)
    return {
        "request_key": req.key,
        "model": req.model,
        "text": text,
        "rating": parse_rating(text),
        "expected_rating": expected_rating(top),
        "logprobs": json.dumps(top) if top else None,
        "prompt_tokens": getattr(usage, "prompt_tokens", None),
        "completion_tokens": getattr(usage, "completion_tokens", None),
        "cost_usd": cost,
        "latency_s": round(latency, 4),
        "attempts": attempts,
        "provider_model": getattr(resp, "model", None),
        "fingerprint": getattr(resp, "system_fingerprint", None),
        "created_at": datetime.now(),
    }


class _Writer:
    """Buffers rows and writes them in batches, one transaction each."""

    def __init__(self, store: Store, flush_every: int) -> None:
        self.store, self.flush_every = store, flush_every
        self.responses: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def add(self, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        if response:
            self.responses.append(response)
        if error:
            self.errors.append(error)
        if len(self.responses) + len(self.errors) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.responses:
            self.store.add_responses(self.responses)
            self.responses = []
        if self.errors:
            self.store.add_errors(self.errors)
            self.errors = []


async def _call(litellm: Any, req: Request, opts: ExecOptions, api_key: str | None) -> Any:
    kwargs: dict[str, Any] = dict(opts.params)
    if req.api_base:
        kwargs["api_base"] = req.api_base
    if api_key:
        kwargs["api_key"] = api_key
    resp = await litellm.acompletion(
        model=req.model, messages=list(req.messages), timeout=opts.timeout_s, num_retries=0, **kwargs
    )
    choice = resp.choices[0] if resp.choices else None
    if choice is None or not (choice.message and choice.message.content and choice.message.content.strip()):
        raise EmptyAnswer("the provider returned an empty answer")
    return resp


async def _one(
    litellm: Any, req: Request, opts: ExecOptions, api_key: str | None, writer: _Writer, stats: ExecStats
) -> None:
    """Obtain one judgment, with retries; record every failed attempt."""
    for attempt in range(1, opts.max_retries + 2):
        start = time.perf_counter()
        try:
            resp = await asyncio.wait_for(_call(litellm, req, opts, api_key), timeout=opts.timeout_s * 1.5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure is classified and recorded
            kind, status, transient = classify(exc)
            final = not transient or attempt > opts.max_retries
            writer.add(
                error={
                    "request_key": req.key,
                    "attempt": attempt,
                    "error_type": kind,
                    "status": status,
                    "message": _clean(str(exc), api_key),
                    "final": final,
                    "created_at": datetime.now(),
                }
            )
            stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
            if kind in {"AuthenticationError", "PermissionDeniedError"}:
                raise _Abort(
                    f"the provider rejected the credentials for {req.model} ({kind}); "
                    f"check {opts.api_key_env or 'the API key environment variable'}"
                ) from None
            if final:
                stats.failed += 1
                return
            stats.retries += 1
            wait = _retry_after(exc)
            if wait is None:
                wait = opts.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
            await asyncio.sleep(min(wait, 120.0))
            continue
        cost = _cost(litellm, resp, req.model)
        row = response_row(req, resp, time.perf_counter() - start, attempt, cost)
        stats.answered += 1
        stats.cost_usd += cost
        if row["rating"] is None and row["expected_rating"] is None:
            stats.unparseable += 1
        writer.add(response=row)
        return


class _Abort(Exception):
    """Stop the whole run (credentials rejected, endpoint unreachable)."""


def _cost(litellm: Any, resp: Any, model: str) -> float:
    """Cost from LiteLLM's price map; 0 for models it does not know (local servers, custom providers)."""
    try:
        return float(litellm.completion_cost(completion_response=resp, model=model) or 0.0)
    except Exception:  # noqa: BLE001 - unknown models have no price: that is not an error of the run
        return 0.0


async def _drive(
    litellm: Any, todo: Sequence[Request], opts: ExecOptions, store: Store, stats: ExecStats, on_done: Any
) -> None:
    """Run the requests with ``concurrency`` workers pulling from one iterator (keeps plan order)."""
    writer = _Writer(store, opts.flush_every)
    api_key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
    queue = iter(todo)
    consecutive_failures = 0
    abort: list[str] = []

    async def worker() -> None:
        nonlocal consecutive_failures
        for req in queue:
            if abort:
                return
            if opts.budget_usd is not None and stats.cost_usd >= opts.budget_usd:
                stats.stopped = "budget"
                return
            failed_before = stats.failed
            try:
                await _one(litellm, req, opts, api_key, writer, stats)
            except _Abort as exc:
                abort.append(str(exc))
                return
            consecutive_failures = consecutive_failures + 1 if stats.failed > failed_before else 0
            # Many final failures in a row and no success: the endpoint is down or misconfigured.
            if consecutive_failures >= max(20, 2 * opts.concurrency) and stats.answered == 0:
                abort.append(
                    f"{consecutive_failures} requests in a row failed and none succeeded "
                    f"(last: {', '.join(sorted(stats.error_kinds))}); check model.name and model.api_base"
                )
                return
            on_done(req)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, opts.concurrency))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        writer.flush()  # whatever happened, keep every answer already received
    if abort:
        stats.stopped = abort[0]


def pending(requests: Iterable[Request], stored: set[str]) -> list[Request]:
    """The requests still to send: not stored, first occurrence of each key, plan order kept."""
    seen: set[str] = set()
    out = []
    for r in requests:
        if r.key not in stored and r.key not in seen:
            seen.add(r.key)
            out.append(r)
    return out


def execute(requests: Sequence[Request], store: Store, opts: ExecOptions) -> ExecStats:
    """Send every request whose key is not stored yet; return what happened. Blocks until done."""
    stats = ExecStats(planned=len({r.key for r in requests}))
    todo = pending(requests, store.stored_keys([r.key for r in requests]))
    stats.to_send = len(todo)
    if not todo:
        return stats
    if opts.api_key_env and not os.environ.get(opts.api_key_env):
        raise VatError(
            f"model.api_key_env names {opts.api_key_env}, which is not set; export it and run again", 1
        )
    litellm = litellm_module({r.model for r in todo})
    start = time.perf_counter()
    progress, task_id = _progress(len(todo), opts.progress)
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
        if progress is not None:
            progress.start()
        asyncio.run(_drive(litellm, todo, opts, store, stats, on_done))
    except KeyboardInterrupt:
        stats.stopped = "interrupted"
    finally:
        if progress is not None:
            progress.update(
                task_id, completed=stats.answered + stats.failed, errors=stats.failed, retries=stats.retries
            )
            progress.stop()
        stats.elapsed_s = time.perf_counter() - start
    return stats


def _progress(total: int, enabled: bool) -> tuple[Any, Any]:
    """A rich progress bar on stderr: done/total, rate, errors, ETA."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from runner.display import err

    progress = Progress(
        TextColumn("[bold]judging[/bold]"),
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
