"""Reading a bundle as untrusted input: archives unpacked safely, sizes bounded, JSON depth measured first.

Formats and the manifest's checks live above, in runner.leaderboard.bundle.load.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

from runner.core.errors import VatError
from runner.leaderboard.bundle.files import (
    MANIFEST,
    MAX_ARCHIVE_MEMBERS,
    MAX_JSON_DEPTH,
    known_files,
    size_limit,
)


@contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """Yield a folder holding the bundle's files: ``path`` itself, or an archive unpacked into a temporary folder.

    From an archive only the files a bundle of a known format holds are taken, by base name, each to
    its fixed place: no links, devices or paths outside, and never more than its size limit.
    """
    if path.is_dir():
        check_folder(path)
        yield path
        return
    if not path.is_file():
        raise VatError(f"no bundle at {path}; give a bundle folder or a .tar.gz made by `vat bundle`", 2)
    places = {Path(rel).name: (rel, role) for rel, role in known_files().items()}
    tmp = Path(tempfile.mkdtemp(prefix="vat-verify-"))
    try:
        try:
            with tarfile.open(path, "r:*") as tar:
                for i, member in enumerate(tar):  # streamed: never the whole member list of a bomb
                    if i >= MAX_ARCHIVE_MEMBERS:
                        raise VatError(
                            f"{path} has over {MAX_ARCHIVE_MEMBERS} members; a bundle has three", 1
                        )
                    place = places.get(Path(member.name).name)
                    if place is None or not member.isfile():
                        continue
                    rel, role = place
                    limit = size_limit(role)
                    if member.size > limit:
                        raise VatError(
                            f"{path}: {member.name} is {member.size:,} bytes, over the {limit:,}-byte limit",
                            1,
                        )
                    src = tar.extractfile(member)
                    if src is not None:
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        _copy_capped(src, tmp / rel, limit, f"{path}: {member.name}")
        except (tarfile.TarError, EOFError, OSError, zlib_error) as exc:
            raise VatError(f"{path} is not a readable .tar.gz bundle ({exc})", 1) from None
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_capped(src: Any, dst: Path, limit: int, shown: str) -> None:
    """Copy at most ``limit`` bytes (a member's header can lie about its size; the stream cannot)."""
    written = 0
    with dst.open("wb") as out:
        while block := src.read(1 << 20):
            written += len(block)
            if written > limit:
                raise VatError(f"{shown} unpacks to over {limit:,} bytes; a bundle is far smaller", 1)
            out.write(block)


def check_folder(folder: Path) -> None:
    """Every bundle file present in ``folder`` is a regular file within its size limit (no links to devices)."""
    for rel, role in known_files().items():
        path = folder / rel
        if not path.exists():
            continue
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise VatError(f"{path} is not a regular file; a bundle holds plain files only", 1)
        limit = size_limit(role)
        if info.st_size > limit:
            raise VatError(f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit", 1)


def load_manifest_json(folder: Path) -> Any:
    """The parsed ``manifest.json`` of ``folder`` (any JSON value): bounded in size and depth before parsing."""
    path = folder / MANIFEST
    if not path.is_file():
        raise VatError(f"the bundle holds no {MANIFEST}; make it with `vat bundle`", 1)
    check_folder(folder)
    text = path.read_bytes().decode("utf-8", errors="replace")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise VatError(
            f"{MANIFEST} nests {depth}+ levels deep (a bundle's nests 5); rebuild it with `vat bundle`", 1
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise VatError(
            f"{MANIFEST} is not valid JSON ({str(exc)[:200]}); rebuild the bundle with `vat bundle`", 1
        ) from None


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
