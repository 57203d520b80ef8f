"""Provider faults against real components: `vat run` → LiteLLM → HTTP → the fault server, a real DuckDB file.

Each transport fault (429 with Retry-After, 500, 503, slow past the timeout, dropped connection,
malformed JSON, empty content) must be retried and recorded, and change nothing in the result: the
metrics of a faulty run equal those of a fault-free one. Answer faults ("7", prose) are answers: stored
unparseable, counted, not retried. Permanent faults end as recorded errors, exit 3, and a rerun sends
only those requests.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import duckdb
import pytest
from support.fault_server import (
    ANSWER_KINDS,
    FAKE_KEY,
    TRANSPORT_KINDS,
    FaultPlan,
    FaultServer,
    fault_for,
    prompt_id,
    run_args,
    store_check,
)

from runner.execute.faults import RATE_LIMIT_RETRIES

# What the runner records for each fault the server injects (runner.execute.faults.classify).
ERROR_TYPE = {
    "429": "RateLimitError",
    "500": "InternalServerError",
    "503": "ServiceUnavailableError",
    "slow": "Timeout",
    "drop": "APIConnectionError",
    "malformed": "JSONDecodeError",
    "empty": "EmptyAnswer",
}
FAST = ("execution.backoff_s=0.01", "execution.timeout_s=1")
SLOW_S = 2.5  # the `slow` fault answers after this, well past execution.timeout_s


pytestmark = pytest.mark.usefixtures("fake_key")  # the server fixture: tests/support/fixtures.py


def _run(vat, server, store: Path, *extra: str):
    result = vat(*run_args(server, store, *extra))
    assert "Traceback" not in result.err
    return result, json.loads(result.out)


def _key_prompts(store: Path) -> dict[str, str]:
    """request key → the fault server's prompt id, for every request of the store."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT request_key, messages FROM requests JOIN prompts USING (prompt_hash)"
        ).fetchall()
    finally:
        con.close()
    return {key: prompt_id(json.loads(messages)) for key, messages in rows}


