"""The rate gate's ceiling (``execution.requests_per_minute``): known limits are kept before any 429.

Before: the only pace was the one learnt from 429s, so a provider's published limit was met (and paid
for with a Retry-After pause) before the run slowed down; a sweep's jobs each met it on their own.
"""

from __future__ import annotations

import pytest

from runner.execute.rate_gate import RateGate


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_ceiling_paces_from_the_first_request():
    gate = RateGate(clock=_Clock(), ceiling=10.0)
    waits = [gate.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_learnt_rate_above_the_ceiling_is_cut_to_it_and_one_below_is_kept():
    clock = _Clock()
    gate = RateGate(clock=clock, ceiling=5.0)
    gate.state[RateGate.RATE] = 50.0  # learnt from 429s, above the ceiling
    assert [gate.reserve() for _ in range(2)] == pytest.approx([0.0, 0.2])
    slow = RateGate(clock=clock, ceiling=5.0)
    slow.state[RateGate.RATE] = 2.0  # the provider admits less than the ceiling: its pace wins
    assert [slow.reserve() for _ in range(2)] == pytest.approx([0.0, 0.5])


def test_the_ceiling_holds_across_gates_that_share_their_state():
    # Pool worker processes share one state: the ceiling is for all of them together, not each.
    clock, state = _Clock(), RateGate.new_state()
    a, b = RateGate(clock=clock, state=state, ceiling=4.0), RateGate(clock=clock, state=state, ceiling=4.0)
    assert [a.reserve(), b.reserve(), a.reserve(), b.reserve()] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_no_ceiling_sends_at_once():
    gate = RateGate(clock=_Clock())
    assert [gate.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_config_gives_the_ceiling_per_second():
    from runner.config import compose
    from runner.pipeline import exec_options

    opts = exec_options(compose(["model.name=openai/x", "execution.requests_per_minute=90"]))
    assert opts.requests_per_s == pytest.approx(1.5)
    assert exec_options(compose(["model.name=openai/x"])).requests_per_s is None
