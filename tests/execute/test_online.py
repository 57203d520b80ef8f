"""Execution end to end on the mock provider: store contents, resume, retries (stage 3)."""

from __future__ import annotations

import json

import duckdb
import pytest
from support.shipped_counts import PER_SCENE

from runner.compile.plan import compile_plan
from runner.config import compose
from runner.execute.dispatch import execute
from runner.execute.faults import classify
from runner.execute.online import pending
from runner.execute.options import ExecOptions
from runner.pipeline import execute_run
from runner.spec.load import load_index
from runner.store.store import open_store


def _cfg(store_path, *overrides):
    return compose(
        [
            "model.name=mock/judge",
            f"store.path={store_path}",
            "selection.max_scenes=5",
            "execution.progress=false",
            *overrides,
        ]
    )


def test_end_to_end_on_the_mock_provider(vat, store_path):
    result = vat(
        "run", "model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=5", "format=json"
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["requests"] == summary["sent"] == summary["answered"] == 5 * PER_SCENE * 2
    con = duckdb.connect(store_path, read_only=True)
    assert (
        con.execute("SELECT count(*), count(rating), count(expected_rating) FROM responses").fetchone()
        == (5 * PER_SCENE * 2,) * 3
    )
    assert con.execute("SELECT count(*) FROM run_requests").fetchone()[0] == 5 * PER_SCENE * 2
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 5 * PER_SCENE * 2
    assert con.execute("SELECT count(*) FROM errors").fetchone()[0] == 0
    con.close()


def test_rerun_sends_nothing(vat, store_path):
    args = (
        "run",
        "model.name=mock/judge",
        f"store.path={store_path}",
        "selection.max_scenes=3",
        "format=json",
    )
    assert vat(*args).code == 0
    again = json.loads(vat(*args).out)
    assert again["sent"] == 0 and again["already_stored"] == again["requests"] == 3 * PER_SCENE * 2


def test_other_strategy_reuses_the_stored_pre_condition(vat, store_path):
    base = (
        "run",
        "model.name=mock/judge",
        f"store.path={store_path}",
        "selection.max_scenes=3",
        "format=json",
    )
    vat(*base, "strategy=fewshot_2")
    second = json.loads(vat(*base, "strategy=fewshot_8", "target=power").out)
    assert (
        second["already_stored"] == 3 * PER_SCENE and second["sent"] == 3 * PER_SCENE
    )  # pre shared, post new


def test_resume_after_a_crash_sends_only_missing_keys(store_path):
    cfg = _cfg(store_path)
    index = load_index("spec")
    plan = compile_plan(index, cfg)
    keys = plan.keys()
    with open_store(store_path) as store:
        # Simulate a run killed after its first 70 answers were committed.
        opts = ExecOptions(
            progress=False, params={"max_tokens": 3, "temperature": 0.0, "logprobs": True, "top_logprobs": 5}
        )
        first = execute(plan.requests[:70], store, opts)
        assert first.answered == 70
        todo = pending(plan.requests, store.stored_keys(keys))
        assert len(todo) == len(keys) - 70
        stats = execute(plan.requests, store, opts)
        assert stats.to_send == len(keys) - 70 and stats.answered == len(keys) - 70
        assert store.query("SELECT count(*), count(DISTINCT request_key) FROM responses")[0] == (
            len(keys),
            len(keys),
        )


def test_unparseable_answers_are_stored_and_counted(store_path):
    cfg = _cfg(store_path, "model.name=mock/prose", "model.logprobs=false")
    _, stats = execute_run(cfg, [])
    assert stats.answered == stats.unparseable == 5 * PER_SCENE * 2
    with open_store(store_path, read_only=True) as store:
        assert store.query("SELECT count(*), count(rating) FROM responses")[0] == (5 * PER_SCENE * 2, 0)


def test_empty_answers_are_retried_then_recorded(store_path):
    cfg = _cfg(
        store_path,
        "model.name=mock/empty",
        "execution.max_retries=1",
        "execution.backoff_s=0.001",
        "selection.max_scenes=1",
    )
    _, stats = execute_run(cfg, [])
    # Every attempt fails, so the run gives up after 20 requests in a row failed with no success.
    # (Requests still being retried when the run aborts count a retry but no final failure.)
    assert stats.answered == 0 and 20 <= stats.failed < 40 and stats.retries >= stats.failed
    assert "in a row failed" in stats.stopped
    with open_store(store_path, read_only=True) as store:
        rows = store.query(
            "SELECT request_key, attempt, final, error_type FROM errors ORDER BY request_key, attempt"
        )
    assert {r[3] for r in rows} == {"EmptyAnswer"}
    finals = [r for r in rows if r[2]]
    assert len(finals) == stats.failed and all(r[1] == 2 for r in finals)  # 1 retry, then final


def test_stats_for_a_plan_with_nothing_to_send(store_path):
    with open_store(store_path) as store:
        assert execute([], store, ExecOptions(progress=False)).to_send == 0


@pytest.mark.parametrize(
    ("name", "status", "transient"),
    [
        ("RateLimitError", 429, True),
        ("ServiceUnavailableError", 503, True),
        ("Timeout", 408, True),
        ("APIConnectionError", None, True),
        ("BadRequestError", 400, False),
        ("NotFoundError", 404, False),
    ],
)
def test_classify(name, status, transient):
    exc = type(name, (Exception,), {})("boom")
    exc.status_code = status
    assert classify(exc)[2] is transient


def test_the_runners_own_timeout_guard_is_recorded_as_a_timeout():
    """Before: on a loaded machine the 1.5 × timeout_s guard fired first and 2 of 40 slow requests were
    recorded as TimeoutError beside 38 Timeout, for one and the same fault."""
    assert classify(TimeoutError())[0] == classify(type("Timeout", (Exception,), {})("slow"))[0] == "Timeout"
    assert classify(TimeoutError())[2] is True


class _Clock:
    """A hand-moved clock for the rate gate."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rate_gate_paces_after_a_429_and_cuts_once_per_overshoot():
    import math

    from runner.execute.rate_gate import RateGate

    clock = _Clock()
    gate = RateGate(clock=clock, decrease=0.9, recover_s=2.0, probe=0.02, margin=1.0)
    assert gate.reserve() == 0 and gate.rate is None  # unpaced until the first 429
    for _ in range(20):  # 20 answers, one per 0.05 s: the provider admits ~20/s
        clock.t += 0.05
        gate.answered()
    # The 1-second exponential average, by hand: sum of e^-(0.05 k) for k < 20, over 1 - e^-0.95.
    measured = sum(math.exp(-0.05 * k) for k in range(20)) / (1 - math.exp(-0.95))
    assert measured == pytest.approx(21.135, abs=1e-3) and gate.measured(clock.t) == pytest.approx(measured)
    gate.throttled(retry_after=0.1, sent_at=0.0)
    assert gate.rate == pytest.approx(0.9 * measured)
    # Everyone pauses until Retry-After, then sends one request per 1/rate seconds.
    waits = [gate.reserve() for _ in range(3)]
    assert waits[0] == pytest.approx(0.1) and waits[1] - waits[0] == pytest.approx(1 / gate.rate)
    # 429s of requests sent before the cut, or while the cut settles, say nothing new: no second cut.
    rate = gate.rate
    gate.throttled(retry_after=0.1, sent_at=clock.t - 0.01)
    clock.t += 1.0
    gate.throttled(retry_after=0.1, sent_at=clock.t)
    assert gate.rate == rate
    # Answers climb back to the level that met the limit (0.1 of it per 2 s), then probe 2 %/s past it.
    gate.answered()
    assert gate.rate == pytest.approx(rate + measured * 0.1 * 1.0 / 2.0)
    clock.t += 1.0
    gate.answered()
    assert gate.rate == pytest.approx(measured)
    clock.t += 0.5
    gate.answered()
    assert gate.rate == pytest.approx(measured * 1.01)
    # A later overshoot cuts again; without Retry-After everyone waits ``fallback_s``.
    clock.t += 2.0
    gate.throttled(retry_after=None, sent_at=clock.t, fallback_s=2.0)
    assert gate.rate < rate and gate.resume_at == pytest.approx(clock.t + 2.0)
    # A 2 s pause makes each 429 dear: the next probe goes 20 times slower (0.1 s / 2 s).
    assert gate.state[gate.PROBE] == pytest.approx(0.02 * 0.05)


def test_rate_gate_does_not_count_pauses_in_the_measured_rate():
    """Retry-After pauses are the provider's: measuring through them would ratchet every cut lower."""
    import math

    from runner.execute.rate_gate import RateGate

    clock = _Clock()
    gate = RateGate(clock=clock)
    for _ in range(40):  # 2 s at 20/s
        clock.t += 0.05
        gate.answered()
    before = gate.measured(clock.t)
    gate.throttled(retry_after=1.0, sent_at=0.0)  # a 1 s pause (sent before any cut: cuts once)
    clock.t += 1.0
    gate.answered()
    span = 1 - math.exp(-1.95)  # 1.95 s of sending since the first answer: the pause is left out
    assert gate.measured(clock.t) == pytest.approx(before + 1 / span)


def test_rate_gate_shares_its_numbers_across_processes():
    """Two gates over one shared-memory array: a 429 seen by one pauses and paces the other."""
    import multiprocessing

    from runner.execute.rate_gate import RateGate

    clock = _Clock()
    ctx = multiprocessing.get_context("spawn")
    state = ctx.RawArray("d", RateGate.new_state())
    lock = ctx.Lock()
    a, b = RateGate(clock=clock, state=state, lock=lock), RateGate(clock=clock, state=state, lock=lock)
    for _ in range(10):
        clock.t += 0.1
        a.answered()
    a.throttled(retry_after=0.3, sent_at=0.0)
    assert b.rate == a.rate and b.rate is not None
    assert b.reserve() == pytest.approx(0.3) and a.reserve() == pytest.approx(0.3 + 1 / a.rate)


def test_rate_gate_only_pauses_when_nothing_was_answered_yet():
    from runner.execute.rate_gate import RateGate

    clock = _Clock()
    gate = RateGate(clock=clock)
    gate.throttled(retry_after=0.05, sent_at=0.0)  # a 429 before any answer: no rate to measure
    assert gate.rate is None and gate.reserve() == pytest.approx(0.05)
    clock.t += 0.05
    assert gate.reserve() == 0


def test_rate_gate_reaches_the_limit_of_a_token_bucket_without_losing_requests():
    """A simulated provider admitting 100/s (token bucket, burst 10) and 8 workers: near the limit, no loss."""
    import asyncio

    from runner.execute.rate_gate import RateGate

    clock = _Clock()
    gate = RateGate(clock=clock)
    tokens, stamp, limited, lost, done = 10.0, clock.t, 0, 0, 0
    rps = 100.0

    async def worker(todo):
        nonlocal tokens, stamp, limited, lost, done
        for _ in todo:
            for _attempt in range(5):
                while (wait := gate.reserve()) > 0:
                    clock.t += wait  # simulated time: sleeping moves the clock
                    await asyncio.sleep(0)
                    if clock() >= gate.resume_at:
                        break
                sent = clock()
                clock.t += 0.002  # the call itself
                await asyncio.sleep(0)
                tokens = min(10.0, tokens + (clock.t - stamp) * rps)
                stamp = clock.t
                if tokens >= 1:
                    tokens -= 1
                    gate.answered()
                    done += 1
                    break
                limited += 1
                gate.throttled((1 - tokens) / rps, sent)
            else:
                lost += 1

    todo = iter(range(3000))
    start = clock.t

    async def drive():
        await asyncio.gather(*(worker(todo) for _ in range(8)))

    asyncio.run(drive())
    assert lost == 0 and done == 3000
    assert done / (clock.t - start) >= 0.9 * rps
    assert limited < 300  # paced, not hammering the provider


def test_execution_defaults_live_in_one_table_and_every_setting_reaches_the_senders() -> None:
    """ExecOptions takes ExecutionConf's defaults; `exec_options` copies each configured setting."""
    from dataclasses import fields

    from runner.config import ExecutionConf
    from runner.execute.options import FROM_CONF
    from runner.pipeline import exec_options

    conf, opts = ExecutionConf(), ExecOptions()
    shared = {f.name for f in fields(ExecOptions)} & {f.name for f in fields(ExecutionConf)}
    assert set(FROM_CONF) | {"concurrency", "workers", "progress"} == shared
    assert all(getattr(opts, name) == getattr(conf, name) for name in shared - {"workers"})
    changed = {
        "max_retries": 7,
        "timeout_s": 12.5,
        "backoff_s": 0.25,
        "budget_usd": 0.5,
        "flush_every": 9,
        "max_retry_after_s": 3.0,
    }
    assert set(changed) == set(FROM_CONF)  # a new shared setting must be added here, and it will be checked
    cfg = compose(
        ["model.name=mock/a", "execution.concurrency=3", *(f"execution.{k}={v}" for k, v in changed.items())]
    )
    got = exec_options(cfg)
    assert {name: getattr(got, name) for name in FROM_CONF} == changed and got.concurrency == 3
