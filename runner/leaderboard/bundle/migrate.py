"""Named, versioned migrations of bundles: an older bundle is read as the current format, step by step.

Like the store's ``MIGRATIONS`` and ``SHARD_MIGRATIONS``, :data:`BUNDLE_MIGRATIONS` is an ordered list;
each step brings a bundle of format ``version - 1`` to ``version``, once, and the names of those applied
are recorded in the verdict, the verification record and the provenance of the store that recomputes
the metrics. A bundle is never rewritten: the steps rename its files in a temporary folder of links
(:func:`current_layout`) and rewrite its manifest in memory (:func:`migrate_manifest`), so the bytes a
signed verification record hashes are the bundle's own and an old record stays valid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from runner.core.errors import VatError
from runner.leaderboard.bundle.files import BUNDLE_FORMAT, JUDGMENTS, LAYOUTS
from runner.leaderboard.bundle.read import load_manifest_json


class BundleMigration(NamedTuple):
    """One named step that reads a bundle of format ``version - 1`` as format ``version``."""

    name: str
    version: int
    manifest: Callable[[dict[str, Any]], dict[str, Any]]
    """The manifest at ``version - 1`` → the manifest at ``version`` (a new dict; the input is kept)."""
    renames: dict[str, str]
    """Files that moved: old relative path → new relative path (the others keep their place)."""


def _v1_to_v2_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Format 2 moved the judgments under ``data/`` and added a dataset card; format 1 had no card."""
    out = dict(manifest, bundle_format=2, card=None)
    if isinstance(manifest.get("judgments"), dict):
        out["judgments"] = dict(manifest["judgments"], file=JUDGMENTS)
    return out


BUNDLE_MIGRATIONS = (
    BundleMigration(
        "v1_to_v2_hf_layout", 2, _v1_to_v2_manifest, {LAYOUTS[1]["judgments"]: LAYOUTS[2]["judgments"]}
    ),
)
"""Every bundle migration, in order; the last one's ``version`` is :data:`BUNDLE_FORMAT`."""


def pending(version: int) -> list[BundleMigration]:
    """The migrations a bundle of format ``version`` needs, in order (none for the current format)."""
    return [m for m in BUNDLE_MIGRATIONS if m.version > version]


def migrate_manifest(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``manifest`` at the current format, and the names of the migrations that brought it there."""
    steps = pending(int(manifest["bundle_format"]))
    for step in steps:
        manifest = step.manifest(manifest)
    return manifest, [s.name for s in steps]


def manifest_format(folder: Path) -> int | None:
    """The ``bundle_format`` the manifest in ``folder`` states; None when there is none to read.

    Read leniently: a manifest that cannot be read says why later, in ``read_manifest``.
    """
    try:
        manifest = load_manifest_json(folder)
    except VatError:
        return None
    fmt = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None


@contextmanager
def current_layout(folder: Path) -> Iterator[Path]:
    """Yield ``folder`` with its files where the current format keeps them.

    A bundle of the current format (or of no known one) is yielded as it is. An older one gets a
    temporary folder of links to its files, each at the place the pending migrations give it.
    """
    fmt = manifest_format(folder)
    steps = pending(fmt) if fmt is not None and 1 <= fmt < BUNDLE_FORMAT else []
    if fmt is None or not steps:
        yield folder
        return
    work = Path(tempfile.mkdtemp(prefix="vat-bundle-v"))
    try:
        for rel in LAYOUTS[fmt].values():
            if not (folder / rel).exists():
                continue
            new = rel
            for step in steps:
                new = step.renames.get(new, new)
            (work / new).parent.mkdir(parents=True, exist_ok=True)
            _link(folder / rel, work / new)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _link(src: Path, dst: Path) -> None:
    """``dst`` reads ``src``'s bytes: a symbolic link, or a copy where links cannot be made."""
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)
