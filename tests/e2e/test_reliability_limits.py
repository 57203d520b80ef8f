"""Poison answers, quotas and long Retry-After against the fault server: each ends clearly and bounded.

Every case is a real `vat run` through LiteLLM over HTTP to tests/support/fault_server.py on 127.0.0.1, with a
bounded number of requests (one scene: 40) and a bounded time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from support.fault_server import FaultPlan, run_args

FAST = ("execution.backoff_s=0.01", "execution.timeout_s=2", "selection.max_scenes=1")


pytestmark = pytest.mark.usefixtures("fake_key")  # the server fixture: tests/support/fixtures.py


def _run(vat, server, store: Path, *extra: str):
    result = vat(*run_args(server, store, *FAST, *extra))
    assert "Traceback" not in result.err, result.err
    return result, json.loads(result.out) if result.out.strip() else {}


def _query(store: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_logprob_above_709_neither_crashes_the_run_nor_the_rerun(vat, server, tmp_path):
    """Before: math.exp(710) raised OverflowError, the run exited with a traceback, and so did every rerun."""
    server.configure(FaultPlan(permanent_rate=0.5, permanent_kinds=("huge_logprob",)))
    store = tmp_path / "vat.duckdb"
    result, summary = _run(vat, server, store)
    assert result.code == 0, result.err
    assert summary["answered"] == 40 and summary["failed"] == 0
    assert server.stats()["faults"].get("huge_logprob", 0) > 10
    # The absurd logprob is dropped; the rest of the answer still counts (its text gives the rating).
    assert _query(store, "SELECT count(*) FROM responses WHERE rating IS NULL")[0][0] == 0
    assert all(
        "710" not in (lp or "") for (lp,) in _query(store, "SELECT CAST(logprobs AS VARCHAR) FROM responses")
    )
    again, summary = _run(vat, server, store)
    assert again.code == 0 and summary["sent"] == 0


def test_a_huge_answer_is_capped(vat, server, tmp_path):
    """Before: answers had no size cap (a 50 MB answer at concurrency 8 wrote a 2 GB journal)."""
    from runner.execute.online import MAX_ANSWER_CHARS

    server.configure(
        FaultPlan(permanent_rate=1.0, permanent_kinds=("huge_answer",), huge_answer_chars=2_000_000)
    )
    store = tmp_path / "vat.duckdb"
    result, summary = _run(vat, server, store, "execution.concurrency=2")
    assert result.code == 0, result.err
    longest, unrated = _query(
        store, "SELECT max(length(text)), count(*) FILTER (WHERE rating IS NULL) FROM responses"
    )[0]
    assert longest == MAX_ANSWER_CHARS and unrated == 0
    assert store.stat().st_size < 20_000_000  # 40 answers of 2 MB would be 80 MB


def test_an_all_unparseable_run_does_not_exit_0(vat, server, tmp_path):
    """Before: 80/80 unparseable answers exited 0 with no warning."""
    server.configure(FaultPlan(permanent_rate=1.0, permanent_kinds=("prose",)))
    # prose is an answer kind: permanent_kinds holds it, every prompt answers in words.
    store = tmp_path / "vat.duckdb"
    result, summary = _run(vat, server, store)
    assert result.code == 3, result.err
    assert summary["answered"] == summary["unparseable"] == 40
    assert "all 40 answers were unparseable" in result.err and len(result.err.strip().splitlines()) == 1


def test_a_mostly_unparseable_run_warns(vat, server, tmp_path):
    server.configure(FaultPlan(seed=1, permanent_rate=0.5, permanent_kinds=("prose",)))
    result, summary = _run(vat, server, tmp_path / "vat.duckdb")
    assert result.code == 0 and 10 < summary["unparseable"] < 40
    assert f"warning: {summary['unparseable']} of 40 answers were unparseable" in result.err


@pytest.mark.parametrize(
    "kind, needle",
    [("quota", "quota for openai/fault-judge is exhausted"), ("403", "refused access to openai/fault-judge")],
)
def test_quota_and_403_stop_at_once_and_do_not_blame_the_model_name(vat, server, tmp_path, kind, needle):
    """Before: a quota 429 was retried 3 × max_retries times per request, then blamed model.name/api_base."""
    server.configure(FaultPlan(permanent_rate=1.0, permanent_kinds=(kind,)))
    start = time.perf_counter()
    result, _ = _run(vat, server, tmp_path / "vat.duckdb", "execution.concurrency=4")
    assert result.code == 3
    assert needle in result.err and "model.name" not in result.err and "api_base" not in result.err
    assert sum(server.stats()["per_prompt"].values()) <= 4  # the requests in flight, no retries
    assert time.perf_counter() - start < 30


def test_a_day_long_retry_after_is_capped_and_announced(vat, server, tmp_path):
    """Before: one `Retry-After: 86400` was applied uncapped to every worker and froze the run."""
    server.configure(FaultPlan(seed=2, transient_rate=0.2, transient_kinds=("429",), retry_after_s=86400))
    start = time.perf_counter()
    result, summary = _run(vat, server, tmp_path / "vat.duckdb", "execution.max_retry_after_s=0.3")
    assert result.code == 0, result.err
    assert summary["answered"] == 40 and summary["failed"] == 0
    assert time.perf_counter() - start < 60
    assert "the provider asked to wait 86400 s; waiting 0.3 s (execution.max_retry_after_s)" in result.err
    assert 0.3 <= summary["rate_limit_pause_s"] < 30


def test_the_default_retry_after_cap_is_a_minute():
    from runner.config import ExecutionConf
    from runner.execute.options import ExecOptions

    assert ExecutionConf().max_retry_after_s == ExecOptions().max_retry_after_s == 60.0


def test_a_budget_stop_counts_only_what_was_sent(vat, server, tmp_path):
    """Before: a budget stop printed "1,640 sent → 247 answered" when 247 were sent (issue 21, item 8)."""
    store = tmp_path / "vat.duckdb"
    # gpt-4o-mini is in LiteLLM's cost map: 100 prompt tokens cost $0.000015, so $0.0002 buys about 13.
    priced = ("model.name=openai/gpt-4o-mini", "execution.budget_usd=0.0002", "execution.concurrency=1")
    result, summary = _run(vat, server, store, *priced)
    assert result.code == 3 and "execution.budget_usd" in result.err, result.err
    assert summary["stopped"] == "budget" and summary["to_send"] == 40
    assert summary["sent"] == summary["answered"] + summary["failed"] == server.stats()["answered"]
    assert 0 < summary["sent"] < 40 and summary["not_sent"] == 40 - summary["sent"]
    text = vat(*run_args(server, tmp_path / "text.duckdb", *FAST, *priced, "format=table"))
    assert f"{summary['sent']} sent" in text.out and f"{40 - summary['sent']} not sent" in text.out, text.out
