"""Stage 3, execute: send the plan's missing requests through LiteLLM and store the answers.

The only module that imports ``litellm`` (lazily: importing it costs ~3 s); what a fault is and how
long to wait live in :mod:`runner.execute.faults`, the options and stats in :mod:`runner.execute.options`. Requests go out in plan
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
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from runner.compile.plan import Request
from runner.core.errors import VatError
from runner.execute.faults import (
    RATE_LIMIT_RETRIES,
    UNREACHABLE,
    EmptyAnswer,
    capped_retry_after,
    classify,
    clean,
    replica_fault,
    retry_wait,
)
from runner.execute.options import ExecOptions, ExecStats
from runner.execute.parse import expected_rating, parse_rating, top_logprobs_of_answer
from runner.execute.rate_gate import RateGate
from runner.execute.replicas import ApiBase, describe, first, replica

MAX_ANSWER_CHARS = 20_000
"""Longest answer text stored (a rating is a few characters; ``max_tokens`` ≤ 4,096 is ~16,000). A
provider that streams 50 MB per answer at concurrency 8 wrote a 2 GB journal before this cap."""
MAX_LOGPROB_TOKEN_CHARS = 64
"""Longest alternative token kept from the logprobs (only "1".."5" count; the rest is context)."""


def litellm_module(models: Iterable[str] = ()) -> Any:
    """Import LiteLLM on first use, quietly and without network look-ups; register the providers ``models`` need."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers without logprobs (Anthropic, ...) would otherwise reject the call
    # LiteLLM builds a request's coroutine before awaiting it: a request cancelled in between (Ctrl-C)
    # leaves it unawaited, and Python would print a warning on the way out. Nothing is lost there.
    warnings.filterwarnings("ignore", message="coroutine '.*' was never awaited", category=RuntimeWarning)
    from runner.execute.providers import register_for

    register_for(models)
    return litellm


def response_row(req: Request, resp: Any, latency: float, attempts: int, cost: float) -> dict[str, Any]:
    """Turn a LiteLLM ModelResponse into one ``responses`` row."""
    choice = resp.choices[0]
    text = str((choice.message.content or "") if choice.message else "")[:MAX_ANSWER_CHARS]
    top = top_logprobs_of_answer(getattr(choice, "logprobs", None))
    if top:
        top = {t[:MAX_LOGPROB_TOKEN_CHARS]: lp for t, lp in list(top.items())[:20]}
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


