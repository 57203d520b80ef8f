"""A pool of replicas for real: `vat run` → LiteLLM → HTTP → two fault servers on 127.0.0.1.

``model.api_base=[url1,url2]`` must spread the requests over both servers and store every answer; with
one of them stopped, the run must still store every answer (its requests retried on the other one),
and the request keys must be those of a run against one server.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import duckdb
import pytest
from support.fault_server import FaultServer, run_args, store_check

pytestmark = [pytest.mark.usefixtures("fake_key"), pytest.mark.slow]

SCENES = "selection.max_scenes=2"


def _pool_args(store: Path, bases: list[str], *extra: str) -> list[str]:
    args = run_args(FaultServer(), store, SCENES, "execution.backoff_s=0.05", *extra)
    return [f"model.api_base=[{','.join(bases)}]" if a.startswith("model.api_base=") else a for a in args]


def _keys(store: Path) -> set[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return {k for (k,) in con.execute("SELECT request_key FROM responses").fetchall()}
    finally:
        con.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_share_the_requests_and_one_down_loses_nothing(vat, tmp_path):
    with FaultServer() as one, FaultServer() as two:
        store = tmp_path / "pool.duckdb"
        result = vat(*_pool_args(store, [one.api_base, two.api_base]))
        assert result.code == 0, result.err
        summary = json.loads(result.out)
        held = store_check(store)
        assert held["responses"] == summary["requests"] == summary["answered"] > 0
        got = one.stats()["requests"], two.stats()["requests"]
        assert min(got) > 0 and sum(got) == summary["requests"]  # both asked, each request once
        assert abs(got[0] - got[1]) <= summary["requests"] // 2  # spread, not all on one

        # The same plan against one server: the very same request keys.
        single = tmp_path / "single.duckdb"
        assert vat(*run_args(one, single, SCENES)).code == 0
        assert _keys(single) == _keys(store)

        # One replica stopped (nothing listens at its port any more): every answer still arrives.
        dead = two.api_base
        two.stop()
        before = one.stats()["requests"]
        down = tmp_path / "down.duckdb"
        result = vat(*_pool_args(down, [dead, one.api_base]))
        assert result.code == 0, result.err
        summary = json.loads(result.out)
        assert store_check(down)["responses"] == summary["requests"] == summary["answered"]
        assert one.stats()["requests"] - before == summary["requests"]
        con = duckdb.connect(str(down), read_only=True)
        kinds = {k for (k,) in con.execute("SELECT DISTINCT error_type FROM errors").fetchall()}
        con.close()
        assert kinds <= {"ConnectError"}  # the dead replica's refusals, each retried elsewhere
        assert _keys(down) == _keys(store)


def test_every_replica_down_aborts_naming_the_pool(vat, tmp_path):
    bases = [f"http://127.0.0.1:{_closed_port()}/v1", f"http://127.0.0.1:{_closed_port()}/v1"]
    result = vat(*_pool_args(tmp_path / "v.duckdb", bases))
    assert result.code == 3 and "Traceback" not in result.err
    assert f"cannot reach any of {bases[0]}, {bases[1]}" in " ".join(result.err.split())
