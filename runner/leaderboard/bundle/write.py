"""Writing a bundle: ``vat bundle`` packs one entry's judgments of one release, with its card and manifest.

The bundle is a Hugging Face dataset folder (runner.leaderboard.bundle.files) or a ``.tar.gz`` of one.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from runner.compile.plan import gen_params
from runner.core.errors import VatError
from runner.core.hub import CARD
from runner.leaderboard.bundle.card import bundle_card
from runner.leaderboard.bundle.files import BUNDLE_FORMAT, JUDGMENTS, LAYOUTS, MANIFEST, SIDECAR
from runner.leaderboard.bundle.judgments import judgments_from_store, metric_rows
from runner.leaderboard.bundle.release import ReleasePlan, entry_identity, spec_hashes
from runner.spec.entries import doc_sha256, file_sha256


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in ("vat-bench", "litellm", "duckdb", "pyarrow", "hydra-core", "numpy", "xllamacpp"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_manifest(
    rp: ReleasePlan,
    judgments_path: Path,
    n_rows: int,
    claimed: Sequence[Mapping[str, Any]],
    card_path: Path | None = None,
) -> dict[str, Any]:
    """The manifest of a bundle (no secrets: the API key's variable name at most).

    It records the SHA-256 of the judgments file and of the card, so a signature over the manifest
    covers every file of the bundle.
    """
    from runner.config import to_container
    from runner.metrics.vat import to_json

    model_cfg = to_container(rp.cfg)["model"]
    return {
        "bundle_format": BUNDLE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "release": rp.release.id,
        "release_sha256": doc_sha256(rp.release),
        "entry": rp.entry.model_dump(mode="json"),
        "entry_identity": entry_identity(rp.entry),
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
        "card": {"file": CARD, "sha256": file_sha256(card_path)} if card_path else None,
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
        (folder / JUDGMENTS).parent.mkdir(parents=True, exist_ok=True)
        (folder / LAYOUTS[1]["judgments"]).unlink(missing_ok=True)  # a format-1 bundle rebuilt in place
        pq.write_table(table, folder / JUDGMENTS, compression="zstd")
        (folder / CARD).write_text(bundle_card(rp, table), encoding="utf-8")
        manifest = build_manifest(rp, folder / JUDGMENTS, table.num_rows, claimed, folder / CARD)
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
    """Rebuild only over a bundle: a folder holding nothing but a bundle's files (of any format)."""
    mine = {MANIFEST, CARD, JUDGMENTS, LAYOUTS[1]["judgments"], str(Path(JUDGMENTS).parent)}
    unexpected = [p.relative_to(folder).as_posix() for p in folder.rglob("*")]
    unexpected = [rel for rel in unexpected if rel not in mine]
    if unexpected:
        raise VatError(
            f"{folder} exists and holds other files ({', '.join(sorted(unexpected)[:3])}); choose another out=",
            2,
        )


def _write_archive(folder: Path, out: Path, stem: str) -> None:
    """A reproducible .tar.gz: fixed order, owner and mtime."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for name in (CARD, MANIFEST, JUDGMENTS):
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
