"""Verification: every check of a bundle against the recompiled release, and the verdict they make."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from runner.compile.plan import gen_params, request_key
from runner.core.errors import VatError
from runner.core.hub import CARD
from runner.execute.parse import expected_rating, parse_rating
from runner.leaderboard.bundle.files import JUDGMENTS, MANIFEST, MAX_ROWS_FACTOR
from runner.leaderboard.bundle.judgments import (
    JUDGMENT_COLUMNS,
    PLAN_FIELDS,
    judgment_schema,
    metric_rows,
)
from runner.leaderboard.bundle.load import manifest_and_migrations
from runner.leaderboard.bundle.release import ReleasePlan, compile_release, entry_identity, spec_hashes
from runner.metrics.row import ReportRow
from runner.spec.entries import doc_sha256, file_sha256
from runner.store.store import REQUEST_COLUMNS, RESPONSE_COLUMNS

TOLERANCE = 1e-9
"""Recomputed metrics must equal the claimed ones to this absolute tolerance."""
CLAIMED_KEYS = ("gain", "gain_raw", "nvat", "nvat_lit", "rho_rms", "nvat_std", "gini", "ot_abs", "n_scenes")


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
    bundle_format: int | None = None
    """The format the bundle was written in (its manifest's ``bundle_format``)."""
    migrations: list[str] = field(default_factory=list)
    """The named migrations (runner.leaderboard.bundle.migrate) it was read through, in order."""

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
    if manifest.get("entry_identity") != entry_identity(rp.entry):
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
_META_FIELDS = tuple(c for c in PLAN_FIELDS if c != "scene_version")


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
    manifest, verdict.bundle_format, verdict.migrations = manifest_and_migrations(folder)
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
    if verdict.bundle_format >= 2:  # format 1 had no dataset card
        check_card(folder, manifest, verdict)
    table = read_judgments(folder / JUDGMENTS, rp, verdict)
    if table is None:
        return verdict, rp, None
    try:
        check_membership(table, manifest, rp, verdict)
        check_rows(table, rp, verdict)
        if verdict.ok:  # metrics of rows that failed a check would mean nothing (and may not compute)
            provenance = {"bundle_format": verdict.bundle_format, "bundle_migrations": verdict.migrations}
            rows = metric_rows(table, rp, provenance)
            verdict.rows = rows
            check_metrics(rows, manifest, verdict)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, pa.ArrowException) as exc:
        # The checks above assume well-typed values; a hostile manifest can still surprise them.
        verdict.add("bundle well-formed", [f"{type(exc).__name__}: {str(exc)[:200]}"], "")
    return verdict, rp, table


def check_card(folder: Path, manifest: dict[str, Any], verdict: Verdict) -> None:
    """The dataset card is the one the manifest hashes (so a signature over the manifest covers it)."""
    card = manifest.get("card")
    claimed = card.get("sha256") if isinstance(card, dict) else None
    path = folder / CARD
    have = file_sha256(path) if path.is_file() else None
    if claimed is None:
        problems = [f"the manifest names no {CARD}; rebuild the bundle with `vat bundle`"]
    elif have is None:
        problems = [f"the bundle holds no {CARD} (its dataset card); rebuild it with `vat bundle`"]
    else:
        problems = (
            []
            if have == claimed
            else [f"{CARD} has SHA-256 {have[:16]}…, the manifest says {str(claimed)[:16]}…"]
        )
    verdict.add("dataset card", problems, f"{CARD} matches the manifest")


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
