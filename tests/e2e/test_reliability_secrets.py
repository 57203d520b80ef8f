"""The API key is never written or printed: store, logs, reports, plots, bundles, the site.

A fake key sits in OPENAI_API_KEY. Runs go through LiteLLM to the fault server (with faults, so error
messages are stored too, and one run where the server rejects the key and echoes it back in its error
message). Then every output is searched: the DuckDB file (its bytes, and every column of every table
through SQL, since DuckDB compresses strings), Parquet columns, tar members, every other file's
bytes, and everything the commands printed on stdout and stderr (at the file-descriptor level).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from support.fault_server import FAKE_KEY, ROOT, FaultPlan, FaultServer, run_args

NEEDLES = (FAKE_KEY, "SECRET123")  # the key, and a fragment of it (catches a partly masked key)
RELEASE_SCENES = 5


def _in_duckdb(path: Path, needle: str) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        hits = []
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
        ).fetchall():
            n = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?', [f"%{needle}%"]
            ).fetchone()[0]
            if n:
                hits.append(f"{path}:{table}.{column} ({n} rows)")
        return hits
    finally:
        con.close()


def _in_parquet(data: bytes | Path, needle: str, name: str) -> list[str]:
    table = pq.read_table(io.BytesIO(data) if isinstance(data, bytes) else data)
    return [
        f"{name}:{c}"
        for c in table.column_names
        if any(needle in str(v) for v in table.column(c).to_pylist())
    ]


def find(root: Path, needle: str) -> list[str]:
    """Every place under ``root`` where ``needle`` occurs: raw bytes, DuckDB columns, Parquet columns, tar members."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if needle.encode() in raw:
            hits.append(str(path))
        if path.suffix == ".duckdb":
            hits += _in_duckdb(path, needle)
        elif path.suffix == ".parquet":
            hits += _in_parquet(path, needle, str(path))
        elif path.name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    data = tar.extractfile(member).read() if member.isfile() else b""
                    if needle.encode() in data:
                        hits.append(f"{path}!{member.name}")
                    if member.name.endswith(".parquet"):
                        hits += _in_parquet(data, needle, f"{path}!{member.name}")
    return hits


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FaultServer) -> Path:
    """A leaderboard folder with one entry judged by the fault server and a 5-scene release."""
    board = tmp_path / "leaderboard"
    shutil.copytree(ROOT / "leaderboard", board, ignore=shutil.ignore_patterns("submissions"))
    (board / "submissions").mkdir()
    import yaml

    release = yaml.safe_load((board / "releases" / "v0.1.yaml").read_text())
    release.update(
        scenes=release["scenes"][:RELEASE_SCENES],
        strategies=["fewshot_2@1"],
        targets=[{"target": "security", "direction": "reinforce"}],
    )
    (board / "releases" / "tiny.yaml").write_text(yaml.safe_dump(release, sort_keys=False))
    (board / "releases" / "v0.1.yaml").unlink()
    # v0.1's frozen copy of what it pins serves the smaller release too (its pins are a subset).
    (board / "releases" / "v0.1").rename(board / "releases" / "tiny")
    (board / "entries" / "test__fault-judge.yaml").write_text(
        "model: openai/fault-judge\ndisplay_name: Fault judge\nprovider: Test\nlicence: Apache-2.0\n"
        "link: https://example.org/fault\ncontact: nobody\n"
        "api_key_env: OPENAI_API_KEY\n"
    )
    monkeypatch.setenv("VAT_API_BASE_OPENAI", server.api_base)  # the maintainer's endpoint, not the entry's
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    return board


