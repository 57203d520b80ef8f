"""Safe YAML reading that remembers where every field came from.

Spec files are contributed by strangers, so reading them must never run code, never blow up memory and
never crash: only YAML's safe subset is accepted; anchors and aliases are refused (they are the vehicle
of "billion laughs" bombs and no spec needs them), and so are ``<<:`` merge keys (built on aliases),
duplicate keys (YAML keeps the last silently, so a reviewer reads one value and the runner uses
another) and numbers over 30 digits (Python refuses to convert 4,300+ digits, and no spec field needs
more than a few). Only regular files are read, and never more than the size cap, so a symlink to
``/dev/zero`` (whose ``st_size`` is 0) is refused instead of filling memory. Every failure becomes a
:class:`~runner.core.errors.Problem` with a line number.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.core.errors import Problem
from runner.core.paths import cache_dir

MAX_BYTES = 1_000_000  # the largest shipped scene is ~6 kB; a megabyte is a mistake or an attack
MAX_NUMBER_CHARS = 30
"""Longest numeric scalar accepted (a version or a count has a few digits; 4,300+ would crash ``int``)."""
_NUMERIC_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

PathKey = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML document with the line (1-based) of every mapping key and sequence item."""

    path: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, loc: PathKey) -> int:
        """Return the line of ``loc``, or of its nearest ancestor that has one (1 for the document)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: PathKey, message: str) -> Problem:
        """A :class:`Problem` at ``loc``: its line, and its dotted field name (``actions.3.value``)."""
        return Problem(self.path, self.line_of(loc), ".".join(str(part) for part in loc), message)


# libyaml's parser when present (10× faster); the pure-Python one otherwise. Both are the *safe* loader.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Refused(Exception):
    """A construct specs do not allow, found at ``line`` (1-based); ``message`` says what and the fix."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line = line
        self.message = message


_ALIAS_MESSAGE = "YAML anchors and aliases (&name, *name) are not allowed in specs; write the value out"


def _refuse_anchors(text: str) -> None:
    """Refuse any anchor or alias, scalar ones included, before the document is composed.

    Composition resolves aliases, after which a scalar alias cannot be told from a copy, so this looks
    at the parser's events. Only texts holding '&' or '*' are scanned (the cheap case is every spec).
    """
    if "&" not in text and "*" not in text:
        return
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise Refused(event.start_mark.line + 1, _ALIAS_MESSAGE)


