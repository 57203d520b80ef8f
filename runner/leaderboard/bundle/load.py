"""Opening a bundle of any known format, and its manifest checked and brought to the current format."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.core.errors import VatError
from runner.leaderboard.bundle.files import BUNDLE_FORMAT, JUDGMENTS, MANIFEST
from runner.leaderboard.bundle.migrate import current_layout, migrate_manifest
from runner.leaderboard.bundle.read import load_manifest_json, unpacked


@contextmanager
def open_bundle(path: Path) -> Iterator[Path]:
    """Yield a folder holding the bundle's files in the current format's places.

    An archive is unpacked safely into a temporary folder; an older bundle is seen through its
    migrations' renames (runner.leaderboard.bundle.migrate), never rewritten.
    """
    with unpacked(path) as folder, current_layout(folder) as current:
        yield current


def read_manifest(folder: Path) -> dict[str, Any]:
    """The bundle's manifest at the current format; a clear error when it is absent or malformed."""
    return manifest_and_migrations(folder)[0]


def manifest_and_migrations(folder: Path) -> tuple[dict[str, Any], int, list[str]]:
    """The manifest at the current format, the format the bundle was written in, and the migrations applied.

    A bundle of a format newer than this vat-bench knows is refused in one sentence.
    """
    if not (folder / MANIFEST).is_file() or not (folder / JUDGMENTS).is_file():
        raise VatError(f"the bundle must hold {MANIFEST} and {JUDGMENTS}; make it with `vat bundle`", 1)
    manifest = load_manifest_json(folder)
    fmt = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise VatError(
            f"{MANIFEST} is not a bundle manifest (no bundle_format); rebuild it with `vat bundle`", 1
        )
    if fmt > BUNDLE_FORMAT:
        from runner import __version__

        raise VatError(
            f"{MANIFEST} is a bundle of format {fmt}, newer than the formats 1 to {BUNDLE_FORMAT} that "
            f"vat-bench {__version__} reads; upgrade vat-bench (`pip install -U vat-bench`) to verify it",
            1,
        )
    manifest, applied = migrate_manifest(manifest)
    _check_fields(manifest)
    return manifest, fmt, applied


def _check_fields(manifest: dict[str, Any]) -> None:
    """Every field verification reads is present and of its JSON type."""
    for key in ("release", "entry", "judgments", "request_keys", "metrics", "specs", "card"):
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


_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "release": str,
    "judgments": dict,
    "request_keys": list,
    "metrics": list,
    "specs": dict,
    "runs": list,
    "entry_identity": dict,
    "release_sha256": str,
    "card": (dict, type(None)),  # None: a format-1 bundle, which had no dataset card
}
_JSON_NAMES: dict[type | tuple[type, ...], str] = {
    str: "string",
    dict: "object",
    list: "list",
    (dict, type(None)): "object",
}
