"""Sweep shards: a parallel job's private store exported as Parquet files, and ``vat ingest`` loading them.

A shard is one Parquet file per table of :data:`SHARD_TABLES` in a folder (local, or any fsspec URL),
with a manifest (:data:`MANIFEST`) that states the store schema the files were written at. Ingest reads
each shard at its stated version through the named :data:`SHARD_MIGRATIONS` it still needs, and records
each one applied in the store's ``meta``. Ingest is idempotent: rows whose key is already stored are
skipped.
"""

from __future__ import annotations

import glob
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from runner.core.errors import VatError
from runner.store.store import PROMPT_HASH_SQL, SCHEMA_VERSION, open_store, transaction

SHARD_TABLES = ("specs", "runs", "prompts", "requests", "run_requests", "responses", "errors")
_KEYS = {
    "prompts": ("prompt_hash",),
    "specs": ("kind", "id", "version"),
    "runs": ("run_id",),
    "requests": ("request_key",),
    "run_requests": ("run_id", "request_key", "condition"),
    "responses": ("request_key",),
}


MANIFEST = "shard.json"
"""A shard's manifest: ``{"format": "vat-shard", "schema_version": N}``, written before its tables."""


def export_shard(
    store: Any, shard_dir: Path, url: str | None = None, where: dict[str, str] | None = None
) -> list[Path]:
    """Export every table of a shard store to Parquet files in ``shard_dir`` (written, then renamed).

    With ``url`` (an fsspec folder such as ``s3://bucket/sweep/3``), the files are then uploaded there.
    ``where`` keeps only the rows of a table matching its SQL condition (a table not named: none).
    """
    shard_dir.mkdir(parents=True, exist_ok=True)
    manifest = shard_dir / MANIFEST
    manifest.write_text(json.dumps({"format": "vat-shard", "schema_version": SCHEMA_VERSION}) + "\n")
    written = [manifest]
    for table in SHARD_TABLES:
        final = shard_dir / f"{table}.parquet"
        tmp = shard_dir / f".{table}.parquet.tmp"
        rows = "true" if where is None else where.get(table, "false")
        store.con.execute(f"COPY (SELECT * FROM {table} WHERE {rows}) TO '{tmp}' (FORMAT parquet)")
        tmp.replace(final)  # a reader never sees a half-written file
        written.append(final)
    if url:
        upload(written, url)
    return written


