"""The sweep driver (runner.sweep.scaleout): exit codes from job results, paths, secrets, shard URLs, recovery.

Issue 19's failures, each reproduced here without a cluster (tests/e2e/test_scaleout_cluster.py runs
them on a two-node Ray cluster, a local S3 server and submitit):
- a sweep whose jobs all failed, or returned nothing, said "0 job(s), 0 with errors" and exited 0;
- a forwarded key was written into multirun.yaml / .hydra; provenance had no git revision;
- ``hydra.sweep.dir=s3://...`` made a local folder named ``s3:``; ``vat ingest <folder URL>`` failed with a
  raw DuckDB traceback; shards carried no pre answers, so a store built from them could not report;
- a killed job left nothing that ingest or the rerun could use.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from hydra.core.utils import JobStatus

from runner.core.errors import VatError
from runner.store.shards import ingest, recover_partial
from runner.store.store import JOURNAL_SUFFIX, Journal
from runner.sweep import scaleout

BASE = ("model.name=mock/scale", "selection.max_scenes=1", "execution.progress=false")


def _ret(status: JobStatus, value: object, num: int) -> SimpleNamespace:
    hydra_cfg = SimpleNamespace(hydra=SimpleNamespace(job=SimpleNamespace(num=num)))
    return SimpleNamespace(status=status, _return_value=value, hydra_cfg=hydra_cfg)


def test_the_exit_code_comes_from_the_jobs_results():
    ok = _ret(JobStatus.COMPLETED, {"rc": 0}, 0)
    budget = _ret(JobStatus.COMPLETED, {"rc": 3}, 1)
    crashed = _ret(JobStatus.FAILED, RuntimeError("no spec/ folder"), 2)
    jobs, problems = scaleout.job_results([[ok, budget, crashed]], expected=3)
    assert [j["rc"] for j in jobs] == [0, 3, 1]
    assert problems == ["job 2 failed: RuntimeError: no spec/ folder"]
    assert scaleout.sweep_exit_code(jobs, problems, 3) == 3
    jobs, problems = scaleout.job_results([[ok]], expected=1)
    assert scaleout.sweep_exit_code(jobs, problems, 1) == 0


def test_missing_results_fail_loudly():
    # The old summary: every job failed on the workers, the launcher returned nothing, exit 0.
    jobs, problems = scaleout.job_results(None, expected=4)
    assert jobs == [] and problems == ["4 of 4 job(s) returned no result"]
    assert scaleout.sweep_exit_code(jobs, problems, 4) == 1
    jobs, problems = scaleout.job_results([[_ret(JobStatus.COMPLETED, None, 0)]], expected=2)
    assert problems == ["job 0 returned no result", "1 of 2 job(s) returned no result"]
    assert scaleout.sweep_exit_code(jobs, problems, 2) == 1


def test_a_launcher_that_fails_exits_non_zero_and_ingests_what_the_jobs_left(tmp_path, vat, monkeypatch):
    from hydra._internal.hydra import Hydra

    # One job finished and exported its shard before the launcher died (a killed joblib worker).
    sweep_dir = tmp_path / "sweep"
    store = tmp_path / "v.duckdb"
    args = ("run", *BASE, f"store.path={tmp_path / 'job.duckdb'}", "store.shards=never")
    assert vat(*args).code == 0
    con = duckdb.connect(str(tmp_path / "job.duckdb"), read_only=True)
    shard = sweep_dir / "0" / "shard"
    shard.mkdir(parents=True)
    for table in ("specs", "runs", "prompts", "requests", "run_requests", "responses", "errors"):
        con.execute(f"COPY (SELECT * FROM {table}) TO '{shard / table}.parquet' (FORMAT parquet)")
    con.close()

    def dies(self, *args, **kwargs):  # what joblib raises when one of its workers is killed
        raise RuntimeError("A worker process managed by the executor was unexpectedly terminated")

    monkeypatch.setattr(Hydra, "multirun", dies)
    result = vat(
        "run", "-m", *BASE, "strategy=fewshot_2,fewshot_4", f"store.path={store}", f"hydra.sweep.dir={sweep_dir}",
        "hydra/launcher=joblib",
    )  # fmt: skip
    assert result.code == 1
    assert "the launcher failed (RuntimeError: A worker process" in result.err
    assert "ingested 1 shard(s)" in result.err and "0 of 2 job(s) returned" in result.err
    assert (
        duckdb.connect(str(store), read_only=True).execute("SELECT count(*) FROM responses").fetchone()[0]
        == 40
    )


def test_sweep_dir_on_object_storage_is_refused_in_one_sentence(tmp_path, vat, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parent.parent
    result = vat("run", "-m", *BASE, "strategy=fewshot_2,fewshot_4", "hydra.sweep.dir=s3://bucket/sweep",
                 f"spec_dir={root / 'spec'}", f"store.path={tmp_path / 'v.duckdb'}")  # fmt: skip
    assert result.code == 2
    assert "hydra.sweep.dir=s3://bucket/sweep is a URL" in result.err and "store.shard_dir=URL" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "s3:").exists()


def test_the_driver_resolves_every_path_the_jobs_need(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    plan = scaleout.plan_sweep_run(
        ["-m", *BASE, "strategy=fewshot_2,fewshot_4", "store.path=rel/v.duckdb", "hydra.sweep.dir=out/sweep",
         f"spec_dir={os.path.relpath(root / 'spec')}", "hydra/launcher=joblib"]
    )  # fmt: skip
    assert plan.expected_jobs == 2 and plan.parallel
    assert plan.store_path == str(tmp_path / "rel" / "v.duckdb")
    assert plan.sweep_dir == str(tmp_path / "out" / "sweep") == plan.shard_root
    assert f"spec_dir={root / 'spec'}" in plan.overrides
    assert f"hydra.sweep.dir={tmp_path / 'out' / 'sweep'}" in plan.overrides
    argv = scaleout.with_overrides(["strategy=a,b", "-m", "store.path=rel/v.duckdb"], plan)
    assert argv[0] == "-m" and "store.path=rel/v.duckdb" not in argv
    url = scaleout.plan_sweep_run(["-m", *BASE, "strategy=fewshot_2,fewshot_4", "store.shard_dir=s3://b/sw/"])
    assert url.shard_root == "s3://b/sw/" and "store.shard_dir=s3://b/sw/" in url.overrides


def test_forward_env_names_a_variable_that_is_not_set(monkeypatch):
    monkeypatch.delenv("VAT_H19_UNSET", raising=False)
    with pytest.raises(
        VatError, match="execution.forward_env names VAT_H19_UNSET, which this shell does not set"
    ):
        scaleout.plan_sweep_run(
            ["-m", *BASE, "strategy=fewshot_2,fewshot_4", "execution.forward_env=[VAT_H19_UNSET]"]
        )


def test_ray_init_joins_a_cluster_without_object_store_memory_and_forwards_env_in_memory():
    args = scaleout.ray_init_args(
        {
            "address": "127.0.0.1:6379",
            "object_store_memory": 78643200,
            "runtime_env": {"env_vars": {"A": "1"}},
        },
        {"OPENAI_API_KEY": "sk-x", "VAT_GIT_REVISION": "abc"},
    )
    assert "object_store_memory" not in args and args["address"] == "127.0.0.1:6379"
    assert args["runtime_env"]["env_vars"] == {"A": "1", "OPENAI_API_KEY": "sk-x", "VAT_GIT_REVISION": "abc"}
    local = scaleout.ray_init_args({"object_store_memory": 78643200}, {})
    assert local["object_store_memory"] == 78643200  # a local Ray started by the launcher keeps it


def _all_files(*roots: Path) -> list[Path]:
    return [p for r in roots for p in r.rglob("*") if p.is_file()]


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_a_forwarded_secret_is_in_no_file_and_provenance_has_the_revision(tmp_path, vat, monkeypatch):
    from runner.core.paths import git_revision

    secret = "sk-test-" + secrets.token_hex(12)
    monkeypatch.setenv("VAT_H19_SECRET", secret)
    monkeypatch.delenv("VAT_GIT_REVISION", raising=False)
    sweep_dir, store = tmp_path / "sweep", tmp_path / "v.duckdb"
    result = vat(
        "run", "-m", *BASE, "strategy=fewshot_2,fewshot_4", f"store.path={store}", f"hydra.sweep.dir={sweep_dir}",
        "execution.forward_env=[VAT_H19_SECRET]", "store.shards=always", "format=json",
    )  # fmt: skip
    assert result.code == 0, result.err
    written = _all_files(sweep_dir) + [store]
    assert any(p.name == "multirun.yaml" for p in written) and any(p.name == "hydra.yaml" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.out + result.err
    import json

    doc = json.loads(result.out)
    assert [j["forwarded_env"] for j in doc["jobs"]] == [{"VAT_H19_SECRET": True}] * 2
    con = duckdb.connect(str(store), read_only=True)
    prov = [json.loads(r[0]) for r in con.execute("SELECT provenance FROM runs").fetchall()]
    assert [p["git_revision"] for p in prov] == [git_revision()] * 2 and git_revision()
    assert [p["forwarded_env"] for p in prov] == [["VAT_H19_SECRET"]] * 2


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_shards_on_an_fsspec_url_carry_the_answers_they_depend_on(tmp_path, vat):
    import fsspec

    store = tmp_path / "v.duckdb"
    # The pre condition both jobs share is already in the main store (a previous run).
    assert vat("run", *BASE, "strategy=fewshot_2", f"store.path={store}").code == 0
    url = f"memory://vat-{secrets.token_hex(4)}/sweep"
    result = vat(
        "run", "-m", *BASE, "strategy=fewshot_4,system_prompt", f"store.path={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", f"store.shard_dir={url}", "store.shards=always",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "ingested 2 shard(s) and the shared answers" in result.err
    fs = fsspec.filesystem("memory")
    names = sorted(p.rsplit("/", 2)[-2] for p in fs.glob(url.split("://")[1] + "/*/responses.parquet"))
    assert names == ["0", "1", "shared"]
    assert fs.cat(url.split("://")[1] + "/stored_keys.txt").count(b"\n") == 20  # the pre answers
    # A store built from the shards alone reports (it used to crash on a zero-size array).
    alone = tmp_path / "alone.duckdb"
    got = vat("ingest", url, f"store.path={alone}")
    assert got.code == 0, got.err
    assert vat("report", f"store.path={alone}", "format=json").code == 0
    # A glob works too, and nothing is added twice.
    again = ingest([url + "/*/responses.parquet"], str(alone))
    assert again["responses"] == 0


def test_ingest_of_a_url_with_no_shards_is_one_sentence(tmp_path, vat):
    result = vat("ingest", "memory://vat-empty/sweep", f"store.path={tmp_path / 'v.duckdb'}")
    assert result.code == 1
    assert "no shard files found under memory://vat-empty/sweep" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_a_killed_jobs_journal_is_recovered_by_ingest(tmp_path, vat):
    # A job killed before it exported leaves only its shard store (and journal) in its folder.
    shard = tmp_path / "sweep" / "3" / "shard"
    assert vat("run", *BASE, f"store.path={shard / 'shard.duckdb'}", "store.shards=never").code == 0
    assert not (shard / "responses.parquet").exists()
    # Killed mid-batch: the last answers sit only in the journal beside the shard store.
    con = duckdb.connect(str(shard / "shard.duckdb"))
    cols = [d[0] for d in con.execute("SELECT * FROM responses LIMIT 0").description]
    last = [
        dict(zip(cols, r, strict=True))
        for r in con.execute("SELECT * FROM responses ORDER BY request_key LIMIT 5").fetchall()
    ]
    con.execute(
        "DELETE FROM responses WHERE request_key IN (SELECT request_key FROM responses ORDER BY request_key LIMIT 5)"
    )
    con.close()
    journal = Journal(Path(f"{shard / 'shard.duckdb'}{JOURNAL_SUFFIX}"))
    for row in last:
        journal.append("responses", row)
    journal.close()
    assert recover_partial(str(tmp_path / "sweep")) == [str(shard)]
    counts = ingest([str(tmp_path / "sweep")], str(tmp_path / "v.duckdb"))
    assert counts["responses"] == 40 and counts["runs"] == 1
    assert recover_partial(str(tmp_path / "sweep")) == []  # exported once, not again


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_a_busy_main_store_at_the_end_of_a_sweep_is_a_clear_error(tmp_path, vat, monkeypatch):
    store = tmp_path / "v.duckdb"
    holders = []
    prepare = scaleout.prepare

    def then_lock(argv, plan):  # another process takes the store once the jobs are launched
        prepare(argv, plan)
        code = (
            f"import duckdb,sys; c=duckdb.connect({str(store)!r}); print('ok', flush=True); sys.stdin.read()"
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"

    monkeypatch.setattr(scaleout, "prepare", then_lock)
    try:
        result = vat(
            "run", "-m", *BASE, "strategy=fewshot_2,fewshot_4", f"store.path={store}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", "store.shards=always",
        )  # fmt: skip
    finally:
        for holder in holders:
            holder.communicate("")
    assert holders and result.code != 0
    assert f"the store {store} is in use by another process" in result.err, result.err
    assert "Traceback" not in result.err and "for `vat ingest`" in result.err
    assert "2 of 2 job(s) returned, 0 with errors" in result.err
    # The shards stay for `vat ingest` once the store is free.
    assert (
        ingest([str(tmp_path / "sweep")], str(store))["responses"] == 20 + 2 * 20
    )  # a shared pre, two posts


def test_a_list_override_is_not_taken_for_a_sweep(monkeypatch):
    # `execution.forward_env=[A,B]` has commas: the driver once dropped it with the sweep overrides.
    monkeypatch.setenv("VAT_H19_A", "a")
    monkeypatch.setenv("VAT_H19_B", "b")
    plan = scaleout.plan_sweep_run(
        ["-m", *BASE, "strategy=fewshot_2,fewshot_4", "execution.forward_env=[VAT_H19_A,VAT_H19_B]"]
    )
    assert {"VAT_H19_A", "VAT_H19_B"} <= set(plan.forwarded_names) and plan.expected_jobs == 2


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_the_budget_is_the_whole_sweeps(tmp_path, vat):
    # A 4-job sweep with budget_usd=0.003 once spent $0.0143: each job had the whole budget.
    from runner.execute.online import litellm_module

    litellm_module(["mock/priced"]).register_model(
        {"mock/priced": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.0,
                         "litellm_provider": "mock", "mode": "chat"}}
    )  # fmt: skip
    result = vat(
        "run", "-m", "model.name=mock/priced", "selection.max_scenes=1", "execution.progress=false",
        "strategy=fewshot_2,fewshot_4", "execution.budget_usd=1.0", "execution.concurrency=1",
        f"store.path={tmp_path / 'v.duckdb'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", "format=json",
    )  # fmt: skip
    import json

    doc = json.loads(result.out)
    assert result.code == 3  # stopped by the budget
    assert [j["stopped"] for j in doc["jobs"]] == ["budget", "budget"]
    assert all(j["cost_usd"] <= 0.5 + 1e-9 for j in doc["jobs"])  # half the budget each
    assert doc["cost_usd"] <= 1.0 + 1e-9 and doc["cost_usd"] == pytest.approx(
        sum(j["cost_usd"] for j in doc["jobs"])
    )
    assert "of execution.budget_usd=1.0 for the whole sweep" in " ".join(result.err.split())
    assert doc["per_job"] == {"jobs_at_once": 1, "concurrency": 1, "budget_usd_per_job": 0.5}


def _sweep(*extra: str) -> scaleout.SweepPlan:
    return scaleout.plan_sweep_run(["-m", *BASE, "strategy=fewshot_2,fewshot_4,fewshot_8", *extra])


def test_parallel_jobs_share_the_sweeps_concurrency():
    # Each job once took execution.concurrency as its own: 3 jobs at once sent 3 × 8 requests at a time.
    plan = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "execution.concurrency=8")
    assert plan.at_once == 3 and plan.job_concurrency == 2
    assert "execution.concurrency=2" in plan.overrides
    assert "execution.concurrency=2" in scaleout.with_overrides(["execution.concurrency=8"], plan)
    assert "execution.concurrency=8" not in scaleout.with_overrides(["execution.concurrency=8"], plan)
    assert plan.shares() == {"jobs_at_once": 3, "concurrency": 8, "concurrency_per_job": 2}


def test_jobs_at_once_is_the_launchers_limit_or_the_number_of_jobs():
    assert _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "execution.concurrency=8").at_once == 2
    many = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=16", "execution.concurrency=8")
    assert many.at_once == 3 and many.job_concurrency == 2  # never more than the jobs there are
    cores = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=-1")  # joblib: every core
    assert cores.at_once == min(3, os.cpu_count() or 1)
    from omegaconf import OmegaConf

    submitit = OmegaConf.create(
        {"_target_": "hydra_plugins.hydra_submitit_launcher.X", "array_parallelism": 2}
    )
    assert scaleout.jobs_at_once(submitit, True, 5) == 2
    ray = OmegaConf.create({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"})
    assert scaleout.jobs_at_once(ray, True, 5) == 5  # the cluster decides: assume every job at once


def test_one_job_at_a_time_keeps_the_whole_concurrency():
    plan = _sweep("execution.concurrency=8")  # the basic launcher: jobs run one after another
    assert plan.at_once == 1 and plan.job_concurrency is None
    assert not any(o.startswith("execution.concurrency=") for o in plan.overrides)


def test_a_share_below_one_is_floored_and_said(capsys):
    plan = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "execution.concurrency=2")
    assert plan.job_concurrency == 1 and "execution.concurrency=1" in plan.overrides
    err = " ".join(capsys.readouterr().err.split())
    assert "execution.concurrency=2 is less than the 3 jobs that may run at once" in err
    assert "each job gets 1" in err


def test_a_swept_concurrency_is_left_to_the_sweep():
    plan = scaleout.plan_sweep_run(
        ["-m", *BASE, "execution.concurrency=2,4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    )
    assert plan.job_concurrency is None
    argv = scaleout.with_overrides(["execution.concurrency=2,4"], plan)
    assert "execution.concurrency=2,4" in argv


def test_parallel_jobs_share_the_sweeps_requests_per_minute(capsys):
    plan = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "execution.requests_per_minute=100")
    assert plan.job_requests_per_minute == 33.333  # rounded down: the shares never add up to more
    assert "execution.requests_per_minute=33.333" in plan.overrides
    assert plan.shares()["requests_per_minute_per_job"] == 33.333
    tiny = _sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "execution.requests_per_minute=2")
    assert tiny.job_requests_per_minute == 1.0 and "execution.requests_per_minute=1.0" in tiny.overrides
    assert "is under 1 each, so each job gets 1" in " ".join(capsys.readouterr().err.split())
    assert _sweep("hydra/launcher=joblib").job_requests_per_minute is None  # no ceiling: none to share
    assert _sweep("execution.requests_per_minute=100").job_requests_per_minute is None  # one at a time


@pytest.mark.slow
def test_a_joblib_sweeps_jobs_run_with_their_shares(tmp_path):
    # Real worker processes: the shares reach the jobs (their recorded configs), not only the argv.
    import json

    store = tmp_path / "v.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli.app", "run", "-m", *BASE, "strategy=fewshot_2,fewshot_4",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "execution.concurrency=6",
         "execution.requests_per_minute=6000", f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         "format=json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["per_job"] == {
        "jobs_at_once": 2, "concurrency": 6, "concurrency_per_job": 3,
        "requests_per_minute": 6000.0, "requests_per_minute_per_job": 3000.0,
    }  # fmt: skip
    assert "each job had execution.concurrency=3 of the sweep's 6" in " ".join(proc.stderr.split())
    con = duckdb.connect(str(store), read_only=True)
    configs = [json.loads(c) for (c,) in con.execute("SELECT config FROM runs").fetchall()]
    con.close()
    assert len(configs) == 2
    assert {(c["execution"]["concurrency"], c["execution"]["requests_per_minute"]) for c in configs} == {
        (3, 3000.0)
    }
