"""The store's schema: each prompt's messages once in ``prompts``, and the 1 → 2 → 3 migrations."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pyarrow as pa

from runner.compile.plan import compile_plan
from runner.config import compose
from runner.spec.load import load_index
from runner.store.store import REQUEST_COLUMNS, REQUESTS_SQL, SCHEMA_VERSION, open_store, prompt_hash

V1_DDL = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE requests (
    request_key VARCHAR PRIMARY KEY, model VARCHAR, scene_id VARCHAR, scene_version INTEGER,
    action_id VARCHAR, value VARCHAR, micro_value VARCHAR, polarity VARCHAR, sample INTEGER, messages JSON);
CREATE TABLE run_requests (
    run_id VARCHAR, request_key VARCHAR, condition VARCHAR, step INTEGER,
    PRIMARY KEY (run_id, request_key, condition));
"""


def _plan(store_path, *overrides):
    cfg = compose(
        [
            "model.name=mock/judge",
            f"store.path={store_path}",
            "selection.max_scenes=2",
            "model.samples=3",
            *overrides,
        ]
    )
    return compile_plan(load_index("spec"), cfg)


def test_each_prompt_is_stored_once_and_joins_back_to_every_sample(store_path):
    plan = _plan(store_path)
    with open_store(store_path) as store:
        store.add_plan(None, plan.requests, [])
        n_prompts, n_requests = store.query(
            "SELECT (SELECT count(*) FROM prompts), (SELECT count(*) FROM requests)"
        )[0]
        rows = store.query(f"SELECT request_key, messages, sample FROM ({REQUESTS_SQL})")
    distinct = {json.dumps(r.messages) for r in plan.requests}
    assert n_requests == len(plan.keys()) == 3 * len(distinct)  # 3 samples per prompt
    assert n_prompts == len(distinct)
    by_key = {r.key: r for r in plan.requests}
    assert len(rows) == n_requests
    for key, messages, sample in rows:  # every request reads back exactly the messages it was planned with
        assert json.loads(messages) == list(by_key[key].messages) and sample == by_key[key].sample


def test_a_second_plan_sharing_prompts_adds_only_its_new_ones(store_path):
    first, second = _plan(store_path), _plan(store_path, "model.samples=5")
    with open_store(store_path) as store:
        store.add_plan(None, first.requests, [])
        store.add_plan(None, second.requests, [])  # samples 3 and 4 are new requests of the same prompts
        n_prompts, n_requests, orphans = store.query(
            "SELECT (SELECT count(*) FROM prompts), (SELECT count(*) FROM requests), "
            "(SELECT count(*) FROM requests ANTI JOIN prompts USING (prompt_hash))"
        )[0]
    assert n_prompts == len({json.dumps(r.messages) for r in first.requests})
    assert n_requests == len(second.keys())
    assert orphans == 0


def test_prompt_hash_is_the_sha256_of_the_stored_text():
    text = json.dumps([{"role": "user", "content": "Ça coûte 5 €"}], ensure_ascii=False)
    assert prompt_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    (duck,) = duckdb.connect().execute("SELECT left(sha256(?), 32)", [text]).fetchone()
    assert duck == prompt_hash(text)  # the migration computes it in SQL


def test_add_request_rows_splits_messages_into_prompts(store_path):
    msgs = json.dumps([{"role": "user", "content": "q"}])
    rows = pa.table(
        {
            "request_key": ["k1", "k2", "k1"],
            "model": ["m"] * 3,
            "scene_id": ["s"] * 3,
            "scene_version": pa.array([1] * 3, pa.int32()),
            "action_id": ["a", "b", "a"],
            "value": ["v"] * 3,
            "micro_value": pa.array([None] * 3, pa.string()),
            "polarity": ["express"] * 3,
            "sample": pa.array([0, 1, 0], pa.int32()),
            "asked_value": pa.array([None] * 3, pa.string()),
            "asked_micro_value": pa.array([None] * 3, pa.string()),
            "variant": ["base"] * 3,
            "scale_reversed": [False] * 3,
            "messages": [msgs] * 3,
        }
    ).select(list(REQUEST_COLUMNS))
    with open_store(store_path) as store:
        store.add_request_rows(rows)
        assert store.query("SELECT count(*) FROM prompts")[0] == (1,)
        assert store.query(f"SELECT request_key, messages FROM ({REQUESTS_SQL}) ORDER BY 1") == [
            ("k1", msgs),
            ("k2", msgs),
        ]


