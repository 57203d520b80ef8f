"""What the senders are told (:class:`ExecOptions`) and what they report back (:class:`ExecStats`).

Kept apart from the senders so that planning, the sweep driver and batch mode can build options and
read stats without the sending machinery; the defaults are :class:`runner.config.ExecutionConf`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.config import ExecutionConf

UNPARSEABLE_WARN_SHARE = 0.2
"""Warn when more than this share of a run's new answers carry no rating."""


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
