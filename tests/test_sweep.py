"""Sweeps: experiments compose, the sweep plan, joblib shards and ingest, the budget guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from runner.compile.plan import compile_plan
from runner.config import compose, conf_dir
from runner.spec.load import load_index
from runner.store.shards import SHARD_TABLES, ingest
from runner.sweep import plan_sweep, sweep_jobs

CONF = conf_dir()


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_expands(experiment):
    cfg = compose([f"experiment={experiment}"], hydra=True)
    assert cfg.hydra.sweeper.params, experiment
    jobs = sweep_jobs([f"experiment={experiment}"])
    assert len(jobs) >= 2
    for job in jobs:
        compose(job)


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_paper_grid_is_twelve_jobs():
    jobs = sweep_jobs(["experiment=paper_prompt_steering"])
    assert len(jobs) == 12
    pairs = {(compose(j).target, compose(j).direction.value, compose(j).strategy) for j in jobs}
    assert ("security", "reinforce", "fewshot_8") in pairs and ("hedonism", "suppress", "fewshot_2") in pairs


@pytest.mark.parametrize("group", ["model", "execution", "store", "selection", "target_direction"])
def test_every_config_option_composes(group):
    for option in sorted((CONF / group).glob("*.yaml")):
        prefix = "+" if group == "target_direction" else ""
        compose([f"{prefix}{group}={option.stem}"])


def test_sweep_plan_counts_shared_keys_once(tmp_path):
    result = plan_sweep(["-m", "experiment=smoke", f"store.path={tmp_path / 'v.duckdb'}"])
    assert len(result["jobs"]) == 4
    per_job = sum(j["to_send"] for j in result["jobs"])
    assert per_job == 4 * 120
    assert result["total"]["to_send"] == 120 // 2 + 4 * 60  # one shared pre condition + four posts


def _vat(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
    )


# slow: a real joblib multirun (`make test-slow` and CI run it)
@pytest.mark.slow
def test_joblib_sweep_ends_with_exactly_the_planned_keys(tmp_path):
    root = Path(__file__).resolve().parent.parent
    store = tmp_path / "v.duckdb"
    plan = plan_sweep(["-m", "experiment=smoke", f"store.path={store}"])
    proc = _vat(
        "run",
        "-m",
        "experiment=smoke",
        f"store.path={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ingested 4 shard(s)" in proc.stderr
    con = duckdb.connect(str(store), read_only=True)
    keys = {r[0] for r in con.execute("SELECT request_key FROM responses").fetchall()}
    assert (
        con.execute("SELECT count(*) FROM responses").fetchone()[0] == len(keys) == plan["total"]["to_send"]
    )
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    index = load_index("spec")
    jobs = sweep_jobs(["experiment=smoke", f"store.path={store}"])
    planned = {k for j in jobs for k in compile_plan(index, compose(j)).keys()}  # noqa: SIM118 (a method)
    assert keys == planned
    results = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/result.json")]
    assert sorted(r["rc"] for r in results) == [0, 0, 0, 0]
    # Each shared pre-condition key was sent once, before the jobs (they found it stored).
    assert sum(r["sent"] for r in results) == 4 * 60
    con.close()
    # Ingesting the same shards again adds nothing.
    again = ingest([str(tmp_path / "sweep")], str(store))
    assert again["responses"] == 0 and again["run_requests"] == 0


def test_ingest_reads_shards_from_an_fsspec_filesystem(tmp_path, vat):
    import fsspec

    src = tmp_path / "src.duckdb"
    assert (
        vat(
            "run", "model.name=mock/fs", f"store.path={src}", "selection.max_scenes=1", "store.shards=never"
        ).code
        == 0
    )
    con = duckdb.connect(str(src), read_only=True)
    mem = fsspec.filesystem("memory")
    for table in SHARD_TABLES:
        local = tmp_path / f"{table}.parquet"
        con.execute(f"COPY (SELECT * FROM {table}) TO '{local}' (FORMAT parquet)")
        mem.pipe(f"/shards/job0/{table}.parquet", local.read_bytes())
    con.close()
    counts = ingest(["memory://shards/job0"], str(tmp_path / "dst.duckdb"))
    assert counts["responses"] == 40 and counts["runs"] == 1 and counts["prompts"] == 40


def test_ingest_reads_a_shard_written_before_prompts_had_their_own_table(tmp_path, vat):
    from runner.store.store import REQUESTS_SQL

    src = tmp_path / "src.duckdb"
    args = ("run", "model.name=mock/old", f"store.path={src}", "selection.max_scenes=1", "store.shards=never")
    assert vat(*args, "model.samples=2").code == 0
    shard = tmp_path / "shard"
    shard.mkdir()
    con = duckdb.connect(str(src), read_only=True)
    for table in ("specs", "runs", "run_requests", "responses", "errors"):
        con.execute(f"COPY (SELECT * FROM {table}) TO '{shard / table}.parquet' (FORMAT parquet)")
    # Schema 1 kept each request's messages inline, and had no prompts table.
    con.execute(f"COPY ({REQUESTS_SQL}) TO '{shard}/requests.parquet' (FORMAT parquet)")
    want = con.execute(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key").fetchall()
    con.close()
    dst = tmp_path / "dst.duckdb"
    counts = ingest([str(shard)], str(dst))
    assert counts["requests"] == 80 and counts["responses"] == 80
    con = duckdb.connect(str(dst), read_only=True)
    assert con.execute(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key").fetchall() == want
    assert con.execute("SELECT count(*) FROM prompts").fetchone()[0] == 40  # 2 samples share each prompt
    con.close()


def test_budget_guard_stops_the_run_cleanly(tmp_path):
    from runner.execute.online import litellm_module
    from runner.pipeline import execute_run, run_exit_code

    litellm = litellm_module(["mock/priced"])
    litellm.register_model(
        {
            "mock/priced": {
                "input_cost_per_token": 0.001,
                "output_cost_per_token": 0.0,
                "litellm_provider": "mock",
                "mode": "chat",
            }
        }
    )
    cfg = compose(
        [
            "model.name=mock/priced",
            f"store.path={tmp_path / 'v.duckdb'}",
            "selection.max_scenes=2",
            "execution.budget_usd=1.0",
            "execution.concurrency=4",
            "execution.progress=false",
        ]
    )
    _, stats = execute_run(cfg, [])
    assert stats.stopped == "budget"
    assert stats.cost_usd <= 1.0 + 1e-9 and stats.answered >= 5  # $0.10 per request (100 tokens)
    assert run_exit_code(cfg, stats, quiet=True) == 3
    # Raising the budget resumes where it stopped.
    cfg2 = compose(
        [
            "model.name=mock/priced",
            f"store.path={tmp_path / 'v.duckdb'}",
            "selection.max_scenes=2",
            "execution.progress=false",
        ]
    )
    _, stats2 = execute_run(cfg2, [])
    assert stats2.to_send == 80 - stats.answered and stats2.stopped is None


def test_the_old_condition_group_still_works_with_a_deprecation_warning(capsys):
    new = compose(["+target_direction=power_suppress"])
    old = compose(["+condition=power_suppress"])
    assert (old.target, old.direction.value) == (new.target, new.direction.value) == ("power", "suppress")
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "`+condition=` is deprecated" in err and "write `+target_direction=power_suppress`" in err
    assert "goes in 0.2" in err


def test_a_sweep_over_the_old_group_name_is_renamed_job_by_job(capsys):
    from runner.config import renamed_groups

    assert renamed_groups(["+condition=security_reinforce,power_suppress", "strategy=baseline"]) == [
        "+target_direction=security_reinforce,power_suppress",
        "strategy=baseline",
    ]
    assert "deprecated" in capsys.readouterr().err