class Writer:
    """Buffers rows and hands them on in batches; each row is journaled first, so a kill loses none.

    In one process the batches are store commits and the journal is the store's; a pool worker
    (runner.execute.pool) journals to its own file and hands its batches to the writing process, which then
    commits them without journaling them again.
    """

    def __init__(
        self,
        sink: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None],
        flush_every: int,
        journal: Callable[[str, dict[str, Any]], None] | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self.sink, self.flush_every, self.journal, self.max_age_s = sink, flush_every, journal, max_age_s
        self.responses: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.flushed_at = time.monotonic()

    def add(self, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        """Journal a row (survives a SIGKILL from here on), buffer it; hand the batch on when full or old."""
        for table, row, buffer in (("responses", response, self.responses), ("errors", error, self.errors)):
            if row:
                if self.journal is not None:
                    self.journal(table, row)
                buffer.append(row)
        if len(self.responses) + len(self.errors) >= self.flush_every or (
            self.max_age_s is not None and time.monotonic() - self.flushed_at > self.max_age_s
        ):
            self.flush()

    def flush(self) -> None:
        """Hand on whatever is buffered."""
        if self.responses or self.errors:
            self.sink(self.responses, self.errors)
            self.responses, self.errors = [], []
        self.flushed_at = time.monotonic()


async def _call(litellm: Any, req: Request, opts: ExecOptions, api_key: str | None) -> Any:
    return await _send(litellm, req.model, list(req.messages), opts, req.api_base, api_key)


async def _send(
    litellm: Any,
    model: str,
    messages: list[dict[str, str]],
    opts: ExecOptions,
    api_base: ApiBase,
    api_key: str | None,
) -> Any:
    """One ``litellm.acompletion`` call with ``opts.params``; an empty answer raises :class:`EmptyAnswer`.

    With a pool of replicas (``api_base`` a tuple), one of them is picked here, and one that fails with
    a transport fault is left out for a while, so the caller's retry goes to another one.
    """
    kwargs: dict[str, Any] = dict(opts.params)
    if api_key:
        kwargs["api_key"] = api_key
    with replica(api_base) as (address, mark_failed):
        if address:
            kwargs["api_base"] = address
        try:
            resp = await litellm.acompletion(
                model=model, messages=messages, timeout=opts.timeout_s, num_retries=0, **kwargs
            )
        except Exception as exc:
            if replica_fault(exc):
                mark_failed()
            raise
    choice = resp.choices[0] if resp.choices else None
    if choice is None or not (choice.message and choice.message.content and choice.message.content.strip()):
        raise EmptyAnswer("the provider returned an empty answer")
    return resp


async def paced(gate: RateGate | None) -> float:
    """Wait for ``gate``'s next send slot; return the send time the gate judges a later 429 by.

    A 429 that pauses every worker while this one sleeps makes its booked slot stale: it books again.
    """
    while gate is not None and (wait := gate.reserve()) > 0:
        await asyncio.sleep(wait)
        if gate.clock() >= gate.resume_at:
            break
    return gate.clock() if gate is not None and gate.rate is not None else 0.0


async def acomplete(
    litellm: Any,
    model: str,
    messages: list[dict[str, str]],
    opts: ExecOptions,
    api_base: ApiBase = None,
    api_key: str | None = None,
    on_error: Any = None,
    gate: RateGate | None = None,
) -> tuple[Any, int]:
    """One chat completion under the run's retry policy; return (response, attempts).

    For callers outside the judgment pipeline (``vat generate``): transient faults are retried with
    backoff like :func:`execute` does; ``on_error(exc, attempt, final)`` sees each failed attempt; the
    last exception is raised when the fault is permanent or the retries are spent. A ``gate`` paces
    every attempt (``execution.requests_per_minute`` and the rate learnt from 429s), as in a run.
    """
    for attempt in range(1, opts.max_retries + 2):
        sent_at = await paced(gate)
        try:
            async with asyncio.timeout(opts.timeout_s * 1.5):  # not wait_for: see _one
                resp = await _send(litellm, model, messages, opts, api_base, api_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified; permanent faults go back to the caller
            kind, status, transient = classify(exc)
            limited = status == 429 or kind == "RateLimitError"
            final = not transient or attempt > opts.max_retries
            if gate is not None and limited and kind != "QuotaExhausted":
                gate.throttled(capped_retry_after(exc, opts), sent_at, opts.backoff_s)
            if on_error is not None:
                on_error(exc, attempt, final)
            if final:
                raise
            # The gate already paces a 429's retry (everyone waits for Retry-After): no backoff on top.
            await asyncio.sleep(
                0 if limited and gate is not None else retry_wait(exc, attempt, opts, api_base)
            )
            continue
        if gate is not None:
            gate.answered()
        return resp, attempt
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


async def _one(
    litellm: Any,
    req: Request,
    opts: ExecOptions,
    api_key: str | None,
    writer: Writer,
    stats: ExecStats,
    gate: RateGate | None = None,
) -> None:
    """Obtain one judgment, with retries; record every failed attempt.

    A 429 has ``RATE_LIMIT_RETRIES`` × ``max_retries`` attempts instead of ``max_retries``: the gate paces
    the retries, and a request lost to a learnt rate limit would be lost to the runner's own pacing.
    """
    attempt = 0
    while True:
        attempt += 1
        sent_at = await paced(gate)
        start = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation (Ctrl-C)
            # that arrives as the answer does, and the worker then runs on through the queue.
            async with asyncio.timeout(opts.timeout_s * 1.5):
                resp = await _call(litellm, req, opts, api_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure is classified and recorded
            kind, status, transient = classify(exc)
            limited = status == 429 or kind == "RateLimitError"
            allowed = opts.max_retries * (RATE_LIMIT_RETRIES if limited and gate is not None else 1)
            final = not transient or attempt > allowed
            if gate is not None and limited and kind != "QuotaExhausted":
                gate.throttled(capped_retry_after(exc, opts), sent_at, opts.backoff_s)
            error = {
                "request_key": req.key,
                "attempt": attempt,
                "error_type": kind,
                "status": status,
                "message": clean(str(exc), api_key),
                "final": final,
                "created_at": datetime.now(),
            }
            writer.add(error=error)
            stats.count(error=error)
            if kind in UNREACHABLE and stats.answered == 0:
                stats.unreachable += 1
                # Two rounds of every worker failing to connect, and never an answer: stop now instead
                # of backing off through every retry of every request (tens of seconds to minutes). A
                # small plan (a 5-request replay) has fewer workers busy: two attempts of each request.
                if stats.unreachable >= unreachable_limit(stats.to_send, opts.concurrency):
                    raise _Abort(
                        f"cannot reach {describe(req.api_base) or req.model}: {stats.unreachable} attempts failed "
                        f"({kind}) and none succeeded; check model.api_base and that the server is running"
                    ) from None
            if kind == "MissingCredentials":
                raise _Abort(
                    f"no API key for {req.model}: export the provider's key variable (OPENAI_API_KEY for "
                    "openai/...) and name it with model.api_key_env="
                ) from None
            if kind == "QuotaExhausted":
                raise _Abort(
                    f"the provider's quota for {req.model} is exhausted (HTTP {status}: {error['message'][:120]}); "
                    "add credit or wait for the quota to reset, then run the same command again to resume"
                ) from None
            if kind == "AuthenticationError":
                raise _Abort(
                    f"the provider rejected the credentials for {req.model} ({kind}); "
                    f"check {opts.api_key_env or 'the API key environment variable'}"
                ) from None
            if kind == "PermissionDeniedError" or status == 403:
                raise _Abort(
                    f"the provider refused access to {req.model} (HTTP 403: {error['message'][:120]}); "
                    f"the key in {opts.api_key_env or 'the API key environment variable'} is valid but may "
                    "not use this model, region or feature: check the account's permissions"
                ) from None
            if final:
                return
            # The gate already paces a 429's retry (everyone waits for Retry-After): no backoff on top.
            await asyncio.sleep(
                0 if limited and gate is not None else retry_wait(exc, attempt, opts, req.api_base)
            )
            continue
        if gate is not None:
            gate.answered()
        try:
            cost = _cost(litellm, resp, req.model)
            row = response_row(req, resp, time.perf_counter() - start, attempt, cost)
        except Exception as exc:  # noqa: BLE001 - a malformed answer is this request's failure, not the run's
            # The same request would get the same answer again (temperature 0): final, not retried,
            # so a rerun does not crash at the same request either.
            error = {
                "request_key": req.key,
                "attempt": attempt,
                "error_type": "MalformedAnswer",
                "status": None,
                "message": clean(f"{type(exc).__name__}: {exc}", api_key),
                "final": True,
                "created_at": datetime.now(),
            }
            writer.add(error=error)
            stats.count(error=error)
            return
        writer.add(response=row)
        stats.count(response=row)
        return


class _Abort(Exception):
    """Stop the whole run (credentials rejected, endpoint unreachable)."""


_UNPRICED: set[str] = set()
"""Models LiteLLM's price map does not know: asking again per answer would cost ~1 ms each time."""


def _cost(litellm: Any, resp: Any, model: str) -> float:
    """Cost from LiteLLM's price map; 0 for models it does not know (local servers, custom providers).

    LiteLLM already prices every answer while logging it (``_hidden_params["response_cost"]``, None
    when the model has no price): pricing it again costs as much as a third of LiteLLM's own work.
    """
    hidden = getattr(resp, "_hidden_params", None) or {}
    if "response_cost" in hidden:
        return float(hidden["response_cost"] or 0.0)
    if model in _UNPRICED:
        return 0.0
    try:
        return float(litellm.completion_cost(completion_response=resp, model=model) or 0.0)
    except Exception:  # noqa: BLE001 - unknown models have no price: that is not an error of the run
        _UNPRICED.add(model)
        return 0.0


async def drive(
    litellm: Any,
    todo: Sequence[Request],
    opts: ExecOptions,
    writer: Writer,
    stats: ExecStats,
    on_done: Any,
    gate: RateGate,
) -> None:
    """Run the requests with ``concurrency`` tasks pulling from one iterator (keeps plan order).

    ``writer`` takes the rows: into the store in one process, onto a queue to the writing process in a
    pool worker. ``gate`` is shared by every task (and every worker process): a 429 slows them all.
    """
    api_key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
    queue = iter(todo)
    consecutive_failures = 0
    abort: list[str] = []

    in_flight = [0]

    async def worker() -> None:
        nonlocal consecutive_failures
        for req in queue:
            if abort or asyncio.current_task().cancelling():  # stopping: take no new request
                return
            if opts.budget_usd is not None and _over_budget(stats, in_flight[0], opts.budget_usd):
                stats.stopped = "budget"
                return
            failed_before = stats.failed
            in_flight[0] += 1
            try:
                await _one(litellm, req, opts, api_key, writer, stats, gate)
            except _Abort as exc:
                abort.append(str(exc))
                _stop_others()
                return
            finally:
                in_flight[0] -= 1
            consecutive_failures = consecutive_failures + 1 if stats.failed > failed_before else 0
            # Many final failures in a row and no success: the endpoint is down or misconfigured.
            if consecutive_failures >= max(20, 2 * opts.concurrency) and stats.answered == 0:
                abort.append(
                    f"{consecutive_failures} requests in a row failed and none succeeded "
                    f"(last: {', '.join(sorted(stats.error_kinds))}); check model.name and model.api_base"
                )
                _stop_others()
                return
            on_done(req)

    def _stop_others() -> None:
        """On abort, cancel the other workers (they may be sleeping through a retry's backoff)."""
        for t in tasks:
            if t is not asyncio.current_task():
                t.cancel()

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, opts.concurrency))]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for t in tasks:
            t.cancel()
        writer.flush()  # whatever happened, keep every answer already received
    crashed = [r for r in results if isinstance(r, Exception)]  # cancelled workers are not failures
    if crashed:
        raise crashed[0]
    if abort:
        stats.stopped = abort[0]


