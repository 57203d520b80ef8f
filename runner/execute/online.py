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
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.compile.plan import Request
from runner.config import ExecutionConf
from runner.core.errors import VatError
from runner.execute.parse import expected_rating, parse_rating, top_logprobs_of_answer
from runner.execute.rate_gate import RateGate
from runner.execute.replicas import ApiBase, another_is_up, describe, first, replica

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
MAX_ANSWER_CHARS = 20_000
"""Longest answer text stored (a rating is a few characters; ``max_tokens`` ≤ 4,096 is ~16,000). A
provider that streams 50 MB per answer at concurrency 8 wrote a 2 GB journal before this cap."""
MAX_LOGPROB_TOKEN_CHARS = 64
"""Longest alternative token kept from the logprobs (only "1".."5" count; the rest is context)."""
UNPARSEABLE_WARN_SHARE = 0.2
"""Warn when more than this share of a run's new answers carry no rating."""
NOTICE_PAUSE_S = 5.0
"""A provider's Retry-After at least this long is announced on stderr (shorter ones are routine)."""
_QUOTA_WORDS = (
    "insufficient_quota",
    "exceeded your current quota",
    "quota exceeded",
    "billing",
    "credit balance",
)
RATE_LIMIT_RETRIES = 3
"""A 429 may be retried this many times ``execution.max_retries`` (a quota that never refills still ends)."""


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
    workers: int = 1
    """Processes that sent the requests (runner.execute.pool when > 1)."""
    paused_s: float = 0.0
    """Seconds every sender waited for a provider's Retry-After (each capped at ``max_retry_after_s``)."""

    def unusable(self) -> str | None:
        """Why this run's answers are unusable (every new answer unparseable), or None.

        An unparseable answer is stored and not retried (docs/reliability.md); when it is every answer,
        the run measured nothing, and it must not exit 0: the model, its prompt format or
        ``model.max_tokens`` is wrong.
        """
        if self.answered and self.unparseable == self.answered:
            return (
                f"all {self.answered:,} answers were unparseable (no rating 1-5 in the text or the logprobs): "
                "the run measured nothing; look at responses.text in the store, and check the model, "
                "model.max_tokens and model.logprobs"
            )
        return None

    def unparseable_warning(self) -> str | None:
        """A warning when over ``UNPARSEABLE_WARN_SHARE`` of the new answers are unparseable (but not all)."""
        if self.answered and UNPARSEABLE_WARN_SHARE < self.unparseable / self.answered < 1:
            return (
                f"{self.unparseable:,} of {self.answered:,} answers were unparseable; they count as missing"
            )
        return None

    def count(self, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        """Count one recorded row: an answer (its cost; unparseable?) or a failed attempt (final or retried)."""
        if response is not None:
            self.answered += 1
            self.cost_usd += response["cost_usd"] or 0.0
            if response["rating"] is None and response["expected_rating"] is None:
                self.unparseable += 1
        if error is not None:
            kind = error["error_type"]
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
            if error["final"]:
                self.failed += 1
            else:
                self.retries += 1


_CONF = ExecutionConf()
"""The one table of execution defaults (``conf/`` and its docs): ExecOptions repeats none of them."""


@dataclass(frozen=True)
class ExecOptions:
    """Execution settings as the senders use them, from ``execution.*`` and ``model.*``.

    The fields shared with :class:`runner.config.ExecutionConf` (:data:`FROM_CONF`) take its defaults
    and its documentation; the others are derived (``workers``, ``requests_per_s``) or come from the
    model (``params``, ``api_key_env``).
    """

    concurrency: int = _CONF.concurrency
    workers: int = 1
    """Worker processes (runner.execute.pool); 0: choose from the cores and the number of requests to send."""
    max_retries: int = _CONF.max_retries
    timeout_s: float = _CONF.timeout_s
    backoff_s: float = _CONF.backoff_s
    budget_usd: float | None = _CONF.budget_usd
    flush_every: int = _CONF.flush_every
    progress: bool = _CONF.progress
    params: dict[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None
    requests_per_s: float | None = None
    """Most requests sent per second across every worker (``execution.requests_per_minute`` / 60); None: unpaced."""
    max_retry_after_s: float = _CONF.max_retry_after_s
    """Longest Retry-After honoured: a provider's ``Retry-After: 86400`` applied to every worker froze a
    run for a day. Longer waits are cut to this, and a 429 that persists ends the request's retries."""


FROM_CONF = ("max_retries", "timeout_s", "backoff_s", "budget_usd", "flush_every", "max_retry_after_s")
"""ExecOptions fields copied as they are from ``execution.*`` (``concurrency``, ``workers`` and ``progress``
are adjusted to the model and the output format by ``runner.pipeline.exec_options``)."""


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
    if status in (402, 429) and any(w in str(exc).lower() for w in _QUOTA_WORDS):
        return (
            "QuotaExhausted",
            status,
            False,
        )  # a 429 that waiting will not fix: the account is out of credit
    if name not in {"Timeout", "APITimeoutError"} and (wrapped := _wrapped_fault(exc)):
        return wrapped, None, True
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        # The runner's own guard (1.5 × timeout_s) fired before LiteLLM's timeout did, as on a loaded
        # machine: the same fault, so the same name (a record of 38 Timeout + 2 TimeoutError misled).
        return "Timeout", status, True
    if isinstance(exc, ConnectionError):
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
    """First line of an error message, capped, with every key blanked out.

    Not only ``secret`` (the key ``model.api_key_env`` names): without that setting LiteLLM reads the
    provider's own variable, which a provider may echo back in a 401 (runner.core.secrets).
    """
    from runner.core.secrets import redact

    first = (message or "").strip().splitlines()
    # Redact before cutting: a key split at the 500th character would no longer match.
    return redact(first[0], (secret,))[:500] if first else ""


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
            if _replica_fault(exc):
                mark_failed()
            raise
    choice = resp.choices[0] if resp.choices else None
    if choice is None or not (choice.message and choice.message.content and choice.message.content.strip()):
        raise EmptyAnswer("the provider returned an empty answer")
    return resp


def _replica_fault(exc: BaseException) -> bool:
    """A fault of the server that was asked (unreachable, dropped, 5xx), not of the request or the quota.

    A 429 is the provider pacing everyone (the rate gate handles it), and a permanent fault (400, 401)
    would fail on every replica alike.
    """
    kind, status, transient = classify(exc)
    return transient and status != 429 and kind != "RateLimitError"


def _retry_wait(exc: BaseException, attempt: int, opts: ExecOptions, api_base: ApiBase) -> float:
    """The wait before a retry: none when it goes to another replica that is up, else :func:`_backoff`."""
    if another_is_up(api_base) and _replica_fault(exc):
        return 0.0
    return _backoff(exc, attempt, opts)


def _backoff(exc: BaseException, attempt: int, opts: ExecOptions) -> float:
    """Seconds to wait before retry ``attempt + 1``: Retry-After if sent, else exponential with jitter."""
    wait = _capped_retry_after(exc, opts)
    if wait is None:
        wait = opts.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
    return min(wait, 120.0)


def _capped_retry_after(exc: BaseException, opts: ExecOptions) -> float | None:
    """The provider's Retry-After, cut to ``opts.max_retry_after_s``; announced when it is long."""
    wait = _retry_after(exc)
    if wait is None:
        return None
    if wait >= NOTICE_PAUSE_S:
        _notice_pause(wait, opts.max_retry_after_s)
    return min(wait, opts.max_retry_after_s)


_ANNOUNCED: list[float] = [-math.inf]


def _notice_pause(asked: float, cap: float) -> None:
    """Tell the user why nothing moves (at most once per 10 s, so a burst of 429s is one line)."""
    now = time.monotonic()
    if now - _ANNOUNCED[0] < 10.0:
        return
    _ANNOUNCED[0] = now
    from runner.core import display

    capped = f"; waiting {cap:g} s (execution.max_retry_after_s)" if asked > cap else ""
    display.note(f"rate limited: the provider asked to wait {asked:g} s{capped}")


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
                gate.throttled(_capped_retry_after(exc, opts), sent_at, opts.backoff_s)
            if on_error is not None:
                on_error(exc, attempt, final)
            if final:
                raise
            # The gate already paces a 429's retry (everyone waits for Retry-After): no backoff on top.
            await asyncio.sleep(
                0 if limited and gate is not None else _retry_wait(exc, attempt, opts, api_base)
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
                gate.throttled(_capped_retry_after(exc, opts), sent_at, opts.backoff_s)
            error = {
                "request_key": req.key,
                "attempt": attempt,
                "error_type": kind,
                "status": status,
                "message": _clean(str(exc), api_key),
                "final": final,
                "created_at": datetime.now(),
            }
            writer.add(error=error)
            stats.count(error=error)
            if kind in _UNREACHABLE and stats.answered == 0:
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
                0 if limited and gate is not None else _retry_wait(exc, attempt, opts, req.api_base)
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
                "message": _clean(f"{type(exc).__name__}: {exc}", api_key),
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
