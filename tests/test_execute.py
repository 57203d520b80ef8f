"""Execution end to end on the mock provider: store contents, resume, retries (stage 3)."""

from __future__ import annotations

import json

import duckdb
import pytest

from runner.commands import execute_run
from runner.compile import compile_plan
from runner.config import compose
from runner.execute import ExecOptions, classify, execute, pending
from runner.load import load_index
from runner.store import open_store


def _cfg(store_path, *overrides):
    return compose(["model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=5",
                    "execution.progress=false", *overrides])


def test_end_to_end_on_the_mock_provider(vat, store_path):
    result = vat("run", "model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=5", "format=json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["requests"] == summary["sent"] == summary["answered"] == 5 * 20 * 2
    con = duckdb.connect(store_path, read_only=True)
    assert con.execute("SELECT count(*), count(rating), count(expected_rating) FROM responses").fetchone() == (200, 200, 200)
    assert con.execute("SELECT count(*) FROM run_requests").fetchone()[0] == 200
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 200
    assert con.execute("SELECT count(*) FROM errors").fetchone()[0] == 0
    con.close()


def test_rerun_sends_nothing(vat, store_path):
    args = ("run", "model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=3", "format=json")
    assert vat(*args).code == 0
    again = json.loads(vat(*args).out)
    assert again["sent"] == 0 and again["already_stored"] == again["requests"] == 120


def test_other_strategy_reuses_the_stored_pre_condition(vat, store_path):
    base = ("run", "model.name=mock/judge", f"store.path={store_path}", "selection.max_scenes=3", "format=json")
    vat(*base, "strategy=fewshot_2")
    second = json.loads(vat(*base, "strategy=fewshot_8", "target=power").out)
    assert second["already_stored"] == 60 and second["sent"] == 60  # pre shared, post new


def test_resume_after_a_crash_sends_only_missing_keys(store_path):
    cfg = _cfg(store_path)
    index = load_index("spec")
    plan = compile_plan(index, cfg)
    keys = plan.keys()
    with open_store(store_path) as store:
        # Simulate a run killed after its first 70 answers were committed.
        opts = ExecOptions(progress=False, params={"max_tokens": 3, "temperature": 0.0, "logprobs": True, "top_logprobs": 5})
        first = execute(plan.requests[:70], store, opts)
        assert first.answered == 70
        todo = pending(plan.requests, store.stored_keys(keys))
        assert len(todo) == len(keys) - 70
        stats = execute(plan.requests, store, opts)
        assert stats.to_send == len(keys) - 70 and stats.answered == len(keys) - 70
        assert store.query("SELECT count(*), count(DISTINCT request_key) FROM responses")[0] == (len(keys), len(keys))


def test_unparseable_answers_are_stored_and_counted(store_path):
    cfg = _cfg(store_path, "model.name=mock/prose", "model.logprobs=false")
    _, stats = execute_run(cfg, [])
    assert stats.answered == 200 and stats.unparseable == 200
    with open_store(store_path, read_only=True) as store:
        assert store.query("SELECT count(*), count(rating) FROM responses")[0] == (200, 0)


def test_empty_answers_are_retried_then_recorded(store_path):
    cfg = _cfg(store_path, "model.name=mock/empty", "execution.max_retries=1", "execution.backoff_s=0.001",
               "selection.max_scenes=1")
    _, stats = execute_run(cfg, [])
    # Every attempt fails, so the run gives up after 20 requests in a row failed with no success.
    # (Requests still being retried when the run aborts count a retry but no final failure.)
    assert stats.answered == 0 and 20 <= stats.failed < 40 and stats.retries >= stats.failed
    assert "in a row failed" in stats.stopped
    with open_store(store_path, read_only=True) as store:
        rows = store.query("SELECT request_key, attempt, final, error_type FROM errors ORDER BY request_key, attempt")
    assert {r[3] for r in rows} == {"EmptyAnswer"}
    finals = [r for r in rows if r[2]]
    assert len(finals) == stats.failed and all(r[1] == 2 for r in finals)  # 1 retry, then final


def test_stats_for_a_plan_with_nothing_to_send(store_path):
    with open_store(store_path) as store:
        assert execute([], store, ExecOptions(progress=False)).to_send == 0


@pytest.mark.parametrize(("name", "status", "transient"), [
    ("RateLimitError", 429, True), ("ServiceUnavailableError", 503, True), ("Timeout", 408, True),
    ("APIConnectionError", None, True), ("BadRequestError", 400, False), ("NotFoundError", 404, False),
])
def test_classify(name, status, transient):
    exc = type(name, (Exception,), {})("boom")
    exc.status_code = status
    assert classify(exc)[2] is transient
