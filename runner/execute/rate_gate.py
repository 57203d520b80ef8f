"""The send rate shared by every worker and worker process, learnt from the provider's 429s (TCP CUBIC's shape)."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any


class RateGate:
    """One send rate shared by every worker (and worker process), learnt from the provider's 429s.

    Until the first 429 nothing is paced (a call costs one clock read), unless a ``ceiling`` (requests
    per second) is set: no request is ever sent faster than that, before or after a 429. On a 429 every worker pauses
    until the provider's Retry-After, and the rate drops to ``decrease`` × the lower of the current rate
    and the rate answered lately (``w_max``, the level that met the limit). The rate then climbs back to
    ``w_max`` within ``recover_s`` and, past it, probes upwards by ``probe`` × rate per second, so it
    sits near the limit most of the time (TCP CUBIC's shape: fast back to the last good level, slow
    beyond it). At most one cut per ``recover_s``, and none for a 429 to a request sent before the
    last cut: those 429s say nothing new (TCP's one-cut-per-window rule), and cutting for each would
    starve the run. The same rule keeps sporadic 429s (an overloaded provider, a fault test) from
    ratcheting the rate down to nothing.

    All numbers live in ``state``, a flat array of floats: a list in one process, or shared memory
    (``multiprocessing.RawArray``) with a process-shared ``lock`` when several worker processes
    draw from one budget. The clock must then be system-wide (``time.monotonic`` is).
    """

    RATE, NEXT, RESUME, LAST_CUT, W_MAX, COUNT, STAMP, FIRST, CLIMBED, ANSWERS, PAUSED, PROBE = range(12)
    CUT_ANSWERS, CUT_LIMITED = 12, 13
    SIZE = 14

    def __init__(
        self,
        clock: Any = time.monotonic,
        decrease: float = 0.9,
        recover_s: float = 2.0,
        probe: float = 0.02,
        margin: float = 0.97,
        min_rate: float = 0.2,
        state: Any = None,
        lock: Any = None,
        ceiling: float | None = None,
    ) -> None:
        self.clock = clock
        # The most requests per second ever sent (execution.requests_per_minute / 60), learnt rate or not:
        # a provider's published limit is known before its first 429, and meeting it costs a pause.
        self.ceiling = ceiling
        self.decrease, self.recover_s, self.probe, self.min_rate = decrease, recover_s, probe, min_rate
        self.margin = margin
        self.state = state if state is not None else self.new_state()
        self.lock = lock if lock is not None else contextlib.nullcontext()

    @classmethod
    def new_state(cls) -> list[float]:
        """Initial numbers for a fresh gate (copy them into shared memory to share one)."""
        state = [0.0] * cls.SIZE
        state[cls.LAST_CUT] = float("-inf")
        return state

    @property
    def rate(self) -> float | None:
        """Requests per second; None while no 429 has been seen (unpaced)."""
        return self.state[self.RATE] or None

    @property
    def paused_s(self) -> float:
        """Seconds everyone has spent (or is booked to spend) waiting for Retry-After so far."""
        return self.state[self.PAUSED]

    @property
    def resume_at(self) -> float:
        """Nobody sends before this moment (the latest Retry-After)."""
        return self.state[self.RESUME]

    def reserve(self) -> float:
        """Book the next send slot; return the seconds to wait before sending (0: send now)."""
        s = self.state
        with self.lock:
            now = self.clock()
            start = max(now, s[self.RESUME])
            rate = s[self.RATE]
            if self.ceiling is not None:
                rate = min(rate, self.ceiling) if rate else self.ceiling
            if rate:
                start = max(start, s[self.NEXT])
                s[self.NEXT] = start + 1.0 / rate
            return start - now

    def _active(self, now: float) -> float:
        """The clock without the time everyone spent paused for Retry-After.

        The measured rate runs on it: pauses are the provider's doing, and counting them would measure
        a rate lower than the one the provider admits, so every cut would ratchet the rate further down.
        """
        s = self.state
        return now - s[self.PAUSED] + max(0.0, s[self.RESUME] - now)  # only the pause time already spent

    def measured(self, now: float) -> float:
        """Answers per second of sending lately: a 1-second exponential average.

        ``COUNT`` holds the answers, each decayed by e^-(its age in seconds); at a steady λ per second it
        tends to λ·(1 − e^-T) after T seconds, so dividing by that factor is unbiased from the start.
        """
        s = self.state
        active = self._active(now)
        span = 1.0 - math.exp(-max(active - s[self.FIRST], 0.05))
        return s[self.COUNT] * math.exp(-max(active - s[self.STAMP], 0.0)) / span

    def answered(self) -> None:
        """One answer arrived: count it (for the measured rate) and let the rate climb."""
        s = self.state
        with self.lock:
            now = self.clock()
            active = self._active(now)
            if s[self.ANSWERS] == 0:
                s[self.FIRST] = active
            s[self.COUNT] = s[self.COUNT] * math.exp(-max(active - s[self.STAMP], 0.0)) + 1.0
            s[self.STAMP] = active
            s[self.ANSWERS] += 1
            rate = s[self.RATE]
            if rate:
                dt = min(max(now - s[self.CLIMBED], 0.0), 1.0)
                if rate < s[self.W_MAX]:  # back to the last good level within recover_s
                    rate = min(
                        s[self.W_MAX], rate + s[self.W_MAX] * (1 - self.decrease) * dt / self.recover_s
                    )
                else:  # past it: probe for more, slowly
                    rate += rate * s[self.PROBE] * dt
                s[self.RATE] = rate
            s[self.CLIMBED] = now

    def throttled(self, retry_after: float | None, sent_at: float, fallback_s: float = 1.0) -> None:
        """A 429 to a request sent at ``sent_at`` (this gate's clock): pause everyone; maybe cut the rate."""
        s = self.state
        with self.lock:
            now = self.clock()
            until = now + (retry_after if retry_after is not None else fallback_s)
            s[self.PAUSED] += max(0.0, until - max(now, s[self.RESUME]))
            s[self.RESUME] = max(s[self.RESUME], until)
            s[self.NEXT] = max(s[self.NEXT], s[self.RESUME])
            if sent_at < s[self.LAST_CUT]:
                return  # sent at the old rate: the last cut answers it
            s[self.CUT_LIMITED] += 1
            overshooting = self._overshooting()
            if now < s[self.LAST_CUT] + self.recover_s and not overshooting:
                return  # the last cut is still settling, and most requests since it were answered
            if s[self.ANSWERS] < 3:
                # Too few answers to measure a rate (a 429 before any answer, a provider that fails most
                # requests): pause only; guessing a rate from nothing could crawl at 0.2 requests/s.
                return
            # The rate answered lately: at the first 429 this overestimates rather than under (a burst),
            # and the next cuts correct it within a few round trips, where an underestimate would cost
            # the climb back.
            measured = max(self.measured(now), self.min_rate)
            level = min(s[self.RATE] or measured, measured)
            s[self.W_MAX] = level * self.margin
            # The next probe past that level will meet the limit again: each 429 costs everyone its
            # Retry-After, so the longer the pause, the slower the probe (2 %/s at 0.1 s or less).
            pause = retry_after if retry_after is not None else fallback_s
            s[self.PROBE] = self.probe * min(1.0, 0.1 / max(pause, 1e-3))
            s[self.RATE] = max(self.min_rate, level * self.decrease)
            s[self.CLIMBED] = now
            s[self.LAST_CUT] = now
            s[self.CUT_ANSWERS], s[self.CUT_LIMITED] = s[self.ANSWERS], 0.0

    def _overshooting(self) -> bool:
        """Since the last cut, have at least 5 requests, and over 20 %, met a 429? Then it cut too little.

        The first cut measures a burst and can land well above the limit; waiting ``recover_s`` at that
        rate would meet a 429 on most requests. Sporadic 429s (a few percent) never trigger this.
        """
        s = self.state
        limited = s[self.CUT_LIMITED]
        return limited >= 5 and limited > 0.2 * (limited + s[self.ANSWERS] - s[self.CUT_ANSWERS])
