"""Scale-out on real components (issue 19): a two-node Ray cluster, a local S3 server, submitit.

Everything is started and stopped here, on loopback addresses: the Ray head on 127.0.0.2 (with no CPUs,
so every job runs on the second node), a second Ray node on 127.0.0.3, moto's S3 server on 127.0.0.1.
Not 127.0.0.1 for Ray: `ray start --node-ip-address=127.0.0.1` is replaced by the machine's own address
(Ray's resolve_ip_for_localhost), which must never be used here. Ray still listens on all interfaces
for some of its services (GCS, raylets, agents); no option keeps them on loopback.
The jobs share no folder with the driver for their results: shards go to S3, results come back
through Ray. Needs `make install-scale`; slow (about two minutes).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {limit_s} s")


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 and a bucket; the credentials live only in this process's memory."""
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc, "moto_server")
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test-" + secrets.token_hex(6),
            "AWS_SECRET_ACCESS_KEY": "test-secret-" + secrets.token_hex(16),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        bucket = f"vat-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [sys.executable, "-c", f"import s3fs; s3fs.S3FileSystem().mkdir({bucket!r})"],
            env={**os.environ, **env},
            check=True,
            timeout=60,
        )
        yield {**env, "BUCKET": bucket}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head on 127.0.0.2 (no CPUs for tasks) and a second node on 127.0.0.3 with two CPUs."""
    pytest.importorskip("ray")
    ray_bin = str(BIN / "ray")
    # The system temp folder, not pytest's deeper tmp_path: Ray's socket paths must stay short.
    temp = Path(tempfile.mkdtemp(prefix="vat_ray_"))
    port = _free_port()
    # Only what the workers need, no credentials: those are forwarded by the sweep (execution.forward_env).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    common = ["--disable-usage-stats", "--num-gpus=0"]
    head = [ray_bin, "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=0",
            f"--temp-dir={temp}", "--include-dashboard=false", "--ray-client-server-port", str(_free_port()),
            "--min-worker-port=23000", "--max-worker-port=23199", *common]  # fmt: skip
    second = [ray_bin, "start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3", "--num-cpus=2",
              "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
              "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
              "--min-worker-port=23200", "--max-worker-port=23399", *common]  # fmt: skip
    try:
        for cmd in (head, second):
            done = subprocess.run(cmd, env=env, timeout=180, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        yield f"127.0.0.2:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env={**env, "RAY_TMPDIR": str(temp)}, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _vat(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.app", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )  # fmt: skip


def _files(*roots: Path) -> list[Path]:
    return [p for r in roots for p in r.rglob("*") if p.is_file()]


def test_a_six_job_sweep_on_two_ray_nodes_with_shards_on_s3(tmp_path, s3, ray_cluster):
    api_key = "sk-test-" + secrets.token_hex(16)
    env = {**os.environ, **{k: v for k, v in s3.items() if k != "BUCKET"}, "VAT_H19_API_KEY": api_key}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    url = f"s3://{s3['BUCKET']}/sweep"
    store, sweep_dir = tmp_path / "v.duckdb", tmp_path / "sweep"
    proc = _vat(
        "run", "-m", "experiment=smoke", "target=security,power,hedonism", f"store.path={store}",
        f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_cluster}",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.2", f"store.shard_dir={url}", "format=json",
        "execution.forward_env=[VAT_H19_API_KEY,AWS_ENDPOINT_URL,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_DEFAULT_REGION]",
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    jobs = doc["jobs"]
    assert len(jobs) == 6 and doc["rc"] == 0 and not doc["problems"]
    # Joining the cluster did not trip hydra-ray-launcher's object_store_memory; every job ran on the
    # second node (the head has no CPUs), with the key and the AWS settings forwarded in memory.
    assert {j["node"] for j in jobs} == {"127.0.0.3"}
    assert all(all(j["forwarded_env"].values()) for j in jobs)
    # The shared pre condition was sent once, by the driver; each job sent only its post condition.
    assert "sending 60 requests shared by several jobs once" in proc.stderr
    assert sum(j["sent"] for j in jobs) == 6 * 60
    assert all(j["shard"] == f"{url}/{j['job']}" for j in jobs)
    assert "ingested 6 shard(s) and the shared answers" in proc.stderr
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 6
    assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 60 + 6 * 60
    revs = {json.loads(r[0])["git_revision"] for r in con.execute("SELECT provenance FROM runs").fetchall()}
    con.close()
    assert len(revs) == 1 and None not in revs
    # No secret in any file the sweep wrote (multirun.yaml, each job's .hydra/, result.json, the store).
    for path in [*_files(sweep_dir), store]:
        data = path.read_bytes()
        assert api_key.encode() not in data and s3["AWS_SECRET_ACCESS_KEY"].encode() not in data, path
    # `vat ingest s3://bucket/sweep` builds a store from the shards alone, and it reports.
    alone = tmp_path / "alone.duckdb"
    got = _vat("ingest", url, f"store.path={alone}", env=env)
    assert got.returncode == 0, got.stderr[-3000:]
    con = duckdb.connect(str(alone), read_only=True)
    assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 60 + 6 * 60
    con.close()
    rep = _vat("report", f"store.path={alone}", "format=json", env=env)
    assert rep.returncode == 0, rep.stderr[-3000:]
    # A second run of the same sweep sends nothing: every job is told its keys are stored.
    again = _vat(
        "run", "-m", "experiment=smoke", "target=security,power,hedonism", f"store.path={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep2'}", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_cluster}",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.2", f"store.shard_dir={url}2", "format=json", "execution.forward_env=[AWS_ENDPOINT_URL,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_DEFAULT_REGION]",
        env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum(j["sent"] for j in json.loads(again.stdout)["jobs"]) == 0


def test_the_submitit_local_launcher_sweeps_and_ingests(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    store = tmp_path / "v.duckdb"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = _vat(
        "run", "-m", "experiment=smoke", f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "format=json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert len(doc["jobs"]) == 4 and doc["rc"] == 0
    assert sum(j["sent"] for j in doc["jobs"]) == 4 * 60
    assert "ingested 4 shard(s) and the shared answers" in proc.stderr
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 60 + 4 * 60
    con.close()
