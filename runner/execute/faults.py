"""What went wrong with a provider call, and how long to wait before the next try.

LiteLLM's exceptions are named here once (:func:`classify`: kind, HTTP status, transient or not), and
the waits are chosen here: the provider's Retry-After (capped, announced when long), else exponential
backoff with jitter, and no wait at all when the retry goes to another replica that is up. The senders
(runner.execute.online, the pool, batch mode, ``vat generate``) all take their retry policy from here.
"""

from __future__ import annotations

import asyncio
import math
import random
import time

from runner.execute.options import ExecOptions
from runner.execute.replicas import ApiBase, another_is_up

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
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


def retry_after(exc: BaseException) -> float | None:
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
UNREACHABLE = {"ConnectError", "Timeout", "APITimeoutError", "TimeoutError"}
"""Fault kinds that mean the endpoint was not reached (a run aborts when nothing ever got through)."""


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


def clean(message: str, secret: str | None) -> str:
    """First line of an error message, capped, with every key blanked out.

    Not only ``secret`` (the key ``model.api_key_env`` names): without that setting LiteLLM reads the
    provider's own variable, which a provider may echo back in a 401 (runner.core.secrets).
    """
    from runner.core.secrets import redact

    first = (message or "").strip().splitlines()
    # Redact before cutting: a key split at the 500th character would no longer match.
    return redact(first[0], (secret,))[:500] if first else ""


def replica_fault(exc: BaseException) -> bool:
    """A fault of the server that was asked (unreachable, dropped, 5xx), not of the request or the quota.

    A 429 is the provider pacing everyone (the rate gate handles it), and a permanent fault (400, 401)
    would fail on every replica alike.
    """
    kind, status, transient = classify(exc)
    return transient and status != 429 and kind != "RateLimitError"


def retry_wait(exc: BaseException, attempt: int, opts: ExecOptions, api_base: ApiBase) -> float:
    """The wait before a retry: none when it goes to another replica that is up, else :func:`backoff`."""
    if another_is_up(api_base) and replica_fault(exc):
        return 0.0
    return backoff(exc, attempt, opts)


def backoff(exc: BaseException, attempt: int, opts: ExecOptions) -> float:
    """Seconds to wait before retry ``attempt + 1``: Retry-After if sent, else exponential with jitter."""
    wait = capped_retry_after(exc, opts)
    if wait is None:
        wait = opts.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
    return min(wait, 120.0)


def capped_retry_after(exc: BaseException, opts: ExecOptions) -> float | None:
    """The provider's Retry-After, cut to ``opts.max_retry_after_s``; announced when it is long."""
    wait = retry_after(exc)
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
