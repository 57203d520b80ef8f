"""Stage 4, store: one DuckDB file holds specs, runs, requests, responses, errors and value states.

The store is the cache: ``responses`` is keyed by request key, and a key that is present is never sent
again. Only successful provider answers enter ``responses`` (an unparseable answer is still an
answer: stored with ``rating`` NULL and counted); provider failures go to ``errors`` and are retried
by the next run. Every write is one Arrow batch in one transaction, so a crash never leaves a partial
batch. Until its batch commits, each answer also sits in a journal beside the file (see
:class:`Journal`), so a killed run loses only its in-flight requests. DuckDB allows one writing process
per file; a second writer gets a clear error.

A request's messages live in ``prompts``, once per distinct prompt (keyed by ``prompt_hash``, the hash of
their JSON text): the samples of a prompt, and every run that shares it, point at one row. Storing them
per request made recording a 100,000-request plan write ~250 MB of repeated JSON through DuckDB.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from runner.core.errors import VatError

SCHEMA_VERSION = 3
"""2: messages moved from ``requests`` to ``prompts``; 3: ``requests`` records what the question asked
(``asked_value``, ``asked_micro_value``, ``variant``, ``scale_reversed``). Older stores are migrated when
opened (:data:`MIGRATIONS`)."""

ASKED_COLUMNS = {
    "asked_value": "VARCHAR",
    "asked_micro_value": "VARCHAR",
    "variant": "VARCHAR DEFAULT 'base'",
    "scale_reversed": "BOOLEAN DEFAULT false",
}
"""Schema 3's request columns: the value and micro-value the question names (NULL when it names none,
the ``judgment`` prompt), the wording's id and whether the answer scale was shown reversed (the stored
rating stays the digit as given on the displayed scale). The defaults are what every older row was: the
base wording on the plain scale, so old stores and old sweep shards read back unchanged."""

DDL = (
    """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS specs (
    kind VARCHAR, id VARCHAR, version INTEGER, hash VARCHAR, body JSON,
    PRIMARY KEY (kind, id, version));
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, model VARCHAR, strategy VARCHAR, target VARCHAR,
    direction VARCHAR, split VARCHAR, n_scenes INTEGER, config JSON, provenance JSON);
CREATE TABLE IF NOT EXISTS prompts (prompt_hash VARCHAR PRIMARY KEY, messages JSON);
CREATE TABLE IF NOT EXISTS requests (
    request_key VARCHAR PRIMARY KEY, model VARCHAR, scene_id VARCHAR, scene_version INTEGER,
    action_id VARCHAR, value VARCHAR, micro_value VARCHAR, polarity VARCHAR, sample INTEGER,
    prompt_hash VARCHAR, """
    + ", ".join(f"{c} {t}" for c, t in ASKED_COLUMNS.items())
    + """);
CREATE TABLE IF NOT EXISTS run_requests (
    run_id VARCHAR, request_key VARCHAR, condition VARCHAR, step INTEGER,
    PRIMARY KEY (run_id, request_key, condition));