def _over_budget(stats: ExecStats, in_flight: int, budget: float) -> bool:
    """Would one more request risk spending past the budget? Counts the requests already in flight.

    The cost of a request is known only after it returns, so the projection uses the mean cost so far.
    """
    mean = stats.cost_usd / stats.answered if stats.answered else 0.0
    return stats.cost_usd + (in_flight + 1) * mean > budget


def check_api_key(opts: ExecOptions, requests: Iterable[Request]) -> None:
    """Raise before anything is sent when a key that ``requests`` need is not set (named, never shown).

    ``model.api_key_env`` names the variable; without it, LiteLLM's ``validate_environment`` says which
    variable each provider reads (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
    """
    targets = {(r.model, r.api_base) for r in requests}
    if not targets:
        return
    if opts.api_key_env:
        if not os.environ.get(opts.api_key_env):
            raise VatError(
                f"model.api_key_env names {opts.api_key_env}, which is not set; export it and run again", 1
            )
        return
    litellm = litellm_module({m for m, _ in targets})
    for model, base in sorted(targets, key=str):
        try:
            found = litellm.validate_environment(model=model, api_base=first(base))
        except Exception:  # noqa: BLE001 - a provider LiteLLM cannot check: the first call will say
            continue
        missing = [k for k in found.get("missing_keys") or [] if not (base and k.endswith("_API_BASE"))]
        if missing:
            raise VatError(
                f"{model} needs {', '.join(missing)}, which is not set; export it (or name the variable "
                "with model.api_key_env=) and run again",
                1,
            )


def unreachable_limit(to_send: int, concurrency: int) -> int:
    """Failed connects, with no answer yet, after which a run stops.

    Two rounds of every worker, or two attempts of each request of a small plan (a 5-request replay),
    whichever is fewer. ``to_send`` must be what this process sends (a pool worker: its share).
    """
    return min(max(10, 2 * concurrency), 2 * max(to_send, 1))


def choose_workers(workers: int, to_send: int) -> int:
    """The number of worker processes: ``workers`` if set (> 0); else one per core, one per 1,000 requests.

    A worker costs ~3 s of start-up (its own LiteLLM import) and ~200 MB: below ~1,000 requests a
    second process would not pay for itself even at the ~135 requests/s one process reaches over HTTP.
    """
    if workers > 0:
        return workers
    return max(1, min(os.cpu_count() or 1, to_send // 1000))


def pending(requests: Iterable[Request], stored: set[str]) -> list[Request]:
    """The requests still to send: not stored, first occurrence of each key, plan order kept."""
    seen: set[str] = set()
    out = []
    for r in requests:
        if r.key not in stored and r.key not in seen:
            seen.add(r.key)
            out.append(r)
    return out
