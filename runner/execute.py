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
import warnings
from collections import deque
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
    unreachable: int = 0
    """Attempts that could not reach the endpoint (connect errors, timeouts) before the first answer."""


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
    # LiteLLM builds a request's coroutine before awaiting it: a request cancelled in between (Ctrl-C)
    # leaves it unawaited, and Python would print a warning on the way out. Nothing is lost there.
    warnings.filterwarnings("ignore", message="coroutine '.*' was never awaited", category=RuntimeWarning)
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
            # OpenAI and Azure also send the wait in milliseconds: finer than Retry-After's whole seconds.
            millis = headers.get("retry-after-ms")
            value = headers.get("retry-after") or headers.get("Retry-After")
        except AttributeError:
            continue
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000.0)
            except ValueError:
                pass
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


_CONNECT_ERRORS = {"ConnectError", "ClientConnectorError", "ConnectionRefusedError", "gaierror"}
_UNREACHABLE = {"ConnectError", "Timeout", "APITimeoutError", "TimeoutError"}


def _wrapped_fault(exc: BaseException) -> str | None:
    """The transport fault LiteLLM reports as a plain 500, found in the exception's chain.

    LiteLLM (1.110) turns a refused connection, a dropped connection and a malformed JSON body all into
    ``InternalServerError`` (status 500); the chain underneath says which: ``ConnectError`` (nothing
    listens there), ``APIConnectionError`` (the connection broke mid-request), ``JSONDecodeError``.
    """
    found: str | None = None
    seen: set[int] = set()
    inner = exc.__cause__ or exc.__context__
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        name = type(inner).__name__
        if name in _CONNECT_ERRORS:
            return "ConnectError"
        if name == "JSONDecodeError":
            return name
        if name == "APIConnectionError":
            found = name
        inner = inner.__cause__ or inner.__context__
    return found


