"""Batch mode (``execution.mode=batch``) against a fake OpenAI Files + Batch API on 127.0.0.1, through LiteLLM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from support.fake_batch_server import FakeBatchServer, rating_for
from support.shipped_counts import PER_SCENE

from runner.compile.plan import Request
from runner.execute.batch import chunks

ROOT = Path(__file__).resolve().parents[2]
SCENES = 3
PLAN = SCENES * PER_SCENE * 2  # requests: 3 scenes × their actions × (pre, post)
LIMIT = PLAN // 2 - 10  # execution.batch_max_requests for three batches: LIMIT, LIMIT and 20
FAILED = PLAN // 4  # fail_every=4


@pytest.fixture
def server(monkeypatch):
    with FakeBatchServer() as srv:
        monkeypatch.setenv("OPENAI_API_KEY", srv.config.api_key)
        yield srv


def _args(server: FakeBatchServer, store: str, *extra: str) -> list[str]:
    return [
        "run",
        "model.name=openai/fake-judge",
        f"model.api_base={server.api_base}",
        "model.api_key_env=OPENAI_API_KEY",
        f"store.path={store}",
        f"selection.max_scenes={SCENES}",
        "execution.mode=batch",
        "execution.batch_poll_s=0.02",
        "execution.progress=false",
        f"hydra.run.dir={Path(store).parent / 'hydra-run'}",
        "format=json",
        *extra,
    ]


def _run(vat, server, store: str, *extra: str) -> tuple[int, dict]:
    result = vat(*_args(server, store, *extra))
    assert "Traceback" not in result.err, result.err
    return result.code, json.loads(result.out)


def _rows(store: str, sql: str) -> list[tuple]:
    con = duckdb.connect(store, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _sidecar(store: str) -> dict:
    (path,) = Path(f"{store}.batches").glob("*.json")
    return json.loads(path.read_text())


def _assert_all_answered_correctly(store: str, n: int) -> None:
    rows = _rows(
        store,
        "SELECT p.messages, r.rating, r.expected_rating FROM responses r JOIN requests q USING (request_key) "
        "JOIN prompts p USING (prompt_hash)",
    )
    assert len(rows) == n
    for messages, rating, expected in rows:
        want = rating_for(json.loads(messages))
        assert rating == want and expected == pytest.approx(want, abs=0.1)


def test_full_batch_run_stores_every_answer_split_under_the_limit(vat, server, store_path):
    code, s = _run(vat, server, store_path, f"execution.batch_max_requests={LIMIT}")
    assert code == 0 and s["requests"] == PLAN and s["answered"] == PLAN and s["failed"] == 0
    assert len(server.batches) == 3  # LIMIT + LIMIT + 20
    assert sorted(b["request_counts"]["total"] for b in server.batches.values()) == [20, LIMIT, LIMIT]
    assert (
        Counter(server.received) == Counter({k: 1 for k in set(server.received)})
        and len(server.received) == PLAN
    )
    _assert_all_answered_correctly(store_path, PLAN)
    side = _sidecar(store_path)
    assert len(side["batches"]) == 3 and all(
        b["ingested"] and b["status"] == "completed" for b in side["batches"]
    )
    assert _rows(store_path, "SELECT count(*) FROM responses WHERE latency_s IS NOT NULL") == [(0,)]

    code, s = _run(vat, server, store_path)  # everything stored: nothing is submitted again
    assert code == 0 and s["sent"] == 0 and len(server.batches) == 3


def test_partly_failed_batch_is_resumed_for_the_missing_keys_only(vat, server, store_path):
    server.config.fail_every = 4
    code, s = _run(vat, server, store_path)
    assert code == 3 and s["answered"] == PLAN - FAILED and s["failed"] == FAILED
    failed = {k for (k,) in _rows(store_path, "SELECT request_key FROM errors WHERE final")}
    assert len(failed) == FAILED and _rows(store_path, "SELECT DISTINCT error_type, status FROM errors") == [
        ("server_error", 500)
    ]

    server.config.fail_every = 0
    code, s = _run(vat, server, store_path)
    assert code == 0 and s["sent"] == FAILED and s["answered"] == FAILED
    assert (
        len(server.batches) == 2
        and set(server.received[PLAN:]) == failed
        and len(server.received) == PLAN + FAILED
    )
    _assert_all_answered_correctly(store_path, PLAN)
    assert _rows(store_path, "SELECT max(attempts) FROM responses") == [
        (2,)
    ]  # the second try of those FAILED


def test_expired_batch_keeps_its_answers_and_resubmits_the_rest(vat, server, store_path):
    server.config.expire, server.config.expire_after = True, 45
    code, s = _run(vat, server, store_path)
    assert code == 3 and s["answered"] == 45 and s["failed"] == PLAN - 45
    assert _rows(store_path, "SELECT error_type, count(*) FROM errors GROUP BY 1") == [
        ("BatchExpired", PLAN - 45)
    ]
    unanswered = {k for (k,) in _rows(store_path, "SELECT request_key FROM errors")}

    server.config.expire = False
    code, s = _run(vat, server, store_path)
    assert code == 0 and s["sent"] == PLAN - 45 and len(server.received) == PLAN + PLAN - 45
    assert set(server.received[PLAN:]) == unanswered == set(server.received[45:PLAN])
    _assert_all_answered_correctly(store_path, PLAN)


def test_a_failed_batch_records_why_and_the_next_run_sends_it_again(vat, server, store_path):
    server.config.fail_batch = True
    code, s = _run(vat, server, store_path)
    assert code == 3 and s["answered"] == 0 and s["failed"] == PLAN
    assert _rows(store_path, "SELECT DISTINCT error_type, message FROM errors") == [
        ("BatchFailed", "Model not available for batch.")
    ]
    server.config.fail_batch = False
    code, s = _run(vat, server, store_path)
    assert code == 0 and s["answered"] == PLAN and len(server.received) == 2 * PLAN
    _assert_all_answered_correctly(store_path, PLAN)


def test_run_that_stops_waiting_reattaches_to_its_in_flight_batch(vat, server, store_path):
    server.config.polls_to_complete = 4
    code, s = _run(vat, server, store_path, "execution.batch_wait_s=0")
    assert code == 3 and "still in flight" in s["stopped"] and s["answered"] == 0
    assert len(server.batches) == 1 and _rows(store_path, "SELECT count(*) FROM responses") == [(0,)]
    assert _sidecar(store_path)["batches"][0]["ingested"] is False

    code, s = _run(vat, server, store_path)
    assert code == 0 and s["answered"] == PLAN
    assert len(server.batches) == 1 and len(server.received) == PLAN  # collected, not submitted twice
    _assert_all_answered_correctly(store_path, PLAN)


def test_online_mode_warns_about_a_batch_still_in_flight(vat, server, store_path):
    server.config.polls_to_complete = 5
    code, _ = _run(vat, server, store_path, "execution.batch_wait_s=0")
    assert code == 3
    # The fake has no /chat/completions route: the online requests fail, after the warning.
    result = vat(*_args(server, store_path, "execution.mode=online", "execution.max_retries=0"))
    assert "still in flight" in result.err and "execution.mode=batch to collect them" in result.err


def test_an_expired_batch_found_on_reattach_is_collected_and_its_gaps_sent_in_the_same_run(
    vat, server, store_path
):
    server.config.expire, server.config.expire_after, server.config.polls_to_complete = True, 45, 2
    code, s = _run(vat, server, store_path, "execution.batch_wait_s=0")
    assert code == 3 and "still in flight" in s["stopped"]

    server.config.expire, server.config.polls_to_complete = False, 1
    code, s = _run(vat, server, store_path)
    assert code == 0 and s["sent"] == PLAN and s["answered"] == PLAN and s["failed"] == 0
    assert s["errors_by_kind"] == {"BatchExpired": PLAN - 45} and s["retries"] == PLAN - 45
    assert len(server.batches) == 2 and len(server.received) == PLAN + PLAN - 45
    assert set(server.received[PLAN:]) == set(server.received[45:PLAN])
    _assert_all_answered_correctly(store_path, PLAN)


def test_a_batch_the_provider_no_longer_knows_is_forgotten_and_its_keys_sent_again(vat, server, store_path):
    code, _ = _run(vat, server, store_path)
    assert code == 0
    (path,) = Path(f"{store_path}.batches").glob("*.json")
    data = json.loads(path.read_text())
    data["batches"].append(
        {**data["batches"][0], "id": "batch_gone", "ingested": False, "status": "in_progress"}
    )
    path.write_text(json.dumps(data))
    con = duckdb.connect(store_path)
    con.execute(
        "DELETE FROM responses WHERE request_key IN (SELECT unnest(?))", [data["batches"][0]["keys"][:10]]
    )
    con.close()

    result = vat(*_args(server, store_path))
    assert result.code == 0 and "does not know batch batch_gone" in result.err
    assert (
        json.loads(result.out)["answered"] == 10 and server.received[-10:] == data["batches"][0]["keys"][:10]
    )
    assert {b["id"]: b["status"] for b in json.loads(path.read_text())["batches"]}[
        "batch_gone"
    ] == "not_found"


# slow: SIGINT of a real batch run (`make test-slow` and CI run it)
@pytest.mark.slow
def test_interrupted_run_reattaches_to_the_in_flight_batch(vat, server, store_path):
    """Ctrl-C (SIGINT) of a real `vat run` process while it polls; the next run collects that batch."""
    server.config.polls_to_complete = 10**6
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = [sys.executable, "-c", "import sys; from runner.cli.app import main; sys.exit(main(sys.argv[1:]))"]
    proc = subprocess.Popen(
        cmd + _args(server, store_path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 40
    while not (server.batches and server.polls.get("batch_1", 0) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.batches, "the run never submitted its batch"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert json.loads(out)["stopped"] == "interrupted"

    server.rules["batch_1"].polls_to_complete = (
        server.polls["batch_1"] + 2
    )  # it ends while the next run polls
    code, s = _run(vat, server, store_path)
    assert code == 0 and s["answered"] == PLAN and len(server.batches) == 1 and len(server.received) == PLAN


def test_api_key_reaches_the_provider_but_never_the_store_or_sidecar(vat, server, store_path):
    server.config.fail_every = 7  # error rows too
    _run(vat, server, store_path)
    assert server.unauthorized == 0 and len(server.batches) == 1  # every call carried the key
    key = server.config.api_key.encode()
    folder = Path(store_path).parent
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and p.parent.name.endswith(".batches") for p in files)
    for p in files:
        assert key not in p.read_bytes(), p


def test_a_wrong_key_fails_with_a_clear_message(vat, server, store_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-9876543210")
    result = vat(*_args(server, store_path))
    assert result.code == 3 and "Traceback" not in result.err
    assert "AuthenticationError" in result.err and "OPENAI_API_KEY" in result.err
    assert "sk-wrong-key-9876543210" not in result.err and not server.batches


def test_batch_mode_refuses_a_provider_without_a_batch_api(vat, store_path):
    result = vat(
        "run",
        "model.name=mock/x",
        f"store.path={store_path}",
        "selection.max_scenes=1",
        "execution.mode=batch",
    )
    assert result.code == 2 and "execution.mode=online" in result.err and "Traceback" not in result.err


def test_unknown_mode_and_bad_batch_settings_are_refused_before_the_store_is_touched(vat, store_path):
    base = ("run", "model.name=mock/x", f"store.path={store_path}", "selection.max_scenes=1")
    result = vat(*base, "execution.mode=bulk")
    assert result.code == 2 and "execution.mode='bulk'" in result.err and "online, batch" in result.err
    result = vat(*base, "execution.mode=batch", "execution.batch_max_mb=0")
    assert result.code == 2 and "execution.batch_max_mb=0" in result.err and "> 0" in result.err
    assert not Path(store_path).exists()


def _req(key: str, text: str) -> Request:
    return Request(
        key, "pre", "openai/m", None, ({"role": "user", "content": text},), "s", 1, "a", "v", None, "express"
    )


def test_chunks_respect_both_the_request_and_the_byte_limits():
    reqs = [_req(f"k{i}", "x" * 100) for i in range(10)]
    by_count = list(chunks(reqs, "m", {"max_tokens": 3}, 4, 10**6))
    assert [len(r) for r, _ in by_count] == [4, 4, 2]
    line = len(next(iter(chunks(reqs[:1], "m", {"max_tokens": 3}, 1, 10**6)))[1])
    by_bytes = list(chunks(reqs, "m", {"max_tokens": 3}, 100, 3 * line))
    assert [len(r) for r, _ in by_bytes] == [3, 3, 3, 1] and all(len(d) <= 3 * line for _, d in by_bytes)
    body = json.loads(by_count[0][1].splitlines()[0])
    assert body["custom_id"] == "k0" and body["url"] == "/v1/chat/completions"
    assert body["body"] == {
        "model": "m",
        "messages": [{"role": "user", "content": "x" * 100}],
        "max_tokens": 3,
    }