CREATE TABLE IF NOT EXISTS responses (
    request_key VARCHAR PRIMARY KEY, model VARCHAR, text VARCHAR, rating INTEGER, expected_rating DOUBLE,
    logprobs JSON, prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    attempts INTEGER, provider_model VARCHAR, fingerprint VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS errors (
    request_key VARCHAR, attempt INTEGER, error_type VARCHAR, status INTEGER, message VARCHAR,
    final BOOLEAN, created_at TIMESTAMP);
"""
)

REQUEST_COLUMNS = (
    "request_key",
    "model",
    "scene_id",
    "scene_version",
    "action_id",
    "value",
    "micro_value",
    "polarity",
    "sample",
    *ASKED_COLUMNS,
    "messages",
)
"""A request as readers see it: ``requests`` joined with its ``prompts`` row (see :data:`REQUESTS_SQL`)."""
REQUEST_TABLE_COLUMNS = (*REQUEST_COLUMNS[:-1], "prompt_hash")
"""The columns of the ``requests`` table itself (in no particular order: readers name them)."""
REQUESTS_SQL = (
    f"SELECT {', '.join('q.' + c for c in REQUEST_COLUMNS[:-1])}, p.messages "
    "FROM requests q LEFT JOIN prompts p USING (prompt_hash)"
)
"""Every request with its messages, in :data:`REQUEST_COLUMNS` order (a subquery for readers)."""
RESPONSE_COLUMNS = (
    "request_key",
    "model",
    "text",
    "rating",
    "expected_rating",
    "logprobs",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_s",
    "attempts",
    "provider_model",
    "fingerprint",
    "created_at",
)
ERROR_COLUMNS = ("request_key", "attempt", "error_type", "status", "message", "final", "created_at")

_RESPONSE_SCHEMA = pa.schema(
    [
        ("request_key", pa.string()),
        ("model", pa.string()),
        ("text", pa.string()),
        ("rating", pa.int32()),
        ("expected_rating", pa.float64()),
        ("logprobs", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("attempts", pa.int32()),
        ("provider_model", pa.string()),
        ("fingerprint", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
_ERROR_SCHEMA = pa.schema(
    [
        ("request_key", pa.string()),
        ("attempt", pa.int32()),
        ("error_type", pa.string()),
        ("status", pa.int32()),
        ("message", pa.string()),
        ("final", pa.bool_()),
        ("created_at", pa.timestamp("us")),
    ]
)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One DuckDB transaction: committed when the block ends, rolled back on any exception.

    Any, a Ctrl-C or SIGTERM included: an interrupt between BEGIN and COMMIT must not leave the
    transaction open, or the run's last flush (which keeps every answer received) fails on BEGIN.
    """
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


JOURNAL_SUFFIX = ".journal"


class Journal:
    """Rows received but not yet committed, one JSON line each, in ``<store>.journal``.

    A DuckDB commit costs ~11 ms, so answers are committed in batches (``execution.flush_every``).
    Until its batch commits, each row is also appended here (~12 µs: one ``write`` into the OS page
    cache, which outlives the process). A run killed between commits (SIGKILL, out of memory) so
    loses only its in-flight requests: the next writer to open the store replays the journal, keyed
    by request key. Only the process holding DuckDB's write lock touches the journal.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, table: str, row: dict[str, Any]) -> None:
        """Append one row of ``table`` ("responses" or "errors")."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        data = (json.dumps({"table": table, "row": row}, default=_iso, ensure_ascii=False) + "\n").encode()
        while data:
            data = data[os.write(self._fd, data) :]

    def read(self) -> dict[str, list[dict[str, Any]]]:
        """The journal's complete rows by table (a last line cut short by a kill was still in flight)."""
        out: dict[str, list[dict[str, Any]]] = {"responses": [], "errors": []}
        if not self.path.exists():
            return out
        for line in self.path.read_bytes().split(b"\n"):
            try:
                entry = json.loads(line)
                row = entry["row"]
                row["created_at"] = (
                    datetime.fromisoformat(row["created_at"]) if row.get("created_at") else None
                )
                out[entry["table"]].append(row)
            except (ValueError, KeyError, TypeError):
                continue  # the torn tail of a killed write, or the empty string after the last newline
        return out

    def clear(self) -> None:
        """Forget every row (called once they are committed)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            self.path.write_bytes(b"")

    def close(self) -> None:
        """Close the file; remove it when empty, so a clean store leaves no journal behind."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()


def _iso(value: Any) -> str:
    """JSON fallback for the journal: timestamps as ISO strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")


class Store:
    """A DuckDB store. Open with :func:`open_store`; use as a context manager to close it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, read_only: bool = False) -> None:
        self.con = con
        self.path = path
        self.journal = None if read_only else Journal(Path(path + JOURNAL_SUFFIX))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (checkpointing the WAL into the file) and the journal."""
        self.con.close()
        if self.journal is not None:
            self.journal.close()

    # ------------------------------------------------------------ writes

    def _append(self, table: str, rows: pa.Table, conflict: str | None = "DO NOTHING") -> None:
        """Insert an Arrow table in one transaction; existing primary keys are left as they are."""
        if rows.num_rows == 0:
            return
        self.con.register("_batch", rows)
        try:
            cols = ", ".join(rows.column_names)
            on_conflict = f" ON CONFLICT {conflict}" if conflict else ""
            with transaction(self.con):
                self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch{on_conflict}")
        finally:
            self.con.unregister("_batch")

    def add_responses(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store a batch of successful responses (first answer per key wins)."""
        self._append("responses", pa.Table.from_pylist(list(rows), schema=_RESPONSE_SCHEMA))

    def add_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record a batch of failed attempts (transient or final)."""
        self._append("errors", pa.Table.from_pylist(list(rows), schema=_ERROR_SCHEMA), conflict=None)

    def journal_row(self, table: str, row: dict[str, Any]) -> None:
        """Keep one not-yet-committed row of ``table`` safe from a kill (see :class:`Journal`)."""
        if self.journal is not None:
            self.journal.append(table, row)

    def commit(self, responses: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]]) -> None:
        """Commit a batch of responses and failed attempts, then clear the journal that held them."""
        self.add_responses(responses)
        self.add_errors(errors)
        if self.journal is not None:
            self.journal.clear()

    def worker_journal(self, index: int) -> Journal:
        """The journal of pool worker ``index`` (runner.execute.pool): its answers, safe before this process has them."""
        return Journal(Path(f"{self.path}{JOURNAL_SUFFIX}.w{index}"))

    def worker_journals(self) -> list[Path]:
        """Journals pool workers left beside the store (kept until their run commits everything)."""
        base = Path(self.path)
        return sorted(base.parent.glob(f"{base.name}{JOURNAL_SUFFIX}.w*"))

    def drop_worker_journals(self) -> None:
        """Remove the workers' journals once every row they hold is committed."""
        for path in self.worker_journals():
            path.unlink(missing_ok=True)

    def replay_journal(self) -> int:
        """Commit the rows a killed run left in the journals; return how many responses they held.

        The store's own journal, plus those of pool workers; rows already committed are skipped (the
        first answer per key wins; an error row already logged is recognised by key, attempt and time).
        """
        if self.journal is None:
            return 0
        rows = self.journal.read()
        workers = self.worker_journals()
        for path in workers:
            for table, found in Journal(path).read().items():
                rows[table].extend(found)
        errors = rows["errors"]
        if errors:  # a kill between a commit and the journal's clearing would otherwise log them twice
            seen = {
                (k, a, t)
                for k, a, t in self.query(
                    "SELECT request_key, attempt, created_at FROM errors WHERE request_key IN (SELECT unnest(?))",
                    [sorted({e["request_key"] for e in errors})],
                )
            }
            unique = {(e["request_key"], e["attempt"], e["created_at"]): e for e in errors}
            errors = [e for k, e in unique.items() if k not in seen]
        responses = list({r["request_key"]: r for r in reversed(rows["responses"])}.values())  # first wins
        if workers and (responses or errors):
            # Workers start before their run records its plan: a run killed in between can leave
            # answers to requests never recorded. Keep the store whole; the next run sends them again.
            unknown = self._missing_keys(sorted({r["request_key"] for r in [*responses, *errors]}))
            responses = [r for r in responses if r["request_key"] not in unknown]
            errors = [e for e in errors if e["request_key"] not in unknown]
        self.commit(responses, errors)
        self.drop_worker_journals()
        return len(responses)

    def add_plan(
        self, run: dict[str, Any] | None, requests: Iterable[Any], specs: Iterable[dict[str, Any]]
    ) -> None:
        """Record a run, its requests and the spec snapshots it used (idempotent).

        ``run=None`` records only the requests (requests sent on behalf of several runs, before them).
        """
        all_reqs = requests if isinstance(requests, Sequence) else list(requests)
        # Only the requests not recorded yet: a rerun of a 100,000-request plan would otherwise encode
        # 100,000 rows again, only for the primary key to drop them.
        missing = self._missing_keys([r.key for r in all_reqs])
        reqs = [r for r in all_reqs if r.key in missing]
        # In chunks, each prompt's messages once (in ``prompts``, before the requests that point at
        # them). A chunk that commits before a crash is simply skipped next time.
        hashes: dict[int, str] = {}
        for i in range(0, len(reqs), _PLAN_CHUNK):
            prompts, rows = _request_tables(reqs[i : i + _PLAN_CHUNK], hashes)
            self._append("prompts", prompts)
            self._append("requests", _dedupe(rows))
        if run is None:
            return
        links = {(r.key, r.condition) for r in all_reqs}
        ((recorded,),) = self.con.execute(
            "SELECT count(*) FROM run_requests WHERE run_id = ?", [run["run_id"]]
        ).fetchall()  # fetchall: fetchone would leave the result open and block the next register()
        todo = all_reqs if recorded != len(links) else []  # a rerun of the same run links nothing new
        link_tbl = pa.table(
            {
                "run_id": [run["run_id"]] * len(todo),
                "request_key": [r.key for r in todo],
                "condition": [r.condition for r in todo],
                "step": pa.array([r.step for r in todo], pa.int32()),
            }
        )
        run_tbl = pa.Table.from_pylist([run])
        spec_tbl = pa.Table.from_pylist(
            list(specs),
            schema=pa.schema(
                [
                    ("kind", pa.string()),
                    ("id", pa.string()),
                    ("version", pa.int32()),
                    ("hash", pa.string()),
                    ("body", pa.string()),
                ]
            ),
        )
        self._append("specs", spec_tbl)
        self._append("runs", run_tbl)
        self._append("run_requests", link_tbl)

    def add_request_rows(self, rows: pa.Table) -> None:
        """Store request rows given with their messages (:data:`REQUEST_COLUMNS`): prompts, then requests."""
        texts = [str(m) for m in rows.column("messages").to_pylist()]
        hashes = [prompt_hash(t) for t in texts]
        unique = dict(zip(hashes, texts, strict=True))
        self._append("prompts", pa.table({"prompt_hash": list(unique), "messages": list(unique.values())}))
        table = rows.drop_columns(["messages"]).append_column("prompt_hash", pa.array(hashes, pa.string()))
        self._append("requests", _dedupe(table.select(list(REQUEST_TABLE_COLUMNS))))

    def _missing_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` with no row in ``requests`` yet (one join, not one probe per key)."""
        if not keys:
            return set()
        self.con.register("_probe", pa.table({"request_key": list(keys)}))
        try:
            rows = self.con.execute(
                "SELECT DISTINCT request_key FROM _probe ANTI JOIN requests USING (request_key)"
            ).fetchall()
        finally:
            self.con.unregister("_probe")
        return {r[0] for r in rows}

    # ------------------------------------------------------------ reads

    def stored_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` that already has a response."""
        if not keys:
            return set()
        probe = pa.table({"request_key": list(keys)})
        self.con.register("_probe", probe)
        try:
            rows = self.con.execute(
                "SELECT r.request_key FROM responses r JOIN _probe p USING (request_key)"
            ).fetchall()
        finally:
            self.con.unregister("_probe")
        return {r[0] for r in rows}

    def final_errors(self, keys: Sequence[str]) -> int:
        """How many of ``keys`` have a recorded final error and no response."""
        probe = pa.table({"request_key": list(keys)})
        self.con.register("_probe", probe)
        try:
            (n,) = self.con.execute(
                "SELECT count(DISTINCT e.request_key) FROM errors e JOIN _probe p USING (request_key) "
                "WHERE e.final AND e.request_key NOT IN (SELECT request_key FROM responses)"
            ).fetchone()
        finally:
            self.con.unregister("_probe")
        return int(n)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query and return all rows."""
        return self.con.execute(sql, params or []).fetchall()