def _errors(store: Path) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(
            "SELECT request_key, attempt, error_type, status, final, message FROM errors ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _report(vat, store: Path) -> list[dict]:
    result = vat("report", f"store.path={store}", "format=json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize(
    "kind", [k if k == "503" else pytest.param(k, marks=pytest.mark.slow) for k in TRANSPORT_KINDS]
)  # 503 by default; the other kinds (same retry path, other faults) under -m slow
def test_each_transport_fault_is_retried_and_recorded(vat, server, tmp_path, kind):
    # A 429 carries Retry-After: 0.05 s; a 30 s backoff proves the runner waits what the server asks.
    backoff = "execution.backoff_s=30" if kind == "429" else "execution.backoff_s=0.01"
    server.configure(FaultPlan(transient_rate=1.0, transient_kinds=(kind,), slow_s=SLOW_S))
    store = tmp_path / "vat.duckdb"
    result, summary = _run(vat, server, store, "selection.max_scenes=1", "execution.timeout_s=1", backoff)
    assert result.code == 0, result.err
    assert summary["answered"] == summary["requests"] == 40 and summary["failed"] == 0
    assert summary["retries"] == 40 and summary["errors_by_kind"] == {ERROR_TYPE[kind]: 40}
    # One 30 s backoff, waited by any request, would put the run past 30 s; the bound is that, not a speed
    # (it failed at 10 s on a loaded machine, where the run took 24 s without waiting any backoff).
    assert summary["elapsed_s"] < 30  # a 30 s backoff was never waited
    errors = _errors(store)
    assert len(errors) == 40 and {(e[1], e[2], e[4]) for e in errors} == {(1, ERROR_TYPE[kind], False)}
    assert store_check(store)["responses"] == 40  # right ratings, no partial rows
    stats = server.stats()
    assert set(stats["per_prompt"].values()) == {2} and stats["faults"] == {kind: 40}


def test_answer_faults_are_stored_unparseable_and_not_retried(vat, server, tmp_path):
    plan = FaultPlan(seed=3, transient_rate=0.3, transient_kinds=ANSWER_KINDS)
    server.configure(plan)
    store = tmp_path / "vat.duckdb"
    result, summary = _run(vat, server, store, "selection.max_scenes=3", *FAST)
    assert result.code == 0, result.err
    faulty = {pid for pid in _key_prompts(store).values() if fault_for(plan, pid, 1)}
    assert 20 < len(faulty) < 50
    assert summary["answered"] == 120 and summary["unparseable"] == len(faulty) and summary["retries"] == 0
    assert set(server.stats()["per_prompt"].values()) == {1}  # never asked twice
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute(
        "SELECT r.text, r.rating, p.messages FROM responses r JOIN requests q USING (request_key) "
        "JOIN prompts p USING (prompt_hash)"
    ).fetchall()
    con.close()
    nulls = {prompt_id(json.loads(m)) for text, rating, m in rows if rating is None}
    assert nulls == faulty and {text for text, rating, _ in rows if rating is None} <= {
        "7",
        "I think this is a reasonable choice.",
    }
    assert _errors(store) == []


def _faulty_equals_clean(vat, server, tmp_path, scenes: int, seed: int) -> dict:
    """A fault-free run and a run with 20 % transient faults of every transport kind: same metrics."""
    args = ("selection.split=all", f"selection.max_scenes={scenes}", *FAST)
    clean = tmp_path / "clean" / "vat.duckdb"
    result, _ = _run(vat, server, clean, *args)
    assert result.code == 0, result.err
    server.configure(FaultPlan(seed=seed, transient_rate=0.2, slow_s=SLOW_S))
    server.reset()
    faulty = tmp_path / "faulty" / "vat.duckdb"
    result, summary = _run(vat, server, faulty, *args)
    assert result.code == 0, result.err
    n = scenes * 40
    assert summary["requests"] == summary["answered"] == n and summary["failed"] == 0
    stats = server.stats()
    injected = sum(stats["faults"].values())
    assert 0.17 * n < injected < 0.23 * n and set(stats["faults"]) == set(TRANSPORT_KINDS)
    # Every fault was retried and recorded, against the right request: each prompt reached the server
    # once plus once per recorded error, and no error is final.
    errors = _errors(faulty)
    assert len(errors) == summary["retries"] and not any(e[4] for e in errors)
    per_key: dict[str, int] = {}
    for e in errors:
        per_key[e[0]] = per_key.get(e[0], 0) + 1
    prompts = _key_prompts(faulty)
    assert all(stats["per_prompt"][pid] == 1 + per_key.get(key, 0) for key, pid in prompts.items())
    # One recorded error per injected fault, of the matching type. On a loaded machine a fault-free
    # answer can also miss the 1 s timeout: such extra timeouts are retried like any other.
    kinds = {ERROR_TYPE[k]: v for k, v in stats["faults"].items()}
    recorded = dict(summary["errors_by_kind"])
    extra_timeouts = recorded.get("Timeout", 0) - kinds["Timeout"]
    assert extra_timeouts >= 0 and {**recorded, "Timeout": kinds["Timeout"]} == kinds
    assert len(errors) == injected + extra_timeouts
    assert store_check(faulty)["responses"] == n
    assert _report(vat, faulty) == _report(vat, clean)
    return {
        "requests": n,
        "injected": injected,
        "extra_timeouts": extra_timeouts,
        "by_kind": stats["faults"],
        "elapsed_s": summary["elapsed_s"],
    }


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_transient_faults_change_nothing(vat, server, tmp_path):
    print(_faulty_equals_clean(vat, server, tmp_path, scenes=5, seed=1))


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 4,000 requests with 1 s timeouts: past the 300 s default on a loaded machine
def test_2000_requests_with_20_percent_transient_faults(vat, server, tmp_path):
    outcome = _faulty_equals_clean(vat, server, tmp_path, scenes=50, seed=2)
    assert outcome["requests"] == 2000
    print(outcome)


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_permanent_faults_are_recorded_and_a_rerun_sends_only_them(vat, server, tmp_path):
    kinds = ("400", "500", "503", "429", "drop")
    plan = FaultPlan(seed=13, permanent_rate=0.08, permanent_kinds=kinds)
    server.configure(plan)
    store = tmp_path / "vat.duckdb"
    args = ("selection.split=all", "selection.max_scenes=5", "execution.max_retries=2", *FAST)
    result, summary = _run(vat, server, store, *args)
    prompts = _key_prompts(store)
    doomed = {key: fault_for(plan, pid, 1) for key, pid in prompts.items() if fault_for(plan, pid, 1)}
    assert 5 <= len(doomed) <= 30 and len(set(doomed.values())) >= 3
    assert result.code == 3
    assert (
        f"{len(doomed)} request(s) ended in errors" in result.err
        and "run the same command again" in result.err
    )
    assert summary["failed"] == len(doomed) and summary["answered"] == 200 - len(doomed)
    # A 400 is final at once; the transient kinds get 1 + max_retries attempts, a 429 (paced by the
    # rate gate) 1 + RATE_LIMIT_RETRIES × max_retries; each attempt is recorded.
    errors = _errors(store)
    finals = {e[0]: e for e in errors if e[4]}
    assert set(finals) == set(doomed)
    expected = {"400": 1, "429": 1 + RATE_LIMIT_RETRIES * 2}
    for key, kind in doomed.items():
        attempts = [e for e in errors if e[0] == key]
        assert len(attempts) == expected.get(kind, 3), (kind, attempts)
    # The rerun (the provider has recovered) sends exactly the failed requests, once each.
    server.configure(FaultPlan())
    server.reset()
    result, again = _run(vat, server, store, *args)
    assert result.code == 0, result.err
    assert again["sent"] == len(doomed) and again["already_stored"] == 200 - len(doomed)
    sent = server.stats()["per_prompt"]
    assert set(sent) == {prompts[k] for k in doomed} and set(sent.values()) == {1}
    assert store_check(store)["responses"] == 200
    clean = tmp_path / "clean" / "vat.duckdb"
    assert _run(vat, server, clean, *args)[0].code == 0
    assert _report(vat, store) == _report(vat, clean)
    print({"doomed": sorted(doomed.values()), "errors": len(errors), "rerun_sent": again["sent"]})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_api_base_aborts_fast_with_a_clear_message(vat, tmp_path):
    port = _closed_port()
    store = tmp_path / "vat.duckdb"
    args = run_args(FaultServer(), store, "selection.max_scenes=5")  # default retries and backoff
    args = [a.replace("http://127.0.0.1:0/v1", f"http://127.0.0.1:{port}/v1") for a in args]
    result = vat(*args)
    assert result.code == 3
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.err and "model.api_base" in result.err
    assert "Traceback" not in result.err
    summary = json.loads(result.out)
    assert summary["answered"] == 0 and summary["elapsed_s"] < 10
    errors = _errors(store)
    assert errors and {e[2] for e in errors} == {"ConnectError"} and len(errors) <= 3 * 8
    print({"elapsed_s": summary["elapsed_s"], "attempts": len(errors)})


def test_a_small_plan_against_an_unreachable_endpoint_stops_after_two_attempts_each(tmp_path, monkeypatch):
    """Before: 5 replayed requests at concurrency 8 waited for 16 failed connects (48 s of backoff)."""
    from runner.compile.plan import compile_plan
    from runner.config import compose
    from runner.execute.dispatch import execute
    from runner.execute.options import ExecOptions
    from runner.spec.load import load_index
    from runner.store.store import open_store

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    cfg = compose(["model.name=openai/x", f"model.api_base=http://127.0.0.1:{_closed_port()}/v1"])
    requests = compile_plan(load_index("spec"), cfg).requests[:5]
    # Rounds 0.5 s apart: the tenth failed connect (round two) ends the run before any third attempt.
    opts = ExecOptions(concurrency=8, backoff_s=0.5, progress=False, api_key_env="OPENAI_API_KEY")
    with open_store(tmp_path / "replay.duckdb") as store:
        stats = execute(requests, store, opts)
        attempts = store.query("SELECT request_key, attempt FROM errors")
    assert stats.answered == 0 and stats.stopped and stats.stopped.startswith("cannot reach"), stats.stopped
    assert len(attempts) == 10 and {a for _, a in attempts} == {1, 2}, attempts


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_a_full_disk_ends_with_one_clear_sentence_and_the_rerun_keeps_every_answer(
    vat, tmp_path, monkeypatch
):
    """Before: a full disk ended in Hydra's traceback that hid "No space left on device" (issue 22, item 7)."""
    import errno

    from runner.store.store import Store

    store, commit, calls = tmp_path / "vat.duckdb", Store.commit, []

    def full_after_one_batch(self, responses, errors):  # the disk fills up after the first answers
        if calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        commit(self, responses, errors)
        if responses:
            calls.append(len(responses))

    args = (
        "run",
        "model.name=mock/judge",
        f"store.path={store}",
        "selection.max_scenes=2",
        "execution.progress=false",
        "execution.flush_every=10",
        f"hydra.run.dir={tmp_path / 'hydra-run'}",
        "format=json",
    )
    monkeypatch.setattr(Store, "commit", full_after_one_batch)
    result = vat(*args)
    assert result.code == 1 and "Traceback" not in result.err, result.err
    assert (
        f"no space left on the disk holding {store}" in result.err and "No space left on device" in result.err
    )
    monkeypatch.setattr(Store, "commit", commit)
    again = vat(*args)
    summary = json.loads(again.out)
    assert again.code == 0 and summary["already_stored"] >= calls[0] > 0  # the journal kept them
    con = duckdb.connect(str(store), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT request_key) FROM responses").fetchone() == (
            80,
            80,
        )
    finally:
        con.close()