def _collect_lines(node: yaml.Node, loc: PathKey, out: dict[PathKey, int], seen: set[int]) -> None:
    """Walk the composed node tree, record the line of each key/item; refuse aliases, merges, duplicates.

    An alias composes to the very node object it refers to, so a collection met twice is an alias.
    """
    line = node.start_mark.line + 1
    if id(node) in seen and not isinstance(node, yaml.ScalarNode):
        raise Refused(line, _ALIAS_MESSAGE)
    seen.add(id(node))
    out.setdefault(loc, line)
    if isinstance(node, yaml.ScalarNode):
        if node.tag in _NUMERIC_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise Refused(
                line,
                f"a number of {len(node.value):,} characters; numbers in specs have at most {MAX_NUMBER_CHARS}",
            )
    elif isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise Refused(key_line, "YAML merge keys (<<:) are not allowed in specs; write the keys out")
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in keys:
                    raise Refused(
                        key_line,
                        f"duplicate key {key_node.value!r} (also on line {keys[key_node.value]}); keep one",
                    )
                keys[key_node.value] = key_line
                child = (*loc, key_node.value)
                out[child] = key_line
                _collect_lines(value_node, child, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, (*loc, i), out, seen)


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse ``text`` safely; raise :class:`YamlProblem` with a line number on any failure."""
    loader = _Loader(text)
    try:
        lines: dict[PathKey, int] = {}
        try:
            _refuse_anchors(text)
            node = loader.get_single_node()
            if node is None:
                raise YamlProblem(Problem(path, 1, "", "the file is empty; write a YAML mapping"))
            _collect_lines(node, (), lines, set())
        except Refused as exc:
            raise YamlProblem(Problem(path, exc.line, "", exc.message)) from None
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        msg = (exc.problem or str(exc)).strip()
        if "could not determine a constructor" in msg:
            msg = f"{msg}; only plain YAML is allowed (no !!python or custom tags)"
        raise YamlProblem(Problem(path, line, "", f"YAML error: {msg}")) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(path, 1, "", f"YAML error: {exc}")) from None
    finally:
        loader.dispose()
    return YamlDoc(path=path, data=data, lines=lines)


def read_yaml(file: Path, display_path: str | None = None) -> YamlDoc:
    """Read and parse a YAML file with the size cap and strict UTF-8 decoding."""
    shown = display_path or str(file)
    return parse_yaml_bytes(read_capped(file, shown, MAX_BYTES), shown)


def parse_yaml_bytes(raw: bytes, shown: str) -> YamlDoc:
    """Decode ``raw`` as strict UTF-8 (a bad byte is a problem at its line), then :func:`parse_yaml` it.

    A file that parsed before, byte for byte, is read back from the on-disk parse cache instead.
    """
    entry = _cache_entry(raw)
    if entry is not None:
        cached = _cache_read(entry)
        if cached is not None:
            return YamlDoc(path=shown, data=cached[0], lines=cached[1])
    doc = _parse_bytes(raw, shown)
    if entry is not None:
        _cache_write(entry, doc)
    return doc


def _parse_bytes(raw: bytes, shown: str) -> YamlDoc:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            Problem(shown, line, "", f"byte {exc.start} is not valid UTF-8; save the file as UTF-8")
        ) from None
    return parse_yaml(text, shown)


def read_capped(file: Path, shown: str, limit: int) -> bytes:
    """The bytes of ``file`` if it is a regular file of at most ``limit`` bytes; else a YamlProblem.

    ``st_size`` alone is not enough: a symlink to ``/dev/zero`` or a FIFO reports 0 bytes and never
    ends, so the type is checked on the opened descriptor and at most ``limit + 1`` bytes are read.
    """
    too_big = f"over the {limit:,}-byte limit; split it up"
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise YamlProblem(Problem(shown, 1, "", f"cannot be read ({exc.strerror})")) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlProblem(
                Problem(
                    shown,
                    1,
                    "",
                    "is not a regular file (a device, FIFO or link to one); replace it by a file",
                )
            )
        if info.st_size > limit:
            raise YamlProblem(Problem(shown, 1, "", f"file is {info.st_size:,} bytes, {too_big}"))
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise YamlProblem(
            Problem(shown, 1, "", f"file grew past {limit:,} bytes while being read; {too_big}")
        )
    return raw


class YamlProblem(Exception):
    """A file that could not be read as YAML; carries the :class:`Problem` to report."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


# ---------------------------------------------------------------- the parse cache
#
# `vat validate` parses ~700 spec files (the live spec and each release's frozen copy); composing them
# with line numbers is most of its time. Results are kept on disk by the SHA-256 of the file's bytes,
# in a folder named after this module's own source and the Python and PyYAML versions, so a change to
# the parser (or a new interpreter) starts a fresh folder. Only successful parses are kept: a refused
# file is refused again, with its line. The format is `marshal` (plain data only: loading it runs no
# code, unlike pickle); a document holding a type marshal lacks (a YAML timestamp) is not cached.

_CACHE_FORMAT = 1


def _fingerprint() -> str:
    """A short hash of what decides a parse's result: this file's source, Python's and PyYAML's versions."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        h = hashlib.sha256(Path(__file__).read_bytes())
        h.update(f"{_CACHE_FORMAT}|{sys.version}|{yaml.__version__}|{_Loader.__name__}".encode())
        _FINGERPRINT = h.hexdigest()[:16]
    return _FINGERPRINT


_FINGERPRINT: str | None = None


def _cache_entry(raw: bytes) -> Path | None:
    """The cache file for ``raw``'s parse, or None when caching is off."""
    root = cache_dir()
    if root is None:
        return None
    return root / "yaml" / _fingerprint() / f"{hashlib.sha256(raw).hexdigest()}.marshal"


def _cache_read(entry: Path) -> tuple[Any, dict[PathKey, int]] | None:
    """The cached (data, lines) of ``entry``; None when absent or unreadable (then it is parsed again)."""
    try:
        data, lines = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return (data, lines) if isinstance(lines, dict) else None


def _cache_write(entry: Path, doc: YamlDoc) -> None:
    """Keep ``doc``'s parse; any failure (a read-only home, an unmarshalable value) only skips the cache."""
    try:
        blob = marshal.dumps((doc.data, doc.lines))
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, entry)  # atomic: a reader sees the whole entry or none
    except (OSError, ValueError):
        return
