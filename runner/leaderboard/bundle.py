"""Submission bundles: ``vat bundle`` packs one entry's judgments for one release; ``vat verify`` checks them.

A bundle is a folder (or a ``.tar.gz`` of one) with two files:

- ``manifest.json``: release id and hash, entry, spec hashes, config, package versions, run list, every
  request key, the SHA-256 of the judgments file, and the metrics the submitter claims.
- ``judgments.parquet``: the raw rows, one per (run, condition, request key): the request (messages and
  item metadata) joined with the provider's response (text, rating, logprobs, tokens, latency).

Verification trusts nothing in the bundle that it can recompute. It recompiles the release's plan for
the entry (runner.compile.plan), so membership, messages, item metadata and request keys are compared with
what the release *would* send; it re-parses every rating from the stored answer text and logprobs; and
it recomputes every metric from the raw rows in an in-memory DuckDB with the store's own schema, through
the same code as ``vat report`` (runner.store.states, runner.report.tables). What recomputation cannot catch — answer
texts invented wholesale, consistently — only asking the provider again can: ``replay=N`` re-sends N
requests through runner.execute.online and compares the ratings, and records the outcome in a sidecar
``verification.json`` (``<bundle>.verification.json`` beside an archive).

Replay samples by stratum (:func:`replay_sample`): half of the draws go to the rows that drive the
gain (items of the run's target value, pre and post), the rest to the others, and every stratum must
agree on its own, so a forgery of a few target-value rows cannot hide behind many honest ones
(docs/reliability.md gives the detection power). The sidecar is signed with an HMAC key only the
maintainer holds (``VAT_VERIFY_HMAC_KEY``): a record a submitter writes by hand, or one written
without the key, never shows as verified (:func:`read_sidecar`).

A bundle is untrusted input: its sizes, its JSON's depth and its columns' types are checked before
anything is computed from it (:func:`check_bounds`), so a malformed bundle fails verification with a
reason instead of a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import random
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from runner.compile.plan import Plan, Request, compile_plan, gen_params, request_key
from runner.core.errors import VatError
from runner.execute.parse import expected_rating, parse_rating
from runner.metrics.row import ReportRow
from runner.spec.entries import (
    Entry,
    Release,
    doc_sha256,
    file_sha256,
    release_problems,
    snapshot_dir,
)
from runner.store.store import REQUEST_COLUMNS, RESPONSE_COLUMNS  # the store's columns (messages joined in)

_PLAN_FIELDS = tuple(c for c in REQUEST_COLUMNS if c not in ("request_key", "messages"))
"""The request columns a recompiled plan must match row by row (key and messages are checked by hashing)."""

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
JUDGMENTS = "judgments.parquet"
SIDECAR = "verification.json"
MAX_MEMBER_BYTES = 500_000_000
"""Largest judgments file accepted, in a folder or unpacked from an archive (a full release of every
strategy and target is ~100 MB of Parquet; this stops a decompression bomb)."""
MAX_MANIFEST_BYTES = 50_000_000
"""Largest manifest.json (a full release's request keys are ~5 MB)."""
MAX_ARCHIVE_MEMBERS = 16
"""Members read from an archive: a bundle has two; thousands of tiny members are an attack."""
MAX_JSON_DEPTH = 12
"""Deepest nesting accepted in manifest.json (a real one nests 5 levels; deep JSON exhausted the stack)."""
MAX_ROWS_FACTOR = 2
"""A judgments file may hold at most this many times the release's rows (repeats would fail anyway)."""
HMAC_ENV = "VAT_VERIFY_HMAC_KEY"
"""The maintainer's key that signs verification records; submitters never have it."""
TOLERANCE = 1e-9
"""Recomputed metrics must equal the claimed ones to this absolute tolerance."""
CLAIMED_KEYS = ("gain", "gain_raw", "nvat", "nvat_lit", "rho_rms", "nvat_std", "gini", "ot_abs", "n_scenes")

# A judgment row: the run it belongs to, then the store's request and response columns.
JUDGMENT_COLUMNS = (
    ("run_id", "strategy", "target", "direction", "condition", "step")
    + REQUEST_COLUMNS
    + tuple(c for c in RESPONSE_COLUMNS if c not in ("request_key", "model"))
)


# ---------------------------------------------------------------- the release, compiled for one entry


@dataclass(frozen=True)
class Condition:
    """One scored run of a release: strategy × target × direction, compiled."""

    strategy: str
    target: str
    direction: str
    plan: Plan


@dataclass(frozen=True)
class ReleasePlan:
    """A release compiled for one entry: the config, the spec index and one plan per condition."""

    release: Release
    entry: Entry
    cfg: DictConfig
    index: Any
    conditions: tuple[Condition, ...]

    def membership(self) -> list[tuple[str, str, int | None, str]]:
        """(run_id, condition, step, request key) of every judgment the release needs, in plan order."""
        return [
            (c.plan.run.run_id, r.condition, r.step, r.key) for c in self.conditions for r in c.plan.requests
        ]

    def requests_by_key(self) -> dict[str, Request]:
        """Every distinct request of the release by key."""
        return {r.key: r for c in self.conditions for r in c.plan.requests}

    def metric_params(self) -> dict[str, Any]:
        """The metric parameters of the release (``metrics.*`` with the release's overrides)."""
        return dict(OmegaConf.to_container(self.cfg.metrics, resolve=True))  # type: ignore[arg-type]


def release_config(entry: Entry, release: Release, overrides: Sequence[str] = ()) -> DictConfig:
    """The run config of ``entry`` under ``release``: the entry's model, the pinned scenes and prompt, the metrics."""
    from runner.config import compose

    prompt = release.prompt.split("@")[0]
    cfg = compose([f"model={entry.id}", "selection.split=all", f"prompt={prompt}", *overrides])
    cfg.selection.scenes = release.scene_ids
    cfg.selection.train_scenes = release.train_scene_ids  # demonstrations from the pinned train scenes only
    snap = snapshot_dir(release.id)
    if snap.is_dir():  # a frozen release compiles from its own copy of what it pins, not from spec/
        cfg.spec_dir = str(snap)
    cfg.selection.max_scenes = None
    for key, value in release.metrics.items():
        cfg.metrics[key] = value
    return cfg


def condition_config(cfg: DictConfig, strategy: str, target: str, direction: str) -> DictConfig:
    """A copy of ``cfg`` for one (strategy, target, direction) of the release."""
    out = cfg.copy()
    out.strategy, out.target, out.direction = strategy, target, direction
    return out


def compile_release(
    entry: Entry, release: Release, overrides: Sequence[str] = (), index: Any | None = None
) -> ReleasePlan:
    """Compile every condition of ``release`` for ``entry``; fail clearly when the release no longer resolves."""
    from runner.spec.load import load_index

    cfg = release_config(entry, release, overrides)
    index = index if index is not None else load_index(cfg.spec_dir)
    from runner.core.paths import leaderboard_dir

    file = leaderboard_dir() / "releases" / f"{release.id}.yaml"
    problems = release_problems(release, index, f"leaderboard/releases/{release.id}.yaml", file)
    if problems:
        raise VatError(f"{problems[0]}", 1)
    conditions = []
    for strategy in release.strategy_ids:
        for c in release.targets:
            c_cfg = condition_config(cfg, strategy, c.target, c.direction)
            conditions.append(Condition(strategy, c.target, c.direction, compile_plan(index, c_cfg)))
    return ReleasePlan(release, entry, cfg, index, tuple(conditions))


# ---------------------------------------------------------------- judgments


def _membership_table(rp: ReleasePlan) -> pa.Table:
    rows = [
        (i, c.plan.run.run_id, c.strategy, c.target, c.direction, r.condition, r.step, r.key)
        for i, (c, r) in enumerate((c, r) for c in rp.conditions for r in c.plan.requests)
    ]
    return _membership_arrow(rows)


def _membership_arrow(rows: list[tuple[Any, ...]]) -> pa.Table:
    names = ("ord", "run_id", "strategy", "target", "direction", "condition", "step", "request_key")
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table(
        {
            n: pa.array(list(v), pa.int32() if n in ("ord", "step") else pa.string())
            for n, v in zip(names, cols, strict=True)
        }
    )


JUDGMENTS_SQL = """
SELECT l.run_id, l.strategy, l.target, l.direction, l.condition, l.step, l.request_key,
       q.model, q.scene_id, q.scene_version, q.action_id, q.value, q.micro_value, q.polarity, q.sample,
       q.asked_value, q.asked_micro_value, q.variant, q.scale_reversed,
       CAST(p.messages AS VARCHAR) AS messages,
       r.text, r.rating, r.expected_rating, CAST(r.logprobs AS VARCHAR) AS logprobs,
       r.prompt_tokens, r.completion_tokens, r.cost_usd, r.latency_s, r.attempts, r.provider_model,
       r.fingerprint, r.created_at,
       q.request_key IS NOT NULL AS _has_request, r.request_key IS NOT NULL AS _has_response
FROM _membership l
LEFT JOIN requests q USING (request_key)
LEFT JOIN prompts p USING (prompt_hash)
LEFT JOIN responses r USING (request_key)
ORDER BY l.ord
"""


def judgments_from_store(store: Any, rp: ReleasePlan) -> pa.Table:
    """The release's judgments for the entry, read from the store; fails when any is missing."""
    store.con.register("_membership", _membership_table(rp))
    try:
        table = store.con.sql(JUDGMENTS_SQL).to_arrow_table()
    finally:
        store.con.unregister("_membership")
    # A judgment needs both halves: the request as planned in this store and the provider's answer.
    answered = [
        q and r
        for q, r in zip(
            table.column("_has_request").to_pylist(), table.column("_has_response").to_pylist(), strict=True
        )
    ]
    missing = Counter(
        (s, t, d)
        for s, t, d, ok in zip(
            *(table.column(c).to_pylist() for c in ("strategy", "target", "direction")), answered, strict=True
        )
        if not ok
    )
    if missing:
        worst = ", ".join(f"{s} · {t} {d}: {n}" for (s, t, d), n in sorted(missing.items())[:4])
        raise VatError(
            f"{sum(missing.values())} of {table.num_rows} judgments of release {rp.release.id} have no answer in "
            f"{store.path} ({worst}); run `vat leaderboard run entry={rp.entry.id} release={rp.release.id}` first",
            1,
        )
    return table.drop_columns(["_has_request", "_has_response"])


def in_memory_store(judgments: pa.Table, rp: ReleasePlan) -> Any:
    """A DuckDB store in memory, with the store's schema, holding the bundle's judgments.

    Membership (which key belongs to which run and condition) comes from the recompiled release, not
    from the bundle, so the metrics are those of the release's own design.
    """
    import duckdb

    from runner.store.store import DDL, Store

    store = Store(duckdb.connect(":memory:"), ":memory:")
    store.con.execute(DDL)
    runs = pa.Table.from_pylist(
        [
            {
                "run_id": c.plan.run.run_id,
                "created_at": datetime(2000, 1, 1),
                "model": c.plan.run.model,
                "strategy": c.strategy,
                "target": c.target,
                "direction": c.direction,
                "split": "release",
                "n_scenes": len(c.plan.run.scene_ids),
                "config": json.dumps({"model": {"display_name": rp.entry.display_name}}),
                "provenance": json.dumps({"release": rp.release.id}),
            }
            for c in rp.conditions
        ]
    )
    link = _membership_table(rp).select(["run_id", "request_key", "condition", "step"])
    first = _first_per_key(judgments)
    store._append("runs", runs)
    store._append("run_requests", link)
    store.add_request_rows(first.select(list(REQUEST_COLUMNS)))
    store._append("responses", first.select(list(RESPONSE_COLUMNS)))
    return store


def _first_per_key(table: pa.Table) -> pa.Table:
    keys = table.column("request_key").to_pylist()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    return table.take(pa.array(sorted(first.values()), pa.int64()))


def metric_rows(judgments: pa.Table, rp: ReleasePlan) -> list[ReportRow]:
    """Every metric of every condition, recomputed from the raw judgments (same code as `vat report`)."""
    from runner.report.tables import build_rows

    store = in_memory_store(judgments, rp)
    try:
        circle = {v.id: v.circle_index for v in rp.index.values}
        return build_rows(store, rp.index.value_ids, rp.metric_params(), circle_index=circle)
    finally:
        store.close()


# ---------------------------------------------------------------- writing a bundle


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in ("vat-bench", "litellm", "duckdb", "pyarrow", "hydra-core", "numpy", "xllamacpp"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def spec_hashes(rp: ReleasePlan) -> dict[str, dict[str, Any]]:
    """``kind/id`` → {version, hash} of every spec document the release uses."""
    keys = [f"values/{rp.release.value_system.split('@')[0]}", f"prompts/{rp.release.prompt.split('@')[0]}"]
    keys += [f"scenarios/{s}" for s in rp.release.scene_ids + rp.release.train_scene_ids] + [
        f"strategies/{s}" for s in rp.release.strategy_ids
    ]
    return {k: {"version": rp.index.hashes[k][0], "hash": rp.index.hashes[k][1]} for k in keys}


def _entry_identity(entry: Entry) -> dict[str, Any]:
    """The parts of an entry that change judgments (its display facts may be edited freely)."""
    return {"model": entry.model, "parameters": entry.parameters.model_dump(mode="json")}


def build_manifest(
    rp: ReleasePlan, judgments_path: Path, n_rows: int, claimed: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest of a bundle (no secrets: the API key's variable name at most)."""
    from runner.config import to_container
    from runner.metrics.vat import to_json

    model_cfg = to_container(rp.cfg)["model"]
    return {
        "bundle_format": BUNDLE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "release": rp.release.id,
        "release_sha256": doc_sha256(rp.release),
        "entry": rp.entry.model_dump(mode="json"),
        "entry_identity": _entry_identity(rp.entry),
        "specs": spec_hashes(rp),
        "config": {"model": model_cfg, "gen_params": gen_params(rp.cfg.model), "metrics": rp.metric_params()},
        "versions": _versions(),
        "runs": [
            {
                "run_id": c.plan.run.run_id,
                "strategy": c.strategy,
                "target": c.target,
                "direction": c.direction,
                "judgments": len(c.plan.requests),
            }
            for c in rp.conditions
        ],
        "request_keys": sorted({k for *_, k in rp.membership()}),
        "judgments": {"file": JUDGMENTS, "sha256": file_sha256(judgments_path), "rows": n_rows},
        "metrics": to_json(claimed),
    }


def write_bundle(store: Any, rp: ReleasePlan, out: Path) -> Path:
    """Write the bundle of ``rp`` from ``store`` to ``out`` (a folder, or an archive if it ends in .tar.gz)."""
    table = judgments_from_store(store, rp)
    claimed = metric_rows(table, rp)
    archive = out.name.endswith(".tar.gz")
    _keep_records(out)
    folder = Path(tempfile.mkdtemp(prefix="vat-bundle-")) if archive else out
    try:
        if folder.exists() and not archive:
            _check_overwritable(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / JUDGMENTS, compression="zstd")
        manifest = build_manifest(rp, folder / JUDGMENTS, table.num_rows, claimed)
        (folder / MANIFEST).write_text(
            json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        )
        if archive:
            _write_archive(folder, out, stem=out.name[: -len(".tar.gz")])
    finally:
        if archive:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def _keep_records(out: Path) -> None:
    """Refuse to rebuild a bundle over its verification record (issue 21.3: it was silently deleted).

    A rebuilt bundle has new hashes, so the record would no longer apply; deleting it would throw away
    a maintainer's replay. The user chooses: another ``out=``, or moves the record away first.
    """
    record = out.with_name(out.name + "." + SIDECAR) if out.name.endswith(".tar.gz") else out / SIDECAR
    if record.exists():
        raise VatError(
            f"{record} holds the verification record of the bundle at {out}; rebuilding would make it "
            "stale: choose another out= (or move the record away if you mean to replace that bundle)",
            2,
        )


def _check_overwritable(folder: Path) -> None:
    unexpected = [p.name for p in folder.iterdir() if p.name not in (MANIFEST, JUDGMENTS)]
    if unexpected:
        raise VatError(
            f"{folder} exists and holds other files ({', '.join(sorted(unexpected)[:3])}); choose another out=",
            2,
        )


def _write_archive(folder: Path, out: Path, stem: str) -> None:
    """A reproducible .tar.gz: fixed order, owner and mtime."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for name in (MANIFEST, JUDGMENTS):
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------- reading a bundle


@contextmanager
def open_bundle(path: Path) -> Iterator[Path]:
    """Yield a folder holding the bundle's files (an archive is unpacked safely into a temporary folder)."""
    if path.is_dir():
        _check_folder(path)
        yield path
        return
    if not path.is_file():
        raise VatError(f"no bundle at {path}; give a bundle folder or a .tar.gz made by `vat bundle`", 2)
    tmp = Path(tempfile.mkdtemp(prefix="vat-verify-"))
    try:
        try:
            with tarfile.open(path, "r:*") as tar:
                for i, member in enumerate(tar):  # streamed: never the whole member list of a bomb
                    if i >= MAX_ARCHIVE_MEMBERS:
                        raise VatError(f"{path} has over {MAX_ARCHIVE_MEMBERS} members; a bundle has two", 1)
                    name = Path(member.name).name
                    # Only the two known regular files, by base name: no links, devices or paths outside.
                    if name not in (MANIFEST, JUDGMENTS) or not member.isfile():
                        continue
                    limit = _limit(name)
                    if member.size > limit:
                        raise VatError(
                            f"{path}: {member.name} is {member.size:,} bytes, over the {limit:,}-byte limit",
                            1,
                        )
                    src = tar.extractfile(member)
                    if src is not None:
                        _copy_capped(src, tmp / name, limit, f"{path}: {member.name}")
        except (tarfile.TarError, EOFError, OSError, zlib_error) as exc:
            raise VatError(f"{path} is not a readable .tar.gz bundle ({exc})", 1) from None
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _limit(name: str) -> int:
    return MAX_MANIFEST_BYTES if name == MANIFEST else MAX_MEMBER_BYTES


def _copy_capped(src: Any, dst: Path, limit: int, shown: str) -> None:
    """Copy at most ``limit`` bytes (a member's header can lie about its size; the stream cannot)."""
    written = 0
    with dst.open("wb") as out:
        while block := src.read(1 << 20):
            written += len(block)
            if written > limit:
                raise VatError(f"{shown} unpacks to over {limit:,} bytes; a bundle is far smaller", 1)
            out.write(block)


def _check_folder(folder: Path) -> None:
    """A bundle folder holds two regular files within their size limits (no links to devices)."""
    import stat as stat_mod

    for name in (MANIFEST, JUDGMENTS):
        path = folder / name
        if not path.exists():
            continue
        info = path.stat()
        if not stat_mod.S_ISREG(info.st_mode):
            raise VatError(f"{path} is not a regular file; a bundle holds two plain files", 1)
        if info.st_size > _limit(name):
            raise VatError(f"{path} is {info.st_size:,} bytes, over the {_limit(name):,}-byte limit", 1)


def sidecar_path(bundle: Path) -> Path:
    """Where the verification record of ``bundle`` lives: inside a folder, beside an archive."""
    return bundle / SIDECAR if bundle.is_dir() else bundle.with_name(bundle.name + "." + SIDECAR)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The bundle's manifest; a clear error when it is absent or not a JSON object of the known format."""
    path = folder / MANIFEST
    if not path.is_file() or not (folder / JUDGMENTS).is_file():
        raise VatError(f"the bundle must hold {MANIFEST} and {JUDGMENTS}; make it with `vat bundle`", 1)
    _check_folder(folder)
    text = path.read_bytes().decode("utf-8", errors="replace")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise VatError(
            f"{MANIFEST} nests {depth}+ levels deep (a bundle's nests 5); rebuild it with `vat bundle`", 1
        )
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise VatError(
            f"{MANIFEST} is not valid JSON ({str(exc)[:200]}); rebuild the bundle with `vat bundle`", 1
        ) from None
    if not isinstance(manifest, dict) or manifest.get("bundle_format") != BUNDLE_FORMAT:
        raise VatError(
            f"{MANIFEST} is not a bundle of format {BUNDLE_FORMAT}; rebuild it with this version of vat", 1
        )
    for key in ("release", "entry", "judgments", "request_keys", "metrics", "specs"):
        if key not in manifest:
            raise VatError(f"{MANIFEST} has no {key!r}; rebuild the bundle with `vat bundle`", 1)
    if not isinstance(manifest["entry"], dict) or not isinstance(manifest["entry"].get("id"), str):
        raise VatError(f"{MANIFEST}: entry.id is missing; rebuild the bundle with `vat bundle`", 1)
    for key, kind in _MANIFEST_TYPES.items():
        if key in manifest and not isinstance(manifest[key], kind):
            raise VatError(
                f"{MANIFEST}: {key} must be a JSON {_JSON_NAMES[kind]}, not {type(manifest[key]).__name__}; "
                "rebuild the bundle with `vat bundle`",
                1,
            )
    if not all(isinstance(m, dict) for m in manifest["metrics"]):
        raise VatError(
            f"{MANIFEST}: metrics must be a list of objects; rebuild the bundle with `vat bundle`", 1
        )
    return manifest


_MANIFEST_TYPES: dict[str, type] = {
    "release": str,
    "judgments": dict,
    "request_keys": list,
    "metrics": list,
    "specs": dict,
    "runs": list,
    "entry_identity": dict,
    "release_sha256": str,
}
_JSON_NAMES = {str: "string", dict: "object", list: "list"}


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets in ``text`` outside strings (stops counting past MAX_JSON_DEPTH).

    Measured before parsing: ``json.loads`` of 100,000 nested lists raises RecursionError, and deep
    structures make every later walk over the manifest slow or recursive.
    """
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                break
    return deepest


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


# ---------------------------------------------------------------- verification


@dataclass
class Check:
    """One verification check: its name, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str


@dataclass
class Verdict:
    """The outcome of verifying a bundle."""

    bundle: str
    checks: list[Check] = field(default_factory=list)
    rows: list[ReportRow] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    replay: dict[str, Any] | None = None
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """One line per failed check."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def add(self, name: str, problems: list[str], ok_detail: str) -> None:
        """Record a check from its list of problems (empty = passed); at most 3 examples are shown."""
        detail = (
            ok_detail
            if not problems
            else "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        )
        self.checks.append(Check(name, not problems, detail))


def _sample(items: Sequence[Any], n: int = 3) -> str:
    return ", ".join(str(x) for x in list(items)[:n]) + (" …" if len(items) > n else "")


def check_identity(manifest: dict[str, Any], rp: ReleasePlan, verdict: Verdict) -> None:
    """The bundle was made for this release, this entry's model and parameters, and these spec versions."""
    problems = []
    if manifest.get("release_sha256") != doc_sha256(rp.release):
        problems.append(f"release {rp.release.id} differs from the one the bundle was made for")
    if manifest.get("entry_identity") != _entry_identity(rp.entry):
        problems.append(f"the model or parameters of entry {rp.entry.id} differ from the bundle's")
    verdict.add(
        "release and entry", problems, f"release {rp.release.id}, entry {rp.entry.id} ({rp.entry.model})"
    )
    spec = spec_hashes(rp)
    claimed = manifest.get("specs") or {}
    diff = sorted(k for k in set(spec) | set(claimed) if spec.get(k) != claimed.get(k))
    verdict.add(
        "spec hashes", [f"differ for {_sample(diff)}"] if diff else [], f"{len(spec)} documents match"
    )


def check_membership(table: pa.Table, manifest: dict[str, Any], rp: ReleasePlan, verdict: Verdict) -> None:
    """Exactly the release's (run, condition, step, key) rows: none missing, none extra, none repeated."""
    expected = Counter(rp.membership())
    got = Counter(
        zip(
            *(table.column(c).to_pylist() for c in ("run_id", "condition", "step", "request_key")),
            strict=True,
        )
    )
    missing = list((expected - got).elements())
    extra = list((got - expected).elements())
    problems = []
    if extra:
        problems.append(
            f"{len(extra)} judgment(s) do not belong to release {rp.release.id} (key {_sample([e[3] for e in extra], 2)})"
        )
    if missing:
        problems.append(
            f"{len(missing)} judgment(s) of the release are missing (key {_sample([m[3] for m in missing], 2)})"
        )
    keys = sorted({k for *_, k in expected})
    if manifest.get("request_keys") != keys:
        problems.append("the manifest's request_keys are not the release's keys")
    verdict.add(
        "request keys in release",
        problems,
        f"{table.num_rows:,} judgments, {len(keys):,} distinct keys, all in the release",
    )


# A scene's new version that leaves an item's text alone leaves its messages, hence its key and its
# judgment, unchanged: the store records that shared request under whichever scene version asked it
# first. The key already proves the content, so the version is not compared item by item.
_META_FIELDS = tuple(c for c in _PLAN_FIELDS if c != "scene_version")


def check_rows(table: pa.Table, rp: ReleasePlan, verdict: Verdict) -> None:
    """Each row's key is the hash of its stored messages; its item metadata is the release's; its ratings parse from its answer."""
    by_key = rp.requests_by_key()
    params = gen_params(rp.cfg.model)
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    key_problems, meta_problems, rating_problems = [], [], []
    for i, key in enumerate(cols["request_key"]):
        try:
            messages = json.loads(cols["messages"][i])
            recomputed = request_key(cols["model"][i], params, messages, int(cols["sample"][i]))
        except (TypeError, ValueError):
            recomputed = None
        if recomputed != key:
            key_problems.append(f"row {i}: stored key {key} ≠ hash of its messages {recomputed}")
        req = by_key.get(key)
        if req is not None:
            want = tuple(getattr(req, c) for c in _META_FIELDS)
            have = tuple(cols[c][i] for c in _META_FIELDS)
            if want != have:
                meta_problems.append(f"row {i} ({key}): item metadata differs from the release")
        rating_problems += _rating_problems(i, key, cols)
    verdict.add(
        "repeated keys agree", _repeat_problems(cols), "rows that share a key (pre condition) are identical"
    )
    verdict.add("request keys recomputed", key_problems, "every key is the hash of its stored messages")
    verdict.add("item metadata", meta_problems, "scene, action, value and polarity match the release")
    verdict.add("ratings", rating_problems, "every rating re-parses from its stored answer and logprobs")


def _repeat_problems(cols: dict[str, list[Any]]) -> list[str]:
    """A key shared by several runs (the pre condition) must carry the same request and answer in each row."""
    fields = [c for c in REQUEST_COLUMNS + RESPONSE_COLUMNS if c != "request_key"]
    first: dict[str, tuple[int, tuple[Any, ...]]] = {}
    out = []
    for i, key in enumerate(cols["request_key"]):
        row = tuple(cols[c][i] for c in fields)
        seen = first.setdefault(key, (i, row))
        if seen[1] != row:
            out.append(f"rows {seen[0]} and {i} share key {key} but differ")
    return out


def _rating_problems(i: int, key: str, cols: dict[str, list[Any]]) -> list[str]:
    out = []
    if cols["rating"][i] != parse_rating(cols["text"][i]):
        out.append(
            f"row {i} ({key}): rating {cols['rating'][i]} but the answer {cols['text'][i]!r} parses to {parse_rating(cols['text'][i])}"
        )
    try:
        top = json.loads(cols["logprobs"][i]) if cols["logprobs"][i] else None
        want = expected_rating(top)
    except (TypeError, ValueError, AttributeError):
        want = math.nan
    got = cols["expected_rating"][i]
    if not (
        (got is None and want is None)
        or (got is not None and want is not None and abs(got - want) <= TOLERANCE)
    ):
        out.append(f"row {i} ({key}): expected rating {got} but its logprobs give {want}")
    return out


def check_metrics(rows: list[ReportRow], manifest: dict[str, Any], verdict: Verdict) -> None:
    """The claimed metrics equal the recomputed ones."""
    claimed = {r.get("run_id"): r for r in manifest.get("metrics") or [] if isinstance(r, dict)}
    problems = []
    for row in rows:
        c = claimed.pop(row["run_id"], None)
        if c is None:
            problems.append(f"no claimed metrics for run {row['run_id']}")
            continue
        for key in CLAIMED_KEYS:
            a, b = row.get(key), c.get(key)
            same = (a is None and b is None) or (
                isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= TOLERANCE
            )
            if not same:
                problems.append(
                    f"run {row['run_id']} ({row['strategy']}, {row['target']}): claimed {key} {b} but the judgments give {a}"
                )
        if list(c.get("hubs") or []) != list(row.get("hubs") or []):
            problems.append(
                f"run {row['run_id']}: claimed hubs {c.get('hubs')} but the judgments give {row.get('hubs')}"
            )
    if claimed:
        problems.append(f"claimed metrics for runs not in the release: {_sample(list(claimed))}")
    verdict.add(
        "metrics recomputed", problems, f"{len(rows)} conditions: every claimed metric recomputes exactly"
    )


def verify_folder(
    folder: Path, bundle: Path, overrides: Sequence[str] = ()
) -> tuple[Verdict, ReleasePlan | None, pa.Table | None]:
    """Run every check on an unpacked bundle; return the verdict, the compiled release and the judgments."""
    from runner.spec.entries import get_entry, get_release

    verdict = Verdict(bundle=str(bundle))
    manifest = read_manifest(folder)
    verdict.manifest = manifest
    judgments_sha = file_sha256(folder / JUDGMENTS)
    verdict.hashes = {"manifest": file_sha256(folder / MANIFEST), "judgments": judgments_sha}
    try:
        release = get_release(str(manifest["release"]))
        entry = get_entry(str(manifest["entry"]["id"]))
        rp = compile_release(entry, release, overrides)
    except VatError as exc:
        # The bundle names a release or entry this checkout cannot compile: a failed check, not a crash.
        verdict.add("release and entry", [str(exc)], "")
        return verdict, None, None
    check_identity(manifest, rp, verdict)
    claimed_sha = (manifest.get("judgments") or {}).get("sha256")
    verdict.add(
        "judgments file hash",
        []
        if claimed_sha == judgments_sha
        else [f"{JUDGMENTS} has SHA-256 {judgments_sha[:16]}…, the manifest says {str(claimed_sha)[:16]}…"],
        f"SHA-256 {judgments_sha[:16]}… matches the manifest",
    )
    table = read_judgments(folder / JUDGMENTS, rp, verdict)
    if table is None:
        return verdict, rp, None
    try:
        check_membership(table, manifest, rp, verdict)
        check_rows(table, rp, verdict)
        if verdict.ok:  # metrics of rows that failed a check would mean nothing (and may not compute)
            rows = metric_rows(table, rp)
            verdict.rows = rows
            check_metrics(rows, manifest, verdict)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, pa.ArrowException) as exc:
        # The checks above assume well-typed values; a hostile manifest can still surprise them.
        verdict.add("bundle well-formed", [f"{type(exc).__name__}: {str(exc)[:200]}"], "")
    return verdict, rp, table


def judgment_schema() -> pa.Schema:
    """The Arrow types of a judgments file, as `vat bundle` writes them (from the store's own DDL)."""
    import duckdb

    from runner.store.store import DDL

    con = duckdb.connect(":memory:")
    try:
        con.execute(DDL)
        con.register("_membership", _membership_arrow([]))
        return con.sql(JUDGMENTS_SQL).to_arrow_table().drop_columns(["_has_request", "_has_response"]).schema
    finally:
        con.close()


def read_judgments(path: Path, rp: ReleasePlan, verdict: Verdict) -> pa.Table | None:
    """The judgments table if it is readable, of bounded size and of the types `vat bundle` writes; else None.

    The row count is read from the Parquet footer first: a 2-million-row file took 4 GB to load.
    """
    limit = MAX_ROWS_FACTOR * len(rp.membership())
    try:
        meta = pq.ParquetFile(path).metadata
        if meta.num_rows > limit:
            verdict.add(
                "judgments size",
                [f"{meta.num_rows:,} rows; the release has {limit // MAX_ROWS_FACTOR:,}"],
                "",
            )
            return None
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        verdict.add(
            "judgments readable", [f"{JUDGMENTS} is not a readable Parquet file ({str(exc)[:200]})"], ""
        )
        return None
    absent = [c for c in JUDGMENT_COLUMNS if c not in table.column_names]
    verdict.add(
        "judgments columns",
        [f"missing columns: {', '.join(absent)}"] if absent else [],
        f"{len(JUDGMENT_COLUMNS)} columns present",
    )
    if absent:
        return None
    table = table.select(list(JUDGMENT_COLUMNS))
    want = judgment_schema()
    wrong = [
        f"{f.name} is {table.schema.field(f.name).type}, expected {f.type}"
        for f in want
        if f.name in JUDGMENT_COLUMNS
        and not table.schema.field(f.name).type.equals(f.type)
        and not pa.types.is_null(table.schema.field(f.name).type)
    ]
    verdict.add("judgments types", wrong, "every column has the type `vat bundle` writes")
    if wrong:
        return None
    return table.cast(pa.schema([want.field(c) for c in JUDGMENT_COLUMNS]))


# ---------------------------------------------------------------- replay


def replay(
    rp: ReleasePlan, table: pa.Table, n: int, seed: int = 0, min_agreement: float = 0.9
) -> dict[str, Any]:
    """Re-send ``n`` random requests of the bundle through runner.execute.online and compare the ratings.

    A replayed judgment agrees when its parsed rating equals the stored one (both unparseable also
    agrees). The replay passes when the share that agrees is at least ``min_agreement`` and every
    request got an answer.
    """
    from runner.execute.dispatch import execute
    from runner.pipeline import exec_options
    from runner.store.store import open_store

    stored = {
        k: (r, e)
        for k, r, e in zip(
            *(table.column(c).to_pylist() for c in ("request_key", "rating", "expected_rating")), strict=True
        )
    }
    sample = replay_sample(rp, n, seed)
    chosen = [k for keys in sample.values() for k in keys]
    by_key = rp.requests_by_key()
    requests = [by_key[k] for k in chosen]
    opts = exec_options(rp.cfg)  # the same options a `vat run` of this config would use
    with (
        tempfile.TemporaryDirectory(prefix="vat-replay-") as tmp,
        open_store(Path(tmp) / "replay.duckdb") as store,
    ):
        stats = execute(requests, store, opts)
        got = dict(store.query("SELECT request_key, rating FROM responses"))
    mismatches = [
        {"request_key": k, "stored": stored[k][0], "replayed": got.get(k)}
        for k in chosen
        if got.get(k, "absent") != stored[k][0]
    ]
    answered = sum(1 for k in chosen if k in got)
    agreed = len(chosen) - len(mismatches)
    agreement = agreed / len(chosen) if chosen else 0.0
    wrong = {m["request_key"] for m in mismatches}
    strata = {
        name: {
            "drawn": len(keys),
            "agreed": sum(1 for k in keys if k not in wrong),
            "allowed_mismatches": allowed_mismatches(len(keys), min_agreement),
        }
        for name, keys in sample.items()
    }
    strata_ok = all(v["drawn"] - v["agreed"] <= v["allowed_mismatches"] for v in strata.values())
    return {
        "requested": len(chosen),
        "answered": answered,
        "agreed": agreed,
        "agreement": round(agreement, 6),
        "min_agreement": min_agreement,
        "strata": strata,
        "seed": seed,
        "model": rp.entry.model,
        "passed": bool(chosen) and answered == len(chosen) and agreement >= min_agreement and strata_ok,
        "failed_requests": stats.failed,
        "stopped": stats.stopped,  # why the replay ended early (endpoint unreachable, no key, ...), or None
        "errors_by_kind": stats.error_kinds,
        "mismatches": mismatches[:50],
        "replayed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


STRATA = ("target-post", "target-pre", "other-post", "other-pre")
"""Replay strata: a judgment of the run's target value or another, in the post or the pre condition."""
TARGET_SHARE = 0.5
"""Share of the replay draws given to the target-value strata (the rows that drive the gain)."""


def strata(rp: ReleasePlan) -> dict[str, list[str]]:
    """Every request key of the release by replay stratum (a key of the target value in any run is a target key)."""
    target_keys = {r.key for c in rp.conditions for r in c.plan.requests if r.value == c.target}
    out: dict[str, set[str]] = {s: set() for s in STRATA}
    for c in rp.conditions:
        for r in c.plan.requests:
            out[f"{'target' if r.key in target_keys else 'other'}-{r.condition}"].add(r.key)
    return {s: sorted(keys) for s, keys in out.items()}


def allocate(n: int, sizes: dict[str, int], target_share: float = TARGET_SHARE) -> dict[str, int]:
    """Draws per stratum: ``target_share`` of ``n`` to the target strata, the rest to the others.

    Within each group the draws are split evenly; what a small stratum cannot take goes to the others
    in its group, then to the other group, so exactly ``min(n, total)`` keys are drawn.
    """
    n = min(n, sum(sizes.values()))
    out = {s: 0 for s in sizes}
    target = [s for s in sizes if s.startswith("target")]
    other = [s for s in sizes if s not in target]
    left = _fill(out, sizes, target, math.ceil(n * target_share))
    left = _fill(out, sizes, other, n - math.ceil(n * target_share) + left)
    _fill(out, sizes, target + other, left)
    return out


def _fill(out: dict[str, int], sizes: dict[str, int], names: list[str], budget: int) -> int:
    """Add up to ``budget`` draws over ``names`` evenly, within each stratum's size; return what is left."""
    while budget > 0:
        room = [s for s in names if out[s] < sizes[s]]
        if not room:
            break
        share = max(1, budget // len(room))
        for s in room:
            take = min(share, sizes[s] - out[s], budget)
            out[s] += take
            budget -= take
            if budget == 0:
                break
    return budget


def replay_sample(rp: ReleasePlan, n: int, seed: int = 0) -> dict[str, list[str]]:
    """The keys to replay, by stratum: :func:`allocate` draws from each, uniformly at random (seeded)."""
    by_stratum = strata(rp)
    counts = allocate(n, {s: len(k) for s, k in by_stratum.items()})
    rng = random.Random(seed)
    return {s: rng.sample(by_stratum[s], counts[s]) for s in STRATA if counts[s]}


def allowed_mismatches(drawn: int, min_agreement: float) -> int:
    """Mismatches a stratum of ``drawn`` replays may have and still pass (provider non-determinism)."""
    return math.floor((1.0 - min_agreement) * drawn + 1e-9)


def detection_power(size: int, forged: int, drawn: int, allowed: int) -> float:
    """P(a stratum of ``size`` keys with ``forged`` forged ones fails when ``drawn`` are replayed).

    The number of forged keys among the draws is hypergeometric; the stratum fails when it exceeds
    ``allowed`` (assuming the provider reproduces every honest answer).
    """
    total = math.comb(size, drawn)
    passes = sum(
        math.comb(forged, x) * math.comb(size - forged, drawn - x) for x in range(0, min(allowed, forged) + 1)
    )
    return 1.0 - passes / total


def _signature(record: dict[str, Any], key: str) -> str:
    blob = json.dumps(
        {k: v for k, v in record.items() if k != "signature"}, sort_keys=True, ensure_ascii=False
    )
    return hmac.new(key.encode("utf-8"), blob.encode("utf-8"), hashlib.sha256).hexdigest()


def signing_key() -> str | None:
    """The maintainer's HMAC key (``VAT_VERIFY_HMAC_KEY``), or None where it is not set."""
    return os.environ.get(HMAC_ENV) or None


def write_sidecar(bundle: Path, verdict: Verdict) -> Path:
    """Record the verification (with the replay) beside the bundle, tied to the bundle's file hashes."""
    from runner import __version__

    path = sidecar_path(bundle)
    record = {
        "format": 1,
        "verified": verdict.ok and bool(verdict.replay and verdict.replay["passed"]),
        "checks_passed": verdict.ok,
        "reasons": verdict.reasons,
        "release": verdict.manifest.get("release"),
        "entry": (verdict.manifest.get("entry") or {}).get("id"),
        "manifest_sha256": verdict.hashes.get("manifest"),
        "judgments_sha256": verdict.hashes.get("judgments"),
        "replay": verdict.replay,
        "vat_bench": __version__,
    }
    key = signing_key()
    record["signature"] = _signature(record, key) if key else None
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_sidecar(bundle: Path, hashes: dict[str, str]) -> dict[str, Any] | None:
    """The bundle's verification record if it is signed by the maintainer's key and tied to these files.

    None otherwise: no record, a record of other files, or one that is unsigned or whose signature does
    not match (hand-written, edited, or made where ``VAT_VERIFY_HMAC_KEY`` was not set). Such a bundle
    shows as checked, never as verified.
    """
    path = sidecar_path(bundle)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("manifest_sha256") != hashes.get("manifest") or record.get(
        "judgments_sha256"
    ) != hashes.get("judgments"):
        return None  # a record of other files: the bundle changed after it was replayed
    key = signing_key()
    signature = record.get("signature")
    if (
        not key
        or not isinstance(signature, str)
        or not hmac.compare_digest(signature, _signature(record, key))
    ):
        return None
    return record