def classify(exc: BaseException) -> tuple[str, int | None, bool]:
    """(error type, HTTP status or None, transient?) for a provider exception."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int) else None
    if "Missing credentials" in str(exc) or "api_key client option must be set" in str(exc):
        return "MissingCredentials", None, False  # LiteLLM reports the OpenAI client's missing key as a 500
    if name not in {"Timeout", "APITimeoutError"} and (wrapped := _wrapped_fault(exc)):
        return wrapped, None, True
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
    """Buffers rows and writes them in batches, one transaction each; the store's journal covers the gap."""

    def __init__(self, store: Store, flush_every: int) -> None:
        self.store, self.flush_every = store, flush_every
        self.responses: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def add(self, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        if response:
            self.store.journal_row("responses", response)  # survives a SIGKILL before the next commit
            self.responses.append(response)
        if error:
            self.store.journal_row("errors", error)
            self.errors.append(error)
        if len(self.responses) + len(self.errors) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.responses or self.errors:
            self.store.commit(self.responses, self.errors)
            self.responses, self.errors = [], []


async def _call(litellm: Any, req: Request, opts: ExecOptions, api_key: str | None) -> Any:
    return await _send(litellm, req.model, list(req.messages), opts, req.api_base, api_key)


async def _send(
    litellm: Any,
    model: str,
    messages: list[dict[str, str]],
    opts: ExecOptions,
    api_base: str | None,
    api_key: str | None,
) -> Any:
    """One ``litellm.acompletion`` call with ``opts.params``; an empty answer raises :class:`EmptyAnswer`."""
    kwargs: dict[str, Any] = dict(opts.params)
    if api_base:
        kwargs["api_base"] = api_base
    if api_key:
        kwargs["api_key"] = api_key
    resp = await litellm.acompletion(
        model=model, messages=messages, timeout=opts.timeout_s, num_retries=0, **kwargs
    )
    choice = resp.choices[0] if resp.choices else None
    if choice is None or not (choice.message and choice.message.content and choice.message.content.strip()):
        raise EmptyAnswer("the provider returned an empty answer")
    return resp


def _backoff(exc: BaseException, attempt: int, opts: ExecOptions) -> float:
    """Seconds to wait before retry ``attempt + 1``: Retry-After if sent, else exponential with jitter."""
    wait = _retry_after(exc)
    if wait is None:
        wait = opts.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
    return min(wait, 120.0)


async def acomplete(
    litellm: Any,
    model: str,
    messages: list[dict[str, str]],
    opts: ExecOptions,
    api_base: str | None = None,
    api_key: str | None = None,
    on_error: Any = None,
) -> tuple[Any, int]:
    """One chat completion under the run's retry policy; return (response, attempts).

    For callers outside the judgment pipeline (``vat generate``): transient faults are retried with
    backoff like :func:`execute` does; ``on_error(exc, attempt, final)`` sees each failed attempt; the
    last exception is raised when the fault is permanent or the retries are spent.
    """
    for attempt in range(1, opts.max_retries + 2):
        try:
            async with asyncio.timeout(opts.timeout_s * 1.5):  # not wait_for: see _one
                resp = await _send(litellm, model, messages, opts, api_base, api_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified; permanent faults go back to the caller
            _, _, transient = classify(exc)
            final = not transient or attempt > opts.max_retries
            if on_error is not None:
                on_error(exc, attempt, final)
            if final:
                raise
            await asyncio.sleep(_backoff(exc, attempt, opts))
            continue
        return resp, attempt
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


class RateGate:
    """One send rate shared by every worker, learnt from the provider's 429s (AIMD).

    Until the first 429 nothing is paced (a call costs one clock read). On a 429 every worker pauses
    until the provider's Retry-After, and the rate drops to ``decrease`` × the lower of the current rate
    and the rate answered lately; each later answer raises it additively (by ``increase`` × rate per
    second of sending), so it creeps back up to the limit and the next 429 trims it again. A cut
    lands only once the requests sent before it have come back: their 429s say nothing new (TCP's
    one-cut-per-window rule), and cutting for each would starve the run.
    """

    def __init__(
        self,
        clock: Any = time.monotonic,
        decrease: float = 0.9,
        increase: float = 0.01,
        min_rate: float = 0.2,
    ) -> None:
        self.clock = clock
        self.decrease, self.increase, self.min_rate = decrease, increase, min_rate
        self.rate: float | None = None
        """Requests per second; None while no 429 has been seen (unpaced)."""
        self.resume_at = 0.0
        self.last_cut = float("-inf")
        self._next = 0.0
        self._answers: deque[float] = deque()

    def reserve(self) -> float:
        """Book the next send slot; return the seconds to wait before sending (0: send now)."""
        now = self.clock()
        start = max(now, self.resume_at)
        if self.rate is not None:
            start = max(start, self._next)
            self._next = start + 1.0 / self.rate
        return start - now

    def answered(self) -> None:
        """One answer arrived: remember when (for the measured rate), and raise the rate a little."""
        now = self.clock()
        self._answers.append(now)
        while self._answers and self._answers[0] < now - 1.0:
            self._answers.popleft()
        if self.rate is not None:
            self.rate += self.increase  # per answer: ``increase`` × rate per second of sending at ``rate``

    def throttled(self, retry_after: float | None, sent_at: float, fallback_s: float = 1.0) -> None:
        """A 429 to a request sent at ``sent_at`` (this gate's clock): pause everyone; maybe cut the rate."""
        now = self.clock()
        self.resume_at = max(self.resume_at, now + (retry_after if retry_after is not None else fallback_s))
        self._next = max(self._next, self.resume_at)
        if sent_at < self.last_cut:
            return  # sent before the last cut, at the old rate: that cut already answers it
        # The rate answered lately (over the last second, or since the first answer if more recent):
        # at the first 429 this overestimates rather than under (a burst), and the next cuts correct
        # it within a few round trips, where an underestimate would take the slow additive climb back.
        if len(self._answers) < 3:
            # Too few answers to measure a rate (a 429 before any answer, a provider that fails most
            # requests): pause only; guessing a rate from nothing could crawl at 0.2 requests/s.
            return
        window = now - self._answers[0]
        measured = max(len(self._answers) / max(window, 0.05), self.min_rate)
        self.rate = max(self.min_rate, min(self.rate or measured, measured) * self.decrease)
        self.last_cut = now


async def _one(
    litellm: Any,
    req: Request,
    opts: ExecOptions,
    api_key: str | None,
    writer: _Writer,
    stats: ExecStats,
    gate: RateGate | None = None,
) -> None:
    """Obtain one judgment, with retries; record every failed attempt."""
    for attempt in range(1, opts.max_retries + 2):
        while gate is not None and (wait := gate.reserve()) > 0:
            await asyncio.sleep(wait)
            if gate.clock() >= gate.resume_at:
                break  # else a 429 paused everyone while this slept: its slot is stale, book again
        sent_at = gate.clock() if gate is not None and gate.rate is not None else 0.0
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
            final = not transient or attempt > opts.max_retries
            if gate is not None and (status == 429 or kind == "RateLimitError"):
                gate.throttled(_retry_after(exc), sent_at, opts.backoff_s)
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
            if kind in _UNREACHABLE and stats.answered == 0:
                stats.unreachable += 1
                # Two rounds of every worker failing to connect, and never an answer: stop now instead
                # of backing off through every retry of every request (tens of seconds to minutes).
                if stats.unreachable >= max(10, 2 * opts.concurrency):
                    raise _Abort(
                        f"cannot reach {req.api_base or req.model}: {stats.unreachable} attempts failed "
                        f"({kind}) and none succeeded; check model.api_base and that the server is running"
                    ) from None
            if kind == "MissingCredentials":
                raise _Abort(
                    f"no API key for {req.model}: export the provider's key variable (OPENAI_API_KEY for "
                    "openai/...) and name it with model.api_key_env="
                ) from None
            if kind in {"AuthenticationError", "PermissionDeniedError"}:
                raise _Abort(
                    f"the provider rejected the credentials for {req.model} ({kind}); "
                    f"check {opts.api_key_env or 'the API key environment variable'}"
                ) from None
            if final:
                stats.failed += 1
                return
            stats.retries += 1
            await asyncio.sleep(_backoff(exc, attempt, opts))
            continue
        if gate is not None:
            gate.answered()
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


async def _drive(
    litellm: Any, todo: Sequence[Request], opts: ExecOptions, store: Store, stats: ExecStats, on_done: Any
) -> None:
    """Run the requests with ``concurrency`` workers pulling from one iterator (keeps plan order)."""
    writer = _Writer(store, opts.flush_every)
    api_key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
    queue = iter(todo)
    gate = RateGate()  # shared: a 429 slows every worker, not only the one that got it
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
            found = litellm.validate_environment(model=model, api_base=base)
        except Exception:  # noqa: BLE001 - a provider LiteLLM cannot check: the first call will say
            continue
        missing = [k for k in found.get("missing_keys") or [] if not (base and k.endswith("_API_BASE"))]
        if missing:
            raise VatError(
                f"{model} needs {', '.join(missing)}, which is not set; export it (or name the variable "
                "with model.api_key_env=) and run again",
                1,
            )


def pending(requests: Iterable[Request], stored: set[str]) -> list[Request]:
    """The requests still to send: not stored, first occurrence of each key, plan order kept."""
    seen: set[str] = set()
    out = []
    for r in requests:
        if r.key not in stored and r.key not in seen:
            seen.add(r.key)
            out.append(r)
    return out


def execute(
    requests: Sequence[Request],
    store: Store,
    opts: ExecOptions,
    skip: set[str] | frozenset[str] = frozenset(),
) -> ExecStats:
    """Send every request whose key is not stored yet (nor in ``skip``); return what happened. Blocks until done."""
    stats = ExecStats(planned=len({r.key for r in requests}))
    todo = pending(requests, store.stored_keys([r.key for r in requests]) | set(skip))
    stats.to_send = len(todo)
    if not todo:
        return stats
    check_api_key(opts, todo)
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
