"""Batch mode across a whole sweep or release: one pooled submission, the shared pre sent once (issue 19).

Against the fake OpenAI Files + Batch API on 127.0.0.1 (tests/support/fake_batch_server.py), through LiteLLM.
Run one by one, each job or condition took its own batch window and the pre they share was sent in every
one of them; now the driver pools every request by key and submits them together before the runs start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from support.fake_batch_server import FakeBatchServer
from support.leaderboard_board import make_board, pins, write

from runner.compile.plan import compile_plan
from runner.config import compose
from runner.spec.load import load_index
from runner.sweep.plan import sweep_jobs

SCENES = 2
STRATEGIES = "fewshot_2,fewshot_4"


@pytest.fixture
def server(monkeypatch):
    with FakeBatchServer() as srv:
        monkeypatch.setenv("OPENAI_API_KEY", srv.config.api_key)
        yield srv


def _sweep_args(server: FakeBatchServer, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "model.name=openai/fake-judge",
        f"model.api_base={server.api_base}",
        "model.api_key_env=OPENAI_API_KEY",
        f"store.path={tmp_path / 'v.duckdb'}",
        f"selection.max_scenes={SCENES}",
        "execution.mode=batch",
        "execution.batch_poll_s=0.02",
        "execution.progress=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *extra,
    ]


def _planned(args: list[str]) -> tuple[set[str], set[str]]:
    """(every key the sweep's jobs need, the keys more than one job needs) — computed from the plans."""
    jobs = sweep_jobs([f"strategy={STRATEGIES}", *args])
    index = load_index(compose(jobs[0]).spec_dir)
    uses = Counter(k for job in jobs for k in compile_plan(index, compose(job)).keys())  # noqa: SIM118
    return set(uses), {k for k, n in uses.items() if n > 1}


def _count(store: Path, sql: str) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_a_batch_sweep_sends_every_job_in_one_submission_and_the_shared_pre_once(vat, server, tmp_path):
    args = _sweep_args(server, tmp_path)
    keys, shared = _planned(args)
    assert shared, "the two jobs must share their pre condition for this test to mean anything"

    result = vat("run", "-m", f"strategy={STRATEGIES}", *args)
    assert result.code == 0, result.err[-3000:]
    assert len(server.batches) == 1  # one batch window for the sweep, not one per job
    assert Counter(server.received) == Counter(dict.fromkeys(keys, 1))  # the shared pre too: once
    store = tmp_path / "v.duckdb"
    assert _count(store, "SELECT count(*) FROM responses") == len(keys)
    assert _count(store, "SELECT count(*) FROM runs") == 2  # each job still recorded its run
    assert "send their" in result.err and "together" in result.err

    again = vat("run", "-m", f"strategy={STRATEGIES}", *args)  # everything stored: nothing is submitted
    assert again.code == 0 and len(server.batches) == 1


def test_a_pooled_batch_still_in_flight_stops_the_sweep_before_any_job_and_the_rerun_collects_it(
    vat, server, tmp_path
):
    args = _sweep_args(server, tmp_path)
    keys, _ = _planned(args)
    server.config.polls_to_complete = 10**6  # the batch never ends while the first sweep waits

    first = vat("run", "-m", f"strategy={STRATEGIES}", *args, "execution.batch_wait_s=0")
    assert first.code == 3 and "Traceback" not in first.err
    assert "still in flight" in first.err and "no job was started" in first.err
    store = tmp_path / "v.duckdb"
    assert _count(store, "SELECT count(*) FROM runs") == 0  # no job ran, so none submitted its own batch
    assert len(server.batches) == 1

    server.config.polls_to_complete = 1
    for batch in server.batches.values():  # the provider finishes the batch in flight
        server.rules[batch["id"]].polls_to_complete = 1
    second = vat("run", "-m", f"strategy={STRATEGIES}", *args)
    assert second.code == 0, second.err[-3000:]
    assert len(server.batches) == 1  # re-attached to the pooled batch, nothing submitted again
    assert Counter(server.received) == Counter(dict.fromkeys(keys, 1))
    assert _count(store, "SELECT count(*) FROM runs") == 2


@pytest.mark.slow  # real joblib worker processes: make test-slow and CI run it
def test_a_parallel_batch_sweep_sends_nothing_online_and_ingests_every_job(server, tmp_path):
    """Before, the driver sent the shared pre online (full price) and each joblib job batched again."""
    args = _sweep_args(server, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    keys, _ = _planned(args)
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli.app", "run", "-m", f"strategy={STRATEGIES}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sending" not in proc.stderr  # the shared-first step sent nothing online
    assert len(server.batches) == 1 and Counter(server.received) == Counter(dict.fromkeys(keys, 1))
    store = tmp_path / "v.duckdb"
    assert "ingested 2 shard(s)" in proc.stderr
    assert _count(store, "SELECT count(*) FROM runs") == 2
    assert _count(store, "SELECT count(*) FROM responses") == len(keys)


def test_leaderboard_run_in_batch_mode_takes_one_batch_window_for_the_release(
    vat, server, tmp_path, monkeypatch
):
    board = make_board(tmp_path / "leaderboard", pins(5))  # release t1: fewshot_2 × 2 targets
    write(
        board / "entries" / "test__fake-judge.yaml",
        "model: openai/fake-judge\ndisplay_name: Fake judge\nprovider: tests\nlicence: none\n"
        "link: https://example.org/x\ncontact: nobody\napi_key_env: OPENAI_API_KEY\n",
    )
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    monkeypatch.setenv("VAT_API_BASE_OPENAI", server.api_base)
    store = tmp_path / "lb.duckdb"
    args = (
        "entry=test__fake-judge",
        "release=t1",
        f"store.path={store}",
        "execution.mode=batch",
        "execution.batch_poll_s=0.02",
        "execution.progress=false",
    )
    result = vat("leaderboard", "run", *args, "format=json")
    assert result.code == 0, result.err[-3000:]
    summary = json.loads(result.out)
    assert summary["conditions"] == 2 and summary["failed"] == 0
    assert len(server.batches) == 1  # one window for both conditions, the shared pre included
    received = Counter(server.received)
    assert set(received.values()) == {1} and summary["answered"] == len(received) == summary["sent"]
    assert _count(store, "SELECT count(*) FROM runs") == 2
    assert _count(store, "SELECT count(*) FROM responses") == len(received)


def test_the_pooled_run_id_follows_the_keys_not_their_order():
    from runner.pipeline import pooled_run_id

    class R:
        def __init__(self, key: str) -> None:
            self.key = key

    a = pooled_run_id([R("k1"), R("k2"), R("k3")])
    assert a == pooled_run_id([R("k3"), R("k1"), R("k2")]) and a.startswith("pooled-")
    assert a != pooled_run_id([R("k1"), R("k2")])
