"""A joblib job killed with SIGKILL mid-sweep (issue 19, item 4): the sweep fails loudly, keeps what was answered.

Before, killing one joblib worker aborted the sweep with a traceback, nothing was ingested, and the rerun
sent everything again. Here a real joblib sweep runs against the fault server on 127.0.0.1 (every answer
delayed, so the jobs are mid-run), one loky worker is killed, and the test checks what a user relies on:
a non-zero exit without a traceback, every job's answers so far in the main store (the killed job's from
its partial shard and journal), and a rerun that sends only what is still missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from support.fault_server import FAKE_KEY, FaultPlan, FaultServer
from support.shipped_counts import PER_SCENE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SCENES = 3
PRE = SCENES * PER_SCENE  # the pre condition both jobs share, sent once by the driver
TOTAL = PRE * 3  # pre + each job's post


def _args(srv: FaultServer, tmp_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "runner.cli.app", "run", "-m", "strategy=fewshot_2,fewshot_4",
        "model.name=openai/fault-judge", f"model.api_base={srv.api_base}", "model.api_key_env=OPENAI_API_KEY",
        f"selection.max_scenes={SCENES}", f"store.path={tmp_path / 'v.duckdb'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "execution.concurrency=2", "execution.progress=false",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _loky_workers(pid: int) -> list[int]:
    """The joblib (loky) worker processes of the sweep driver ``pid``."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    out = []
    for kid in kids:
        try:
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "LokyProcess" in cmdline:
            out.append(int(kid))
    return sorted(out)


def _post_answers_per_run(store: Path) -> dict[str, int]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT rr.run_id, count(r.request_key) FROM run_requests rr "
            "LEFT JOIN responses r USING (request_key) WHERE rr.condition = 'post' GROUP BY 1"
        ).fetchall()
        return {run: int(n) for run, n in rows}
    finally:
        con.close()


def _stored(store: Path) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM responses").fetchone()[0])
    finally:
        con.close()


def test_a_sigkilled_joblib_job_fails_the_sweep_keeps_its_answers_and_the_rerun_sends_only_the_rest(tmp_path):
    with FaultServer(FaultPlan(delay_s=0.05)) as srv:
        proc = subprocess.Popen(
            _args(srv, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        try:
            deadline = time.monotonic() + 400
            # Both jobs are well into their post requests (each sends PRE of them, one at a time): 30 each.
            while srv.stats()["requests"] < PRE + 3 * PER_SCENE and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                time.sleep(0.1)
            workers = _loky_workers(proc.pid)
            assert len(workers) == 2, f"expected two loky workers, found {workers}"
            os.kill(workers[0], signal.SIGKILL)
            _, err = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode != 0, "a sweep with a killed job must not exit 0"
        assert "Traceback" not in err, err[-3000:]
        kept = tmp_path / "sweep" / "launcher-error.txt"  # the launcher's traceback, for whoever debugs it
        assert "TerminatedWorkerError" in kept.read_text() and str(kept) in err
        store = tmp_path / "v.duckdb"
        per_run = _post_answers_per_run(store)
        # Both runs are recorded and both kept their answers: the killed one's came from its partial shard.
        assert len(per_run) == 2 and min(per_run.values()) >= 10, (per_run, err[-3000:])
        stored, sent = _stored(store), srv.stats()["requests"]
        assert stored < TOTAL  # the kill left work undone (else this test proves nothing)

        rerun = subprocess.run(_args(srv, tmp_path), capture_output=True, text=True, env=_env(), timeout=400)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert srv.stats()["requests"] - sent == TOTAL - stored  # only what was missing, each once
    assert _stored(store) == TOTAL


def test_a_submitit_job_past_its_timeout_fails_the_sweep_keeps_its_answers_and_the_rerun_finishes(tmp_path):
    """submitit's local launcher ends a job at ``timeout_min``; before, the sweep lost everything it had done."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with FaultServer(FaultPlan(delay_s=1.0)) as srv:  # 120 requests one at a time: 2 min, past 1 min
        args = [
            sys.executable, "-m", "runner.cli.app", "run", "-m", "strategy=fewshot_2",
            "model.name=openai/fault-judge", f"model.api_base={srv.api_base}", "model.api_key_env=OPENAI_API_KEY",
            f"selection.max_scenes={SCENES}", f"store.path={tmp_path / 'v.duckdb'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=1", "execution.concurrency=1", "execution.progress=false",
        ]  # fmt: skip
        first = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600)
        assert first.returncode != 0, "a sweep whose job timed out must not exit 0"
        assert "Traceback" not in first.stderr, first.stderr[-3000:]
        store = tmp_path / "v.duckdb"
        stored, sent = _stored(store), srv.stats()["requests"]
        assert 20 <= stored < TOTAL // 3 * 2, (stored, first.stderr[-3000:])  # about a minute's answers kept

        srv.configure(FaultPlan())  # the provider is fast again: the rerun finishes well within the timeout
        rerun = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert srv.stats()["requests"] - sent == TOTAL // 3 * 2 - stored  # only what was missing