_PLAN_CHUNK = 5000
"""Requests per Arrow batch when a plan is recorded."""


def prompt_hash(messages_json: str) -> str:
    """The ``prompts`` key of a prompt: SHA-256 (hex, 32 chars) of its stored JSON text.

    :data:`PROMPT_HASH_SQL` is the same in DuckDB (the version 1 → 2 migration, old sweep shards).
    """
    return hashlib.sha256(messages_json.encode("utf-8")).hexdigest()[:32]


PROMPT_HASH_SQL = "left(sha256(CAST(messages AS VARCHAR)), 32)"
""":func:`prompt_hash` of a row's ``messages`` column, as a DuckDB expression."""


def _request_tables(reqs: Sequence[Any], hashes: dict[int, str]) -> tuple[pa.Table, pa.Table]:
    """The new ``prompts`` rows and the ``requests`` rows of ``reqs``, as Arrow tables.

    ``hashes`` maps ``id(messages)`` to the prompt's hash across the chunks of one plan: the samples of a
    prompt share one messages tuple, so each prompt is encoded, hashed and returned once.
    """
    new: dict[str, str] = {}

    def key(r: Any) -> str:
        digest = hashes.get(id(r.messages))
        if digest is None:
            text = json.dumps(r.messages, ensure_ascii=False)
            digest = hashes[id(r.messages)] = prompt_hash(text)
            new[digest] = text
        return digest

    prompt_keys = [key(r) for r in reqs]
    prompts = pa.table(
        {
            "prompt_hash": pa.array(list(new), pa.string()),
            "messages": pa.array(list(new.values()), pa.string()),
        }
    )
    return prompts, pa.table(
        {
            "request_key": [r.key for r in reqs],
            "model": [r.model for r in reqs],
            "scene_id": [r.scene_id for r in reqs],
            "scene_version": pa.array([r.scene_version for r in reqs], pa.int32()),
            "action_id": [r.action_id for r in reqs],
            "value": [r.value for r in reqs],
            "micro_value": pa.array([r.micro_value for r in reqs], pa.string()),
            "polarity": [r.polarity for r in reqs],
            "sample": pa.array([r.sample for r in reqs], pa.int32()),
            "prompt_hash": prompt_keys,
            "asked_value": pa.array([r.asked_value for r in reqs], pa.string()),
            "asked_micro_value": pa.array([r.asked_micro_value for r in reqs], pa.string()),
            "variant": pa.array([r.variant for r in reqs], pa.string()),
            "scale_reversed": pa.array([r.scale_reversed for r in reqs], pa.bool_()),
        }
    )


