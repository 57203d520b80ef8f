"""Shards state their schema in a manifest; ingest reads each through the named migrations it needs."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from runner.core.errors import VatError
from runner.store.shards import MANIFEST, SHARD_MIGRATIONS, export_shard, ingest
from runner.store.store import (
    MIGRATIONS,
    REQUEST_COLUMNS,
    REQUESTS_SQL,
    SCHEMA_VERSION,
    open_store,
    prompt_hash,
)


def _v1_requests(shard, rows) -> None:
    """A shard written at schema 1: requests with their messages inline, and its manifest saying so."""
    shard.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE requests (request_key VARCHAR, model VARCHAR, scene_id VARCHAR, scene_version INTEGER, "
        "action_id VARCHAR, value VARCHAR, micro_value VARCHAR, polarity VARCHAR, sample INTEGER, messages JSON)"
    )
    con.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY requests TO '{shard / 'requests.parquet'}' (FORMAT parquet)")
    con.close()
    (shard / MANIFEST).write_text(json.dumps({"format": "vat-shard", "schema_version": 1}))


def _rows(key: str, content: str) -> tuple:
    return (
        key,
        "m",
        "s",
        1,
        "a",
        "v",
        None,
        "express",
        0,
        json.dumps([{"role": "user", "content": content}]),
    )


def _current_shard(tmp_path, rows) -> str:
    """A shard exported today (manifest at the current schema) holding ``rows``' requests."""
    src = tmp_path / "src.duckdb"
    with open_store(src) as store:
        n = len(rows)
        table = pa.table(
            {
                "request_key": [r[0] for r in rows],
                "model": ["m"] * n,
                "scene_id": ["s"] * n,
                "scene_version": pa.array([1] * n, pa.int32()),
                "action_id": ["a"] * n,
                "value": ["v"] * n,
                "micro_value": pa.array([None] * n, pa.string()),
                "polarity": ["express"] * n,
                "sample": pa.array([0] * n, pa.int32()),
                "asked_value": pa.array([None] * n, pa.string()),
                "asked_micro_value": pa.array([None] * n, pa.string()),
                "variant": ["base"] * n,
                "scale_reversed": [False] * n,
                "messages": [r[-1] for r in rows],
            }
        )
        store.add_request_rows(table.select(list(REQUEST_COLUMNS)))
        export_shard(store, tmp_path / "now")
    return str(tmp_path / "now")


def test_an_exported_shard_states_its_schema() -> None:
    assert [m.version for m in SHARD_MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))
    assert [m.name for m in SHARD_MIGRATIONS] == [m.name for m in MIGRATIONS]  # the store's twins


def test_shards_of_two_schemas_ingest_together_and_each_migration_is_recorded(tmp_path) -> None:
    old, new = [_rows("k1", "a"), _rows("k2", "b")], [_rows("k3", "c")]
    _v1_requests(tmp_path / "old", old)
    now = _current_shard(tmp_path, new)
    assert json.loads((tmp_path / "now" / MANIFEST).read_text()) == {
        "format": "vat-shard",
        "schema_version": SCHEMA_VERSION,
    }
    dst = tmp_path / "dst.duckdb"
    assert ingest([str(tmp_path / "old"), now], str(dst))["requests"] == 3
    with open_store(dst, read_only=True) as store:
        got = dict(store.query(f"SELECT request_key, messages FROM ({REQUESTS_SQL})"))
        assert got == {r[0]: r[-1] for r in old + new}
        hashes = dict(store.query("SELECT request_key, prompt_hash FROM requests"))
        assert hashes["k1"] == prompt_hash(old[0][-1])
        meta = dict(store.query("SELECT key, value FROM meta WHERE key LIKE 'shard_migration:%'"))
    assert {k: json.loads(v)["shards"] for k, v in meta.items()} == {
        "shard_migration:v1_to_v2_prompts": 1,
        "shard_migration:v2_to_v3_asked_columns": 1,
    }
    assert ingest([str(tmp_path / "old"), now], str(dst))["requests"] == 0  # idempotent


def test_a_shard_from_a_newer_schema_is_refused_by_name(tmp_path) -> None:
    _current_shard(tmp_path, [_rows("k1", "a")])
    (tmp_path / "now" / MANIFEST).write_text(json.dumps({"format": "vat-shard", "schema_version": 99}))
    with pytest.raises(VatError, match=r"shard\.json: the shard is at store schema 99, newer than"):
        ingest([str(tmp_path / "now")], str(tmp_path / "dst.duckdb"))
    assert not (tmp_path / "dst.duckdb").exists() or _count(tmp_path / "dst.duckdb") == 0


def test_a_broken_manifest_names_the_file_and_the_fix(tmp_path) -> None:
    _current_shard(tmp_path, [_rows("k1", "a")])
    (tmp_path / "now" / MANIFEST).write_text('{"schema_version": "three"}')
    with pytest.raises(VatError, match=r'shard\.json: not a shard manifest; it must read \{"format"'):
        ingest([str(tmp_path / "now")], str(tmp_path / "dst.duckdb"))


def _count(path) -> int:
    with open_store(path, read_only=True) as store:
        return int(store.query("SELECT count(*) FROM requests")[0][0])
