"""A pool of ``api_base`` replicas (runner.execute.replicas): spreading, failover, same request keys, bad values.

Before: ``model.api_base`` took one URL; a list failed at composition, so several vLLM replicas of one
model needed a proxy in front of them.
"""

from __future__ import annotations

import asyncio

import pytest

from runner.compile.plan import compile_plan
from runner.config import api_base_pool, compose
from runner.core.errors import VatError
from runner.execute import replicas as rp
from runner.execute.online import acomplete
from runner.execute.options import ExecOptions
from runner.spec.load import load_index

A, B = "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_alternate_and_go_to_the_least_busy_replica():
    pool = rp.Replicas((A, B), Clock())
    assert [pool.pick() for _ in range(4)] == [0, 1, 0, 1]  # equal loads: in turn
    with pool.use() as first, pool.use() as second, pool.use() as third:
        assert (first, second) == (0, 1) and third == 0
        with pool.use() as fourth:
            assert fourth == 1  # 0 has two in flight, 1 has one
    assert pool.sent == [2, 2] and pool.in_flight == [0, 0]


def test_a_failed_replica_is_left_out_then_tried_again():
    clock = Clock()
    pool = rp.Replicas((A, B), clock)
    pool.failed(0)
    assert [pool.pick() for _ in range(3)] == [1, 1, 1] and pool.any_up()
    clock.now += rp.DOWN_S
    assert sorted(pool.pick() for _ in range(2)) == [0, 1]  # back after DOWN_S
    pool.failed(1)
    clock.now += 1
    pool.failed(0)
    assert not pool.any_up() and pool.pick() == 1  # all down: the first to come back


def test_one_address_is_used_as_it_is():
    with rp.replica(A) as (address, mark_failed):
        mark_failed()
        assert address == A
    with rp.replica(None) as (address, _):
        assert address is None
    assert (A,) not in rp._POOLS


def _plan(*overrides: str):
    return compile_plan(
        load_index("spec"), compose(["selection.max_scenes=2", "model.name=openai/x", *overrides])
    )


def test_the_request_keys_do_not_depend_on_the_replicas():
    one = _plan(f"model.api_base={A}")
    pool = _plan(f"model.api_base=[{A},{B}]")
    none = _plan()
    assert one.keys() == pool.keys() == none.keys()
    assert {r.api_base for r in pool.requests} == {(A, B)}
    single = _plan(f"model.api_base=[{A}]")  # a one-URL list is that URL: the same requests
    assert single.requests == one.requests and {r.api_base for r in one.requests} == {A}


@pytest.mark.parametrize(
    ("value", "needle"),
    [("[]", "model.api_base=[] lists no server"), ("[foo]", "model.api_base[0]='foo' is not a URL")],
)
def test_a_bad_pool_is_one_sentence_naming_the_field(vat, value, needle):
    result = vat("plan", "model.name=openai/x", f"model.api_base={value}")
    assert result.code == 2 and needle in " ".join(result.err.split()) and "Traceback" not in result.err
    with pytest.raises(VatError, match="write each replica as http://host:port/v1"):
        api_base_pool(["http://ok/v1", 3])


def test_batch_mode_refuses_a_pool():
    from runner.execute.dispatch import check_execution_mode

    cfg = compose(["execution.mode=batch", "model.name=openai/x", f"model.api_base=[{A},{B}]"])
    with pytest.raises(VatError, match="lists several; give one URL"):
        check_execution_mode(cfg)


class _Litellm:
    """A fake ``litellm``: replica A refuses connections, B answers."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def acompletion(self, **kwargs):
        from types import SimpleNamespace

        self.calls.append(kwargs["api_base"])
        if kwargs["api_base"] == A:
            raise ConnectionRefusedError("nothing listens there")
        message = SimpleNamespace(content="4")
        return SimpleNamespace(choices=[SimpleNamespace(message=message)])


def test_a_transport_fault_is_retried_on_another_replica_at_once():
    fake = _Litellm()
    pool = (A, B, "http://127.0.0.1:8003/v1")
    rp._POOLS.pop(pool, None)
    opts = ExecOptions(backoff_s=30.0, max_retries=2)  # a backoff would show as a 30 s test
    resp, attempts = asyncio.run(asyncio.wait_for(acomplete(fake, "openai/x", [], opts, api_base=pool), 5))
    assert resp.choices[0].message.content == "4" and attempts == 2
    assert fake.calls == [A, B]
    assert not rp.replicas(pool).down_until[1] > rp.replicas(pool).clock()  # B stays up