def _dedupe(tbl: pa.Table) -> pa.Table:
    """Drop repeated request keys within one batch (a plan may list a key twice across conditions)."""
    keys = tbl.column("request_key").to_pylist()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    if len(first) == len(keys):
        return tbl
    return tbl.take(pa.array(sorted(first.values())))


def open_store(path: str | Path, read_only: bool = False) -> Store:
    """Open (creating if needed) the DuckDB store; a file locked by another writer gives a clear error."""
    path = Path(path)
    if read_only and not path.exists():
        raise VatError(f"no store at {path}; run `vat run` first or set store.path=", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only)
    if read_only and (_pending_migrations(con) or _missing_tables(con)):
        # An older store, or one whose creation was killed part-way (some tables missing): upgrade or
        # repair it once (a short write), then read it as asked. Reading on would raise a CatalogException.
        con.close()
        con = _connect(path, False)
        _create(con)
        con.close()
        con = _connect(path, True)
    if not read_only:
        _create(con)
    store = Store(con, str(path), read_only=read_only)
    store.replay_journal()  # answers a killed run received but had not committed yet
    return store


TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", DDL))
"""Every table of the schema, in creation order (from the DDL itself: one definition)."""


def _missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The schema's tables this file lacks (a store killed while it was being created lacks some)."""
    have = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return [t for t in TABLES if t not in have]