@pytest.fixture
def server():
    with FaultServer(FaultPlan(seed=9, transient_rate=0.2, slow_s=2.5)) as srv:
        yield srv


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_the_api_key_is_never_written_or_printed(server, board, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    from runner.cli.app import main

    wd = tmp_path / "wd"
    wd.mkdir()
    monkeypatch.chdir(wd)
    store = wd / "results" / "vat.duckdb"
    spec = f"spec_dir={ROOT / 'spec'}"
    printed: list[str] = []

    def vat(*args: str) -> int:
        code = main(list(args))
        out, err = capfd.readouterr()
        printed.append(out + err)
        return code

    fast = ("execution.backoff_s=0.01", "execution.timeout_s=1")
    assert vat(*run_args(server, store, spec, "selection.max_scenes=3", *fast)) == 0
    assert sum(server.stats()["faults"].values()) > 10  # error messages were stored too
    assert vat("report", f"store.path={store}", spec, "format=json") == 0
    assert vat("report", f"store.path={store}", spec, "report.plots=true", f"report.dir={wd / 'report'}") == 0
    board_args = ("entry=test__fault-judge", "release=tiny", f"store.path={store}", spec, *fast)
    assert vat("leaderboard", "run", *board_args, "execution.progress=false") == 0
    assert vat("bundle", *board_args, f"out={wd / 'bundle'}") == 0
    assert vat("bundle", *board_args, f"out={wd / 'bundle.tar.gz'}") == 0
    assert vat("verify", str(wd / "bundle"), "replay=5", spec) == 0, printed[-1][-2000:]
    assert vat("leaderboard", "build", f"out={wd / 'site'}", f"store.path={store}", spec) == 0
    # The provider rejects the key and echoes it in full in its error message.
    server.configure(FaultPlan(permanent_rate=1.0, permanent_kinds=("401",)))
    rejected = wd / "rejected" / "vat.duckdb"
    assert vat(*run_args(server, rejected, spec, "selection.max_scenes=1")) == 3
    assert "rejected the credentials" in printed[-1] and "OPENAI_API_KEY" in printed[-1]
    con = duckdb.connect(str(rejected), read_only=True)
    messages = [m for (m,) in con.execute("SELECT message FROM errors").fetchall()]
    con.close()
    assert messages and all("Incorrect API key provided: ***" in m for m in messages)

    made = {p.name for p in wd.rglob("*")}
    assert {
        "vat.duckdb",
        "judgments-00000-of-00001.parquet",
        "bundle.tar.gz",
        "index.html",
        "verification.json",
    } <= made
    assert any(p.suffix == ".svg" for p in (wd / "report").iterdir())
    assert (wd / "results").exists() and any((wd / "results").rglob("config.yaml"))  # Hydra's run record
    # The search sees inside every format: it finds the model name in the store, the bundle and the site.
    assert _in_duckdb(store, "fault-judge")
    assert _in_parquet(
        wd / "bundle" / "data" / "judgments-00000-of-00001.parquet", "fault-judge", "judgments"
    )
    assert any("bundle.tar.gz!" in h for h in find(wd, "fault-judge")) and find(wd / "site", "fault-judge")
    for needle in NEEDLES:
        assert find(wd, needle) == []
        assert find(board, needle) == []
        assert [p for p in printed if needle in p] == []


def test_a_key_echoed_without_api_key_env_is_still_blanked(server, tmp_path, monkeypatch):
    """The README's own usage (`model.name=...`, no `model.api_key_env`): LiteLLM reads OPENAI_API_KEY itself.

    Before the fix redaction knew only the variable `model.api_key_env` names, so the 401's echo of the
    key was stored verbatim in errors.message.
    """
    from runner.cli.app import main

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.configure(FaultPlan(permanent_rate=1.0, permanent_kinds=("401",)))
    store = tmp_path / "vat.duckdb"
    args = [a for a in run_args(server, store, "selection.max_scenes=1") if "api_key_env" not in a]
    assert main(args) == 3
    con = duckdb.connect(str(store), read_only=True)
    messages = [m for (m,) in con.execute("SELECT message FROM errors").fetchall()]
    con.close()
    assert messages and all("Incorrect API key provided: ***" in m for m in messages), messages
    for needle in NEEDLES:
        assert find(tmp_path, needle) == []


@pytest.mark.parametrize(
    "override",
    [
        "+model.api_key=sk-test-SECRET123-do-not-log",
        "++model.api_key=sk-test-SECRET123-do-not-log",
        "+model.extra.api_key=sk-test-SECRET123-do-not-log",
        "model.extra={api_key: sk-test-SECRET123-do-not-log}",
        "+model.extra.extra_headers={Authorization: Bearer-SECRET123}",
    ],
)
def test_key_like_overrides_are_refused_before_anything_is_written(override, tmp_path, monkeypatch, capfd):
    """Each was accepted and written to runs.config, .hydra/*.yaml and result.json."""
    from runner.cli.app import main

    monkeypatch.chdir(tmp_path)
    code = main(["run", "model.name=mock/judge", f"store.path={tmp_path / 'vat.duckdb'}", override])
    out, err = capfd.readouterr()
    assert code == 2, (out, err)
    assert (
        err.startswith("error: override ")
        and "model.api_key_env" in err
        and len(err.strip().splitlines()) == 1
    )
    assert "SECRET123" not in out + err and "Traceback" not in err
    assert list(tmp_path.rglob("*")) == []
