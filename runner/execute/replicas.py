"""A pool of ``api_base`` addresses serving one model (self-hosted replicas, e.g. vLLM): which one to ask.

``model.api_base`` may list several URLs (runner.config.api_base_pool turns the list into a tuple). Each
request goes to the replica with the fewest requests in flight from this process, ties broken in turn,
so a slow replica gets less work. A replica that fails with a transport fault (refused or dropped
connection, timeout, 5xx) is left out for ``DOWN_S`` seconds and the request's retry goes to another
one; when every replica is down, the one that went down first is tried again.

The address is not part of the request key (runner.compile.plan): an answer from any replica is the
answer to the same request. A single address (a string) is used as it is, with no state at all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

ApiBase = str | tuple[str, ...] | None
"""What a request carries: no address (the provider's default), one address, or a pool of replicas."""

DOWN_S = 5.0
"""Seconds a replica that failed is left out. Long enough that a dead replica costs one failed attempt
per few seconds, not one per request; short enough that a restarted one is back within a few seconds."""


class Replicas:
    """The replicas of one pool in this process: requests in flight to each, and which are down."""

    def __init__(self, bases: tuple[str, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.bases = bases
        self.clock = clock
        self.in_flight = [0] * len(bases)
        self.down_until = [float("-inf")] * len(bases)
        self.sent = [0] * len(bases)
        self._turn = 0

    def pick(self) -> int:
        """The index of the replica to ask now: the least busy of those up (all down: the first to recover)."""
        now = self.clock()
        n = len(self.bases)
        order = [(self._turn + i) % n for i in range(n)]  # in turn, so equal loads alternate
        up = [i for i in order if self.down_until[i] <= now]
        if up:
            chosen = min(up, key=lambda i: self.in_flight[i])  # min keeps the first of equals
        else:
            chosen = min(order, key=lambda i: self.down_until[i])
        self._turn = (chosen + 1) % n
        return chosen

    def failed(self, index: int) -> None:
        """Replica ``index`` failed with a transport fault: leave it out for ``DOWN_S`` seconds."""
        self.down_until[index] = self.clock() + DOWN_S

    def any_up(self) -> bool:
        """Whether some replica is not down (a retry then need not wait: it goes elsewhere)."""
        now = self.clock()
        return any(until <= now for until in self.down_until)

    @contextlib.contextmanager
    def use(self) -> Iterator[int]:
        """Pick a replica and count the request in flight to it until the block ends."""
        index = self.pick()
        self.in_flight[index] += 1
        self.sent[index] += 1
        try:
            yield index
        finally:
            self.in_flight[index] -= 1


_POOLS: dict[tuple[str, ...], Replicas] = {}
"""One state per pool per process (each pool worker process spreads its own share of the requests)."""


def replicas(api_base: tuple[str, ...]) -> Replicas:
    """The state of the pool ``api_base`` in this process."""
    pool = _POOLS.get(api_base)
    if pool is None:
        pool = _POOLS[api_base] = Replicas(api_base)
    return pool


@contextlib.contextmanager
def replica(api_base: ApiBase) -> Iterator[tuple[str | None, Callable[[], None]]]:
    """The one place a request's address is chosen: ``(address, mark_failed)`` for the block's call.

    A string or None is yielded as it is (``mark_failed`` does nothing); a pool yields one of its
    replicas, and ``mark_failed()`` leaves that replica out for a while.
    """
    if not isinstance(api_base, tuple):
        yield api_base, lambda: None
        return
    pool = replicas(api_base)
    with pool.use() as index:
        yield api_base[index], lambda: pool.failed(index)


def another_is_up(api_base: ApiBase) -> bool:
    """Whether a retry can go to a replica that is up right away (a pool with one still answering)."""
    return isinstance(api_base, tuple) and replicas(api_base).any_up()


def first(api_base: ApiBase) -> str | None:
    """One address of ``api_base`` (the first of a pool), for checks that need one (which key it needs)."""
    return api_base[0] if isinstance(api_base, tuple) else api_base


def describe(api_base: ApiBase) -> str | None:
    """``api_base`` for a message: the address, or "any of A, B" for a pool."""
    if isinstance(api_base, tuple):
        return "any of " + ", ".join(api_base)
    return api_base