def _v1_store(path) -> list[tuple]:
    """A schema version 1 store (messages inline in ``requests``) with two requests sharing one prompt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(V1_DDL)
    shared = json.dumps([{"role": "user", "content": "é"}], ensure_ascii=False)
    rows = [
        ("k1", "m", "s", 1, "a", "v", None, "express", 0, shared),
        ("k2", "m", "s", 1, "a", "v", None, "express", 1, shared),
        ("k3", "m", "s", 1, "b", "v", None, "reject", 0, json.dumps([{"role": "user", "content": "x"}])),
    ]
    con.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()
    return rows


OLD_ROW_DEFAULTS = (None, None, "base", False)
"""What schema 3 records for a request of an older store: no asked value, base wording, plain scale."""


def _as_read(rows: list[tuple]) -> list[tuple]:
    """Old ``requests`` rows (messages last) as :data:`REQUESTS_SQL` reads them after the migration."""
    return [(*r[:-1], *OLD_ROW_DEFAULTS, r[-1]) for r in rows]


def test_a_version_1_store_is_migrated_when_opened_for_writing(tmp_path):
    path = tmp_path / "old.duckdb"
    rows = _v1_store(path)
    with open_store(path) as store:
        assert store.query(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key") == _as_read(rows)
        assert store.query("SELECT count(*) FROM prompts")[0] == (2,)
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[0] == (str(SCHEMA_VERSION),)
        hashes = dict(store.query("SELECT request_key, prompt_hash FROM requests"))
    assert hashes["k1"] == hashes["k2"] == prompt_hash(rows[0][-1])


def test_a_version_1_store_opened_read_only_is_upgraded_first(tmp_path):
    path = tmp_path / "old.duckdb"
    rows = _v1_store(path)
    with open_store(path, read_only=True) as store:
        assert store.query(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key") == _as_read(rows)
    with open_store(path) as store:  # opening again migrates nothing twice
        assert store.query("SELECT count(*) FROM prompts")[0] == (2,)


V2_REQUESTS = """
CREATE TABLE requests (
    request_key VARCHAR PRIMARY KEY, model VARCHAR, scene_id VARCHAR, scene_version INTEGER,
    action_id VARCHAR, value VARCHAR, micro_value VARCHAR, polarity VARCHAR, sample INTEGER,
    prompt_hash VARCHAR);
"""


def _v2_store(path, plan) -> None:
    """A schema version 2 store (no asked-value columns) holding ``plan``'s requests, as schema 2 wrote them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR); INSERT INTO meta VALUES ('schema_version', '2');"
        "CREATE TABLE prompts (prompt_hash VARCHAR PRIMARY KEY, messages JSON);" + V2_REQUESTS
    )
    for r in plan.requests:
        text = json.dumps(r.messages, ensure_ascii=False)
        con.execute("INSERT INTO prompts VALUES (?, ?) ON CONFLICT DO NOTHING", [prompt_hash(text), text])
        con.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [r.key, r.model, r.scene_id, r.scene_version, r.action_id, r.value, r.micro_value,
             r.polarity, r.sample, prompt_hash(text)],
        )  # fmt: skip
    con.close()