def upload(files: list[Path], url: str) -> None:
    """Copy local shard files into the fsspec folder ``url`` (responses last: its presence marks a shard)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    try:
        fs.makedirs(root, exist_ok=True)
        for f in sorted(files, key=lambda f: f.name == "responses.parquet"):
            fs.put_file(str(f), f"{root.rstrip('/')}/{f.name}")
    except Exception as exc:  # s3fs raises botocore and OS errors alike
        raise VatError(f"cannot write the shard to {url}: {type(exc).__name__}: {exc}", 1) from exc


def export_keys(store: Any, keys: list[str], url: str) -> None:
    """Write a shard of the stored answers to ``keys`` (their requests, prompts, responses) to ``url``.

    The sweep driver puts the answers its jobs depend on (the shared pre condition) next to the jobs'
    shards, so a store built from the shards alone has every answer its runs use.
    """
    import pyarrow as pa

    keyed = "request_key IN (SELECT request_key FROM _keys)"
    where = {
        "requests": keyed,
        "responses": keyed,
        "prompts": f"prompt_hash IN (SELECT prompt_hash FROM requests WHERE {keyed})",
    }
    store.con.register("_keys", pa.table({"request_key": keys}))
    try:
        if "://" not in url:
            export_shard(store, Path(url), where=where)
            return
        with tempfile.TemporaryDirectory(prefix="vat_shared_") as tmp:
            export_shard(store, Path(tmp), url, where)
    finally:
        store.con.unregister("_keys")


def recover_partial(root: str) -> list[str]:
    """Export the journal (``shard.duckdb``) of every shard under ``root`` that has no Parquet files.

    A job killed (SIGKILL, a scheduler's timeout) before it exported leaves only that; a job that was
    stopped (Ctrl-C, SIGTERM) exported what it had on the way out.
    """
    recovered = []
    for db in sorted(glob.glob(str(Path(root) / "**" / "shard.duckdb"), recursive=True)):
        folder = Path(db).parent
        if (folder / "responses.parquet").exists():
            continue
        try:
            with open_store(db) as shard:
                export_shard(shard, folder)
        except (VatError, OSError) as exc:  # still open in a live process, or unreadable: leave it
            from runner.core import display

            display.warn(f"could not recover the partial shard {db}: {exc}")
            continue
        recovered.append(str(folder))
    return recovered


def _expand(paths: list[str]) -> dict[str, list[str]]:
    """Table → Parquet files under the given shard folders, sweep folders, files, globs or fsspec URLs."""
    found: dict[str, list[str]] = {t: [] for t in SHARD_TABLES}
    for p in paths:
        if "://" in p:
            for t, files in _expand_url(p).items():
                found[t] += files
            continue
        for t in SHARD_TABLES:
            pattern = p if p.endswith(".parquet") else str(Path(p) / "**" / f"{t}.parquet")
            found[t] += [
                f for f in sorted(glob.glob(pattern, recursive=True)) if Path(f).name == f"{t}.parquet"
            ]
    return found


def _expand_url(url: str) -> dict[str, list[str]]:
    """Table → Parquet files at an fsspec URL: a shard folder, a sweep folder of shards, or a glob."""
    import fsspec

    proto = url.split("://", 1)[0]
    try:
        fs, root = fsspec.core.url_to_fs(url)
        root = root.rstrip("/")
        if any(c in root for c in "*?["):
            matches = fs.glob(root) if root.endswith(".parquet") else fs.glob(f"{root}/**/*.parquet")
        else:
            matches = fs.glob(f"{root}/**/*.parquet") if fs.isdir(root) else []
            if not matches and fs.isfile(root):
                matches = [root]
    except Exception as exc:  # s3fs raises botocore, aiohttp and OS errors alike
        raise VatError(f"cannot list shards at {url}: {type(exc).__name__}: {exc}", 1) from exc
    found: dict[str, list[str]] = {t: [] for t in SHARD_TABLES}
    for m in sorted(matches):
        name = m.rsplit("/", 1)[-1]
        table = name.removesuffix(".parquet")
        if table in found:
            found[table].append(f"{proto}://{m.lstrip('/')}" if proto == "memory" else f"{proto}://{m}")
    return found


def ingest(paths: list[str], store_path: str, with_count: bool = False) -> Any:
    """Load shard Parquet files into the store; idempotent (keys already present are skipped).

    Returns the rows added per table, or (the shards' responses files, rows added) with ``with_count``.
    """
    files = _expand(paths)
    if not any(files.values()):
        raise VatError(
            f"no shard files found under {', '.join(paths)}; a shard folder holds responses.parquet etc.", 1
        )
    counts: dict[str, int] = {}
    with open_store(store_path) as store:
        _register_fsspec(store, paths)
        try:
            versions = _versions(store, files)
            with transaction(store.con):
                for table in SHARD_TABLES:
                    for version, group in _by_version(files[table], versions).items():
                        added = _ingest_table(store, table, group, version)
                        counts[table] = counts.get(table, 0) + added
                _record_migrations(store, versions)
        except Exception as exc:
            if "://" in "".join(paths) and not isinstance(exc, VatError):
                raise VatError(
                    f"cannot read the shards at {', '.join(paths)}: {type(exc).__name__}: {exc}", 1
                ) from exc
            raise
    return (files["responses"], counts) if with_count else counts


def _ingest_table(store: Any, table: str, files: list[str], version: int = SCHEMA_VERSION) -> int:
    """Insert one table's rows from shards at schema ``version`` that the store lacks; return how many."""
    before = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    source = f"read_parquet({files!r}, union_by_name = true)"
    for migration in SHARD_MIGRATIONS:
        step = migration.tables.get(table)
        if migration.version > version and step is not None:
            source = step(store, source)
    if table == "errors":  # no key: skip rows already present so re-ingesting adds nothing
        store.con.execute(f"INSERT INTO errors SELECT DISTINCT * FROM {source} EXCEPT SELECT * FROM errors")
    else:
        # Shards repeat shared rows (every job's pre requests): drop duplicates and rows already stored
        # before inserting, rather than making the insert check a million conflicts.
        cols = ", ".join(_KEYS[table])
        store.con.execute(
            f"INSERT INTO {table} BY NAME SELECT s.* FROM (SELECT DISTINCT ON ({cols}) * FROM {source}) s "
            f"ANTI JOIN {table} USING ({cols}) ON CONFLICT DO NOTHING"
        )
    return int(store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before)


def _v1_to_v2_requests(store: Any, source: str) -> str:
    """Schema 1 → 2 for a shard's requests: their ``messages`` go into ``prompts``, keyed by ``prompt_hash``.

    Hashed as ``runner.store.store.prompt_hash`` does, so a prompt already stored is not stored twice.
    """
    digest = PROMPT_HASH_SQL
    store.con.execute(
        f"INSERT INTO prompts SELECT DISTINCT ON (prompt_hash) {digest} AS prompt_hash, messages FROM {source} "
        "ON CONFLICT DO NOTHING"
    )
    return f"(SELECT * EXCLUDE (messages), {digest} AS prompt_hash FROM {source})"


class ShardMigration(NamedTuple):
    """One named step that reads a shard of an older schema as ``version``: a rewrite of some tables' rows."""

    name: str
    version: int
    tables: dict[str, Callable[[Any, str], str]]
    """Table → (store, SQL source at the older version) → SQL source at ``version``; a table not named
    reads unchanged (``INSERT ... BY NAME`` gives a column the older shard lacks its default)."""


SHARD_MIGRATIONS = (
    ShardMigration("v1_to_v2_prompts", 2, {"requests": _v1_to_v2_requests}),
    ShardMigration("v2_to_v3_asked_columns", 3, {}),  # the asked columns' defaults are what v2 rows were
)
"""The shard twins of ``runner.store.store.MIGRATIONS``, in order; each applied is recorded in ``meta``
as ``shard_migration:<name>`` (when, and how many shards it was applied to)."""


def _versions(store: Any, files: dict[str, list[str]]) -> dict[str, int]:
    """Shard folder → the store schema its files were written at (its manifest, else :func:`_legacy_version`)."""
    folders = sorted({_folder(f) for group in files.values() for f in group})
    out = {folder: _manifest_version(folder) for folder in folders}
    requests = {_folder(f): f for f in files["requests"]}
    for folder, version in out.items():
        if version is None:
            out[folder] = _legacy_version(store, requests.get(folder))
    newer = sorted(f for f, v in out.items() if (v or 0) > SCHEMA_VERSION)
    if newer:
        raise VatError(
            f"{newer[0]}/{MANIFEST}: the shard is at store schema {out[newer[0]]}, newer than this vat's "
            f"{SCHEMA_VERSION}; upgrade vat-bench to ingest it",
            1,
        )
    return {f: int(v or SCHEMA_VERSION) for f, v in out.items()}


def _folder(file: str) -> str:
    """The shard folder of one of its files (a local path or an fsspec URL)."""
    return file.rsplit("/", 1)[0]


def _manifest_version(folder: str) -> int | None:
    """The ``schema_version`` a shard's manifest states, or None for a shard written before manifests."""
    import fsspec

    path = f"{folder}/{MANIFEST}"
    try:
        with fsspec.open(path, "r") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VatError(
            f"{path}: unreadable shard manifest ({exc}); re-export the shard or delete the file", 1
        ) from exc
    if (
        not isinstance(doc, dict)
        or doc.get("format") != "vat-shard"
        or not isinstance(doc.get("schema_version"), int)
    ):
        raise VatError(
            f'{path}: not a shard manifest; it must read {{"format": "vat-shard", "schema_version": N}}', 1
        )
    return int(doc["schema_version"])


def _legacy_version(store: Any, requests_file: str | None) -> int:
    """The schema of a shard written before manifests existed (schemas 1–3), read once from its columns.

    Only such old shards are looked at this way: every shard exported since states its version.
    """
    if requests_file is None:
        return SCHEMA_VERSION  # no requests file: nothing in the other tables changed between 1 and 3
    source = f"read_parquet({[requests_file]!r})"
    columns = {row[0] for row in store.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    return 1 if "messages" in columns else 2 if "asked_value" not in columns else 3


def _by_version(files: list[str], versions: dict[str, int]) -> dict[int, list[str]]:
    """One table's files grouped by the schema version of their shards (each group is read as one source)."""
    out: dict[int, list[str]] = {}
    for f in files:
        out.setdefault(versions[_folder(f)], []).append(f)
    return dict(sorted(out.items()))


def _record_migrations(store: Any, versions: dict[str, int]) -> None:
    """Write each shard migration this ingest applied, and to how many shards, into the store's ``meta``."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for migration in SHARD_MIGRATIONS:
        shards = sum(1 for v in versions.values() if v < migration.version)
        if shards:
            store.con.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [f"shard_migration:{migration.name}", json.dumps({"at": now, "shards": shards})],
            )


def _register_fsspec(store: Any, paths: list[str]) -> None:
    """Let DuckDB read shards on any fsspec filesystem (s3://, gs://, memory:// ...)."""
    protocols = {p.split("://", 1)[0] for p in paths if "://" in p}
    if not protocols:
        return
    import fsspec

    for proto in protocols:
        store.con.register_filesystem(fsspec.filesystem(proto))
