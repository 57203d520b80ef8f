"""The verification record (sidecar): a replay's outcome tied to the bundle's hashes, signed by the maintainer."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from runner.leaderboard.bundle.files import SIDECAR
from runner.leaderboard.bundle.verify import Verdict

HMAC_ENV = "VAT_VERIFY_HMAC_KEY"
"""The maintainer's key that signs verification records; submitters never have it."""


def sidecar_path(bundle: Path) -> Path:
    """Where the verification record of ``bundle`` lives: inside a folder, beside an archive."""
    return bundle / SIDECAR if bundle.is_dir() else bundle.with_name(bundle.name + "." + SIDECAR)


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
        "bundle_format": verdict.bundle_format,
        "migrations": verdict.migrations,  # how an older bundle was read (none for the current format)
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