def _fresh_rows(store_path, plan) -> list[tuple]:
    """``plan``'s requests as a store created at the current schema reads them back."""
    with open_store(store_path) as store:
        store.add_plan(None, plan.requests, [])
        return store.query(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key")


def test_a_version_2_store_is_migrated_to_3_and_reads_like_a_fresh_one(tmp_path):
    plan = _plan(tmp_path / "x.duckdb")
    want = _fresh_rows(tmp_path / "fresh.duckdb", plan)
    assert {r[9:13] for r in want} == {OLD_ROW_DEFAULTS}  # today's prompt asks no value
    old = tmp_path / "v2.duckdb"
    _v2_store(old, plan)
    with open_store(old, read_only=True) as store:  # a reader upgrades it first, as for version 1
        assert store.query(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key") == want
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    with open_store(old) as store:  # the same plan again adds nothing: its keys are unchanged
        store.add_plan(None, plan.requests, [])
        assert store.query("SELECT count(*) FROM requests")[0] == (len(plan.keys()),)


def test_migrations_are_named_and_run_in_order():
    from runner.store.store import MIGRATIONS

    assert [name for name, _, _ in MIGRATIONS] == ["v1_to_v2_prompts", "v2_to_v3_asked_columns"]
    assert SCHEMA_VERSION == 3


def test_a_shard_written_at_schema_2_ingests_with_the_old_defaults(tmp_path):
    from runner.store.shards import ingest

    plan = _plan(tmp_path / "x.duckdb")
    want = _fresh_rows(tmp_path / "fresh.duckdb", plan)
    old = tmp_path / "v2.duckdb"
    _v2_store(old, plan)
    shard = tmp_path / "shard"
    shard.mkdir()
    con = duckdb.connect(str(old))
    for table in ("prompts", "requests"):
        con.execute(f"COPY (SELECT * FROM {table}) TO '{shard / table}.parquet' (FORMAT parquet)")
    con.close()
    dst = tmp_path / "dst.duckdb"
    assert ingest([str(shard)], str(dst))["requests"] == len(plan.keys())
    with open_store(dst, read_only=True) as store:
        assert store.query(f"SELECT * FROM ({REQUESTS_SQL}) ORDER BY request_key") == want


def test_worker_journals_replay_answers_to_recorded_requests_only(store_path):
    """A killed pool run leaves one journal per worker: replay keeps answers to recorded requests, once."""
    from datetime import datetime

    plan = _plan(store_path)
    recorded, unrecorded = plan.requests[0], plan.requests[-1]
    with open_store(store_path) as store:
        store.add_plan(None, [recorded], [])
        row = {
            "model": "mock/judge",
            "text": "3",
            "rating": 3,
            "expected_rating": None,
            "logprobs": None,
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "cost_usd": 0.0,
            "latency_s": 0.01,
            "attempts": 1,
            "provider_model": "mock",
            "fingerprint": None,
            "created_at": datetime(2026, 1, 1),
        }
        store.worker_journal(0).append("responses", {**row, "request_key": recorded.key})
        store.worker_journal(0).append("responses", {**row, "request_key": recorded.key})  # twice: once
        store.worker_journal(1).append("responses", {**row, "request_key": unrecorded.key})
        assert len(store.worker_journals()) == 2
    with open_store(store_path) as store:  # opening the store replays the journals
        keys = [k for (k,) in store.query("SELECT request_key FROM responses")]
        assert keys == [recorded.key]  # the unrecorded request's answer is dropped: it is sent again
        assert store.worker_journals() == []


def test_each_migration_is_applied_once_and_recorded(tmp_path, monkeypatch):
    from runner.store import store as store_module

    path = tmp_path / "old.duckdb"
    _v1_store(path)
    calls: list[str] = []
    wrapped = tuple(
        m._replace(upgrade=lambda con, m=m: (calls.append(m.name), m.upgrade(con)))
        for m in store_module.MIGRATIONS
    )
    monkeypatch.setattr(store_module, "MIGRATIONS", wrapped)
    for _ in range(2):  # the second open finds version 3 recorded and runs nothing
        with open_store(path) as store:
            recorded = dict(store.query("SELECT key, value FROM meta WHERE key LIKE 'migration:%'"))
    assert calls == ["v1_to_v2_prompts", "v2_to_v3_asked_columns"]
    assert sorted(recorded) == ["migration:v1_to_v2_prompts", "migration:v2_to_v3_asked_columns"]
    with open_store(tmp_path / "fresh.duckdb") as fresh:  # a new store needs and records none
        assert fresh.query("SELECT count(*) FROM meta WHERE key LIKE 'migration:%'") == [(0,)]


class _InterruptedInsert:
    """A connection that raises KeyboardInterrupt on the first INSERT, as Ctrl-C or SIGTERM can."""

    def __init__(self, con):
        self.con, self.fired = con, False

    def execute(self, sql, *args):
        if sql.startswith("INSERT") and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_an_interrupt_inside_a_commit_leaves_no_open_transaction(store_path):
    """Before: a SIGTERM between BEGIN and COMMIT left the transaction open, so the run's last flush
    failed on BEGIN and the answers stayed in the journal (CI saw 0 stored of 128 answered)."""
    from datetime import datetime

    plan = _plan(store_path)
    req = plan.requests[0]
    row = {
        "request_key": req.key, "model": "mock/judge", "text": "3", "rating": 3, "expected_rating": None,
        "logprobs": None, "prompt_tokens": 10, "completion_tokens": 1, "cost_usd": 0.0, "latency_s": 0.01,
        "attempts": 1, "provider_model": "mock", "fingerprint": None, "created_at": datetime(2026, 1, 1),
    }  # fmt: skip
    with open_store(store_path) as store:
        store.add_plan(None, [req], [])
        real, store.con = store.con, _InterruptedInsert(store.con)
        try:
            store.commit([row], [])
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the interrupt did not reach the commit")
        store.con = real
        store.commit([row], [])  # the flush that follows the stop
        assert store.query("SELECT count(*) FROM responses") == [(1,)]