def _create(con: duckdb.DuckDBPyConnection) -> None:
    """Create whatever the schema lacks and migrate, atomically: a kill leaves all of it or none.

    DuckDB commits each statement of a script on its own, so a process killed inside the DDL used to
    leave a store with half its tables, which every later read-only verb tripped over.
    """
    with transaction(con):
        con.execute(DDL)
        con.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
        )
    _migrate(con)


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``path``; a lock held by another process or a bad file is a VatError."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise VatError(
                f"the store {path} is in use by another process (one writer per DuckDB file); "
                "wait for that run to finish or use another store.path=",
                1,
            ) from None
        raise VatError(f"cannot open the store {path}: {str(exc).splitlines()[0]}", 1) from None
    except duckdb.Error as exc:
        raise VatError(
            f"{path} is not a usable DuckDB file ({str(exc).splitlines()[0]}); move it away or set store.path=",
            1,
        ) from None


def _v1_to_v2(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 1 → 2: each distinct prompt into ``prompts``, ``requests`` points at it."""
    digest = PROMPT_HASH_SQL
    con.execute(
        f"INSERT INTO prompts SELECT DISTINCT {digest}, messages FROM requests ON CONFLICT DO NOTHING"
    )
    con.execute("ALTER TABLE requests ADD COLUMN prompt_hash VARCHAR")
    con.execute(f"UPDATE requests SET prompt_hash = {digest}")
    con.execute("ALTER TABLE requests DROP COLUMN messages")


def _v2_to_v3(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 2 → 3: add the :data:`ASKED_COLUMNS`, filled with their defaults.

    Every old row asked no value, in the base wording, on the plain scale.
    """
    for name, sql_type in ASKED_COLUMNS.items():
        con.execute(f"ALTER TABLE requests ADD COLUMN IF NOT EXISTS {name} {sql_type}")


class Migration(NamedTuple):
    """One named store upgrade: it brings a store at ``version - 1`` to ``version``."""

    name: str
    version: int
    upgrade: Callable[[duckdb.DuckDBPyConnection], None]


MIGRATIONS = (
    Migration("v1_to_v2_prompts", 2, _v1_to_v2),
    Migration("v2_to_v3_asked_columns", 3, _v2_to_v3),
)
"""Named store upgrades in order. A store's ``meta.schema_version`` says which it still needs; each one
applied is recorded in ``meta`` as ``migration:<name>`` (with the time), so none runs twice."""

MIGRATION_KEY = "migration:{}"
"""The ``meta`` key that records an applied migration."""


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's recorded schema version (a file without ``meta`` yet is being created: the current one)."""
    if "meta" in _missing_tables(con):
        return SCHEMA_VERSION
    rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else SCHEMA_VERSION


def _pending_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The names of the migrations ``con``'s store still needs, from its recorded version."""
    version = _schema_version(con)
    return [m.name for m in MIGRATIONS if m.version > version]


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring an older store up to :data:`SCHEMA_VERSION`, every pending step in one transaction."""
    pending = set(_pending_migrations(con))
    if not pending:
        return
    with transaction(con):
        con.execute(DDL)
        for m in MIGRATIONS:
            if m.name in pending:
                m.upgrade(con)
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [MIGRATION_KEY.format(m.name), datetime.now().isoformat(timespec="seconds")],
                )
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(m.version)])
