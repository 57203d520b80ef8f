"""Reading a bundle as untrusted input: archives unpacked safely, sizes and JSON depth bounded, the manifest checked."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

from runner.core.errors import VatError
from runner.leaderboard.bundle.files import (
    BUNDLE_FORMAT,
    JUDGMENTS,
    MANIFEST,
    MAX_ARCHIVE_MEMBERS,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_BYTES,
)


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
_JSON_NAMES: dict[type, str] = {str: "string", dict: "object", list: "list"}


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
