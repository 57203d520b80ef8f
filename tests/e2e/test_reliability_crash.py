"""Crash safety against real components: a `vat run` child process, a real DuckDB file, the fault server.

SIGKILL at random moments (seeded), SIGINT, and a second writer on the same store. After each kill the
store must open, hold no duplicate key and no partial row, and the rerun must send no more than the
requests the killed run had not yet received answers for, plus those in flight (at most
``execution.concurrency``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fault_server import ROOT, FaultPlan, FaultServer, child_env, run_args, store_check, vat_command

CONCURRENCY = 8
SCENES = 10  # selection.split=all: 10 scenes × 20 actions × (pre, post) = 400 requests
PLAN = SCENES * 20 * 2


@pytest.fixture
def server():
    with FaultServer(FaultPlan(delay_s=0.02)) as srv:
        yield srv


def _args(server: FaultServer, store: Path, *extra: str) -> list[str]:
    return vat_command(
        *run_args(
            server,
            store,
            "selection.split=all",
            f"selection.max_scenes={SCENES}",
            f"execution.concurrency={CONCURRENCY}",
            "execution.backoff_s=0.01",
            *extra,
        )
    )


def _start(server: FaultServer, store: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _args(server, store, *extra),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a test runner started in the background passes SIGINT on as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=True,  # its own process group, as a terminal job has: Ctrl-C reaches all of it
    )


def _wait_for_requests(server: FaultServer, proc: subprocess.Popen[str], at_least: int) -> dict:
    """Poll the server until it has received ``at_least`` requests in total (or the run ended)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stats = server.stats()
        if stats["requests"] >= at_least or proc.poll() is not None:
            return stats
        time.sleep(0.005)
    raise AssertionError("the run sent nothing for 120 s")


def _finish(server: FaultServer, store: Path) -> dict:
    done = subprocess.run(
        _args(server, store), cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def _kill_trials(server: FaultServer, tmp_path: Path, seed: int, kills: int, workers: int = 1) -> list[dict]:
    """One store, ``kills`` SIGKILLs at seeded random moments, then a run to completion; check each step.

    With ``workers`` > 1 the kill hits the writing process; its workers must die with it (and the
    concurrency bound is the same: it is split between them).
    """
    rng = random.Random(seed)
    store = tmp_path / f"trial{seed}" / "vat.duckdb"
    server.reset()
    log = []
    for _ in range(kills):
        before = server.stats()
        target = before["requests"] + rng.randint(1, max(1, PLAN - before["answered_prompts"] - 1))
        proc = _start(server, store, f"execution.workers={workers}")
        at_kill = _wait_for_requests(server, proc, target)
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        time.sleep(0.1)  # let the server finish answering the killed client's last requests
        after = server.stats()
        facts = store_check(store)  # opens, no duplicates, no partial rows, right ratings
        facts.pop("rows")
        log.append(
            {"target": target, "received": after["requests"], "answered": after["answered_prompts"], **facts}
        )
        assert after["requests"] - at_kill["requests"] <= CONCURRENCY  # nothing new after the kill
    summary = _finish(server, store)
    final = server.stats()
    facts = store_check(store)
    assert facts["responses"] == PLAN and facts["errors"] == 0
    # Each kill may lose only what was in flight: answers the server sent that the run had not stored.
    assert final["requests"] <= PLAN + CONCURRENCY * kills, (final["requests"], log)
    assert summary["sent"] <= PLAN - log[-1]["answered"] + CONCURRENCY, (summary, log)
    assert max(final["per_prompt"].values()) <= 1 + kills
    log.append(
        {
            "final_requests": final["requests"],
            "rerun_sent": summary["sent"],
            "kept": summary["already_stored"],
        }
    )
    return log


# slow: a kill/interrupt trial of a real run (`make test-slow` and CI run it)
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_once_then_resume(server, tmp_path, workers):
    print(_kill_trials(server, tmp_path, seed=1, kills=1, workers=workers))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15])
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_at_random_moments(server, tmp_path, seed, workers):
    print(_kill_trials(server, tmp_path, seed=seed, kills=3, workers=workers))


def _sigint_trial(
    server: FaultServer, tmp_path: Path, at: int, workers: int = 1, sig: signal.Signals = signal.SIGINT
) -> dict:
    """SIGINT once ``at`` requests were received: exit 130, a message on how to resume, answers kept.

    As a terminal's Ctrl-C does, SIGINT goes to the whole process group (workers included). SIGTERM
    goes to the run's own process, as a job scheduler or ``kill`` sends it: exit 143, the same promise.
    """
    store = tmp_path / f"{sig.name}{at}" / "vat.duckdb"
    server.reset()
    proc = _start(server, store, f"execution.workers={workers}")
    at_signal = _wait_for_requests(server, proc, at)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)  # the whole group, as Ctrl-C in a terminal
    else:
        os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    assert "run the same command again to resume" in err
    if sig == signal.SIGTERM:
        assert "terminated (SIGTERM)" in err, err
    summary = json.loads(out)
    assert summary["stopped"] == ("interrupted" if sig == signal.SIGINT else "terminated")
    at_stop = server.stats()
    assert at_stop["requests"] <= at_signal["requests"] + CONCURRENCY  # it stopped taking requests at once
    facts = store_check(store)
    assert facts["responses"] == summary["answered"] > 0
    assert facts["responses"] >= at_stop["answered_prompts"] - CONCURRENCY
    rest = _finish(server, store)
    assert rest["sent"] == PLAN - facts["responses"]
    assert server.stats()["requests"] <= PLAN + CONCURRENCY
    assert store_check(store)["responses"] == PLAN
    return {"signal_at": at_signal["requests"], "received": at_stop["requests"], "stored": facts["responses"]}


