"""Sweep shards: a parallel job's private store exported as Parquet files, and ``vat ingest`` loading them.

A shard is one Parquet file per table of :data:`SHARD_TABLES` in a folder (local, or any fsspec URL).
Ingest is idempotent: rows whose key is already stored are skipped.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from runner.core.errors import VatError
from runner.store.store import PROMPT_HASH_SQL, open_store

SHARD_TABLES = ("specs", "runs", "prompts", "requests", "run_requests", "responses", "errors")
_KEYS = {
    "prompts": ("prompt_hash",),
    "specs": ("kind", "id", "version"),
    "runs": ("run_id",),
    "requests": ("request_key",),
    "run_requests": ("run_id", "request_key", "condition"),
    "responses": ("request_key",),
}


def export_shard(store: Any, shard_dir: Path) -> list[Path]:
    """Export every table of a shard store to Parquet files in ``shard_dir`` (written, then renamed)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in SHARD_TABLES:
        final = shard_dir / f"{table}.parquet"
        tmp = shard_dir / f".{table}.parquet.tmp"
        store.con.execute(f"COPY (SELECT * FROM {table}) TO '{tmp}' (FORMAT parquet)")
        tmp.replace(final)  # a reader never sees a half-written file
        written.append(final)
    return written


def _expand(paths: list[str]) -> dict[str, list[str]]:
    """Table → Parquet files under the given shard folders, sweep folders, files or fsspec URLs."""
    found: dict[str, list[str]] = {t: [] for t in SHARD_TABLES}
    for p in paths:
        if "://" in p:  # fsspec URL: DuckDB reads it through a registered filesystem
            for t in SHARD_TABLES:
                found[t].append(f"{p.rstrip('/')}/{t}.parquet")
            continue
        for t in SHARD_TABLES:
            pattern = p if p.endswith(".parquet") else str(Path(p) / "**" / f"{t}.parquet")
            found[t] += [
                f for f in sorted(glob.glob(pattern, recursive=True)) if Path(f).name == f"{t}.parquet"
            ]
    return found


def ingest(paths: list[str], store_path: str) -> dict[str, int]:
    """Load shard Parquet files into the store; idempotent (keys already present are skipped)."""
    files = _expand(paths)
    if not any(files.values()):
        raise VatError(
            f"no shard files found under {', '.join(paths)}; a shard folder holds responses.parquet etc.", 1
        )
    counts: dict[str, int] = {}
    with open_store(store_path) as store:
        _register_fsspec(store, paths)
        store.con.execute("BEGIN")
        try:
            for table in SHARD_TABLES:
                if not files[table]:
                    continue
                before = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                source = f"read_parquet({files[table]!r}, union_by_name = true)"
                if table == "requests":
                    source = _requests_source(store, source)
                if table == "errors":  # no key: skip rows already present so re-ingesting adds nothing
                    store.con.execute(
                        f"INSERT INTO errors SELECT DISTINCT * FROM {source} EXCEPT SELECT * FROM errors"
                    )
                else:
                    # Shards repeat shared rows (every job's pre requests): drop duplicates and rows already
                    # stored before inserting, rather than making the insert check a million conflicts.
                    cols = ", ".join(_KEYS[table])
                    store.con.execute(
                        f"INSERT INTO {table} BY NAME SELECT s.* FROM (SELECT DISTINCT ON ({cols}) * FROM {source}) s "
                        f"ANTI JOIN {table} USING ({cols}) ON CONFLICT DO NOTHING"
                    )
                counts[table] = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
            store.con.execute("COMMIT")
        except Exception:
            store.con.execute("ROLLBACK")
            raise
    return counts


def _requests_source(store: Any, source: str) -> str:
    """The shards' requests with ``prompt_hash``: a shard written before store schema 2 has ``messages``.

    Such a shard's messages go into ``prompts`` first (hashed as ``runner.store.store.prompt_hash`` does).
    """
    columns = {row[0] for row in store.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    if "messages" not in columns:
        return source
    digest = PROMPT_HASH_SQL
    store.con.execute(
        f"INSERT INTO prompts SELECT DISTINCT ON (prompt_hash) {digest} AS prompt_hash, messages FROM {source} "
        "ON CONFLICT DO NOTHING"
    )
    return f"(SELECT * EXCLUDE (messages), {digest} AS prompt_hash FROM {source})"


def _register_fsspec(store: Any, paths: list[str]) -> None:
    """Let DuckDB read shards on any fsspec filesystem (s3://, gs://, memory:// ...)."""
    protocols = {p.split("://", 1)[0] for p in paths if "://" in p}
    if not protocols:
        return
    import fsspec

    for proto in protocols:
        store.con.register_filesystem(fsspec.filesystem(proto))
