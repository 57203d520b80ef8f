"""runner.execute.pool: the plan split over worker processes, one writer, one shared rate budget.

End to end against real components: `vat run` with ``execution.workers=2`` (forked worker processes,
each with its own LiteLLM), the fault server over HTTP and a real DuckDB file.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from support.fault_server import (
    ROOT,
    FaultPlan,
    FaultServer,
    child_env,
    run_args,
    store_check,
    vat_command,
)

from runner.compile.plan import Request
from runner.execute.online import choose_workers
from runner.execute.options import ExecOptions
from runner.execute.pool import split, worker_options


def _req(key: str) -> Request:
    return Request(
        key=key,
        condition="pre",
        model="mock/x",
        api_base=None,
        messages=(),
        scene_id="s",
        scene_version=1,
        action_id="a",
        value="v",
        micro_value=None,
        polarity="pos",
    )


def test_split_partitions_by_key_and_keeps_plan_order():
    reqs = [_req(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(1000)]  # keys are digests
    shares = split(reqs, 3)
    assert sorted(r.key for s in shares for r in s) == sorted(r.key for r in reqs)  # each key exactly once
    assert all(280 < len(s) < 390 for s in shares)  # about a third each
    order = {r.key: i for i, r in enumerate(reqs)}
    assert all([order[r.key] for r in s] == sorted(order[r.key] for r in s) for s in shares)
    assert split(reqs, 3) == shares  # a pure function of the keys


def test_worker_options_split_concurrency_and_budget():
    opts = ExecOptions(concurrency=9, budget_usd=3.0, progress=True)
    parts = [worker_options(opts, i, 2) for i in range(2)]
    assert [p.concurrency for p in parts] == [5, 4]
    assert [p.budget_usd for p in parts] == [1.5, 1.5]
    assert not any(p.progress for p in parts) and all(p.workers == 1 for p in parts)
    assert worker_options(ExecOptions(concurrency=1), 1, 2).concurrency == 1  # never zero


def test_choose_workers():
    cores = os.cpu_count() or 1
    assert choose_workers(3, 10) == 3  # set explicitly: honoured
    assert choose_workers(0, 999) == 1  # a small plan: one process
    assert choose_workers(0, 1_000_000) == cores


pytestmark = pytest.mark.usefixtures("fake_key")  # the server fixture: tests/support/fixtures.py


def _stored(store: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute("SELECT request_key, rating, text FROM responses").fetchall()
    finally:
        con.close()
    return {k: (rating, text) for k, rating, text in rows}


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_two_workers_store_what_one_process_stores(vat, server, tmp_path):
    args = ("selection.split=all", "selection.max_scenes=6", "execution.backoff_s=0.01")
    one, two = tmp_path / "one" / "vat.duckdb", tmp_path / "two" / "vat.duckdb"
    r1 = vat(*run_args(server, one, *args, "execution.workers=1"))
    server.reset()
    r2 = vat(*run_args(server, two, *args, "execution.workers=2"))
    assert r1.code == 0 and r2.code == 0, r2.err
    s2 = json.loads(r2.out)
    assert s2["answered"] == s2["requests"] == 240 and s2["failed"] == 0
    assert s2["workers"] == 2 and json.loads(r1.out)["workers"] == 1
    assert _stored(one) == _stored(two)
    assert store_check(two)["responses"] == 240
    assert set(server.stats()["per_prompt"].values()) == {1}  # each request sent once, by one worker
    again = json.loads(vat(*run_args(server, two, *args, "execution.workers=2")).out)
    assert again["sent"] == 0 and again["already_stored"] == 240


# slow: worker processes under faults or kills (`make test-slow` and CI run it)
@pytest.mark.slow
def test_two_workers_retry_and_record_transient_faults(vat, server, tmp_path):
    server.configure(FaultPlan(seed=5, transient_rate=0.3, transient_kinds=("429", "500", "drop")))
    store = tmp_path / "vat.duckdb"
    result = vat(
        *run_args(
            server,
            store,
            "selection.split=all",
            "selection.max_scenes=5",
            "execution.workers=2",
            "execution.backoff_s=0.01",
        )
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    stats = server.stats()
    injected = sum(stats["faults"].values())
    assert summary["answered"] == 200 and summary["retries"] == injected > 30
    con = duckdb.connect(str(store), read_only=True)
    recorded = con.execute("SELECT count(*), count(*) FILTER (WHERE final) FROM errors").fetchone()
    con.close()
    assert recorded == (injected, 0)  # every retried fault recorded once, by the single writer
    assert store_check(store)["responses"] == 200


def _pool_children(pid: int) -> list[int]:
    """PIDs of the worker processes of ``pid`` (Linux /proc)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _start(server: FaultServer, store: Path) -> subprocess.Popen[str]:
    args = run_args(
        server,
        store,
        "selection.split=all",
        "selection.max_scenes=10",
        "execution.workers=2",
        "execution.backoff_s=0.01",
    )
    return subprocess.Popen(
        vat_command(*args),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(server: FaultServer, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while server.stats()["requests"] < at_least:
        assert time.monotonic() < deadline, "the run sent nothing for 120 s"
        time.sleep(0.01)


def _running_pool(server: FaultServer, store: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """A 2-worker run in a child process, caught mid-run (60 requests sent): the process and its workers."""
    server.configure(FaultPlan(delay_s=0.02))
    proc = _start(server, store)
    _wait(server, 60)
    workers = _pool_children(proc.pid)
    assert len(workers) == 2, workers
    return proc, workers


# slow: worker processes under faults or kills (`make test-slow` and CI run it)
@pytest.mark.slow
def test_a_dead_worker_loses_only_its_in_flight_requests(server, tmp_path):
    """SIGKILL one worker: the other finishes, the run exits 3 naming it, the rerun sends the rest once."""
    store = tmp_path / "vat.duckdb"
    proc, workers = _running_pool(server, store)
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "worker process" in err and "died" in err and "run the same command again" in err
    assert "Traceback" not in err
    first = json.loads(out)
    assert 0 < first["answered"] < 400
    facts = store_check(store)
    assert facts["responses"] == first["answered"]
    server.reset()
    rest = subprocess.run(proc.args, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert rest.returncode == 0, rest.stderr
    again = json.loads(rest.stdout)
    assert again["sent"] == 400 - first["answered"]
    assert set(server.stats()["per_prompt"].values()) == {1}
    assert store_check(store)["responses"] == 400


# slow: worker processes under faults or kills (`make test-slow` and CI run it)
@pytest.mark.slow
def test_sigkill_of_the_run_takes_its_workers_with_it(server, tmp_path):
    """No orphans: workers of a SIGKILLed run stop at once instead of sending what nobody will store."""
    store = tmp_path / "vat.duckdb"
    proc, workers = _running_pool(server, store)
    proc.kill()
    proc.communicate(timeout=30)
    time.sleep(0.5)
    after = server.stats()["requests"]
    time.sleep(0.5)
    assert server.stats()["requests"] == after  # nobody is sending any more
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]
    assert store_check(store)["responses"] >= 0  # the store opens, whole


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_an_abort_in_one_worker_stops_them_all(vat, tmp_path):
    """An unreachable endpoint: the first worker to give up stops the other; exit 3, fast, one message."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    store = tmp_path / "vat.duckdb"
    args = run_args(FaultServer(), store, "selection.max_scenes=5", "execution.workers=2")
    args = [a.replace("http://127.0.0.1:0/v1", f"http://127.0.0.1:{port}/v1") for a in args]
    result = vat(*args)
    assert result.code == 3, result.err
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.err and "Traceback" not in result.err
    summary = json.loads(result.out)
    # Seconds, not the minutes every request's full retries would take (each worker's LiteLLM import,
    # ~3 s on a quiet machine, is inside elapsed_s here).
    assert summary["answered"] == 0 and summary["elapsed_s"] < 45


def test_the_cannot_reach_rule_is_sized_by_what_the_process_sends():
    """A pool worker's stats had to_send 0, so two early timeouts stopped a 2,000-request run (slow
    test_2000_requests_with_20_percent_transient_faults); the worker now passes its share."""
    from runner.execute.online import unreachable_limit

    assert unreachable_limit(0, 8) == 2  # what a worker with to_send 0 allowed
    assert unreachable_limit(1000, 8) == 16 and unreachable_limit(5, 8) == 10