# slow: a kill/interrupt trial of a real run (`make test-slow` and CI run it)
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_stops_cleanly_and_keeps_answers(server, tmp_path, workers):
    print(_sigint_trial(server, tmp_path, PLAN // 3, workers))


# slow: a kill/interrupt trial of a real run (`make test-slow` and CI run it)
@pytest.mark.slow
def test_sigterm_stops_cleanly_says_so_and_keeps_answers(server, tmp_path):
    """Before: SIGTERM (a scheduler's stop) exited 143 with no message (issue 22, item 7)."""
    print(_sigint_trial(server, tmp_path, PLAN // 3, 1, signal.SIGTERM))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25])
@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_at_random_moments(server, tmp_path, seed, workers):
    print(_sigint_trial(server, tmp_path, random.Random(seed).randint(10, PLAN - 40), workers))


# slow: a kill/interrupt trial of a real run (`make test-slow` and CI run it)
@pytest.mark.slow
def test_second_writer_gets_a_clear_error_and_the_store_survives(server, tmp_path):
    store = tmp_path / "vat.duckdb"
    server.configure(FaultPlan(delay_s=1.0))  # the first run holds the store until the others are done
    first = _start(server, store)
    _wait_for_requests(server, first, 20)
    others = [
        subprocess.Popen(
            cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd in (_args(server, store), vat_command("report", f"store.path={store}", "format=json"))
    ]
    second, report = (subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in others)
    assert first.poll() is None, "the first run ended before the others tried the store"
    server.configure(FaultPlan())
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    for other in (second, report):
        assert other.returncode == 1, other.stderr
        assert "in use by another process" in other.stderr and str(store) in other.stderr
        assert "Traceback" not in other.stderr
        assert other.stdout == "" or "in use by another process" in json.loads(other.stdout)["error"]
    assert json.loads(out)["answered"] == PLAN
    assert store_check(store)["responses"] == PLAN
    assert server.stats()["requests"] == PLAN  # the refused writer sent nothing


def test_the_journal_replays_whole_lines_once(tmp_path):
    """A kill can cut the journal's last line short; replay takes the whole lines, once, and cleans up."""
    from datetime import datetime

    from runner.store.store import open_store

    path = tmp_path / "vat.duckdb"
    row = {
        "request_key": "k1",
        "model": "m",
        "text": "4",
        "rating": 4,
        "expected_rating": None,
        "logprobs": None,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost_usd": 0.0,
        "latency_s": 0.1,
        "attempts": 2,
        "provider_model": "m",
        "fingerprint": None,
        "created_at": datetime(2026, 1, 1, 12, 0, 0),
    }
    error = {
        "request_key": "k1",
        "attempt": 1,
        "error_type": "Timeout",
        "status": 408,
        "message": "slow",
        "final": False,
        "created_at": datetime(2026, 1, 1, 11, 59, 59),
    }
    with open_store(path) as store:
        store.journal_row("errors", error)
        store.journal_row("responses", row)
        store.journal_row("responses", {**row, "request_key": "k2"})
        journal = Path(store.journal.path)
        whole = journal.read_bytes()
        store.con.close()  # as if killed: nothing committed, the journal stays
        store.journal = None
    lines = whole.splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # the k2 line cut short by the kill
    for _ in range(2):  # the second open finds the journal empty: nothing doubles
        with open_store(path) as store:
            assert store.query("SELECT request_key, rating, attempts FROM responses") == [("k1", 4, 2)]
            assert store.query("SELECT count(*) FROM errors")[0][0] == 1
    assert not journal.exists()  # a clean close removes the empty journal
    # A kill between a commit and the journal's clearing: the replay adds nothing twice.
    journal.write_bytes(whole)
    with open_store(path) as store:
        assert store.query("SELECT count(*) FROM responses")[0][0] == 2
        assert store.query("SELECT count(*) FROM errors")[0][0] == 1


def _killed_inside_the_ddl(path: Path, statements: int) -> None:
    """A child process that created the first ``statements`` tables one by one and was then SIGKILLed.

    That is what the DDL used to leave when a run was killed while it created the store (DuckDB
    commits each statement of a script on its own).
    """
    from runner.store.store import DDL

    first = ";".join(DDL.split(";")[:statements]) + ";"
    code = (
        "import duckdb, os, signal, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(sys.argv[2])\n"
        "con.execute('CHECKPOINT')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path), first], env=child_env(), timeout=60)
    assert proc.returncode == -signal.SIGKILL


# slow: a kill/interrupt trial of a real run (`make test-slow` and CI run it)
@pytest.mark.slow
def test_a_store_killed_inside_its_ddl_is_repaired_not_a_catalog_error(tmp_path):
    """Before: `vat report` on such a store raised duckdb.CatalogException (table runs does not exist)."""
    from runner.store.store import TABLES, _missing_tables

    store = tmp_path / "vat.duckdb"
    _killed_inside_the_ddl(store, 2)
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    assert _missing_tables(con)  # the poison state is there
    con.close()
    for args in (
        ["report", f"store.path={store}", "format=json"],
        [
            "bundle",
            "entry=huggingfacetb__smollm2-135m-instruct",
            f"store.path={store}",
            f"out={tmp_path / 'b'}",
        ],
        ["leaderboard", "build", f"store.path={store}", f"out={tmp_path / 'site'}"],
    ):
        proc = subprocess.run(
            vat_command(*args), env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        text = proc.stdout + proc.stderr
        assert "Traceback" not in text and "CatalogException" not in text, (args, text)
        assert proc.returncode in (0, 1), (args, text)
    con = duckdb.connect(str(store), read_only=True)
    assert _missing_tables(con) == [] and len(TABLES) >= 8
    con.close()
