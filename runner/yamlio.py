"""Safe YAML reading that remembers where every field came from.

Spec files are contributed by strangers, so reading them must never run code, never blow up memory and
never crash: only YAML's safe subset is accepted, anchors and aliases are refused (they are the vehicle
of "billion laughs" bombs and no spec needs them), files are size-capped, and every failure becomes a
:class:`~runner.errors.Problem` with a line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import Problem

MAX_BYTES = 1_000_000  # the largest shipped scene is ~6 kB; a megabyte is a mistake or an attack

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


# libyaml's parser when present (10× faster); the pure-Python one otherwise. Both are the *safe* loader.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AliasRefused(Exception):
    """An anchor/alias was found: refused, since aliases are how YAML bombs multiply."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _collect_lines(node: yaml.Node, loc: PathKey, out: dict[PathKey, int], seen: set[int]) -> None:
    """Walk the composed node tree, record the line of each key/item, and refuse aliases.

    An alias composes to the very node object it refers to, so a node met twice is an alias.
    """
    if id(node) in seen and not isinstance(node, yaml.ScalarNode) or getattr(node, "anchor", None):
        raise AliasRefused(node.start_mark.line + 1)
    seen.add(id(node))
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*loc, key_node.value)
                out[child] = key_node.start_mark.line + 1
                _collect_lines(value_node, child, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, (*loc, i), out, seen)


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse ``text`` safely; raise :class:`YamlProblem` with a line number on any failure."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlProblem(Problem(path, 1, "", "the file is empty; write a YAML mapping"))
        lines: dict[PathKey, int] = {}
        try:
            _collect_lines(node, (), lines, set())
        except AliasRefused as exc:
            raise YamlProblem(
                Problem(
                    path,
                    exc.line,
                    "",
                    "YAML anchors and aliases (&name, *name) are not allowed in specs; write the value out",
                )
            ) from None
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
    size = file.stat().st_size
    if size > MAX_BYTES:
        raise YamlProblem(
            Problem(shown, 1, "", f"file is {size:,} bytes, over the {MAX_BYTES:,}-byte limit; split it up")
        )
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            Problem(shown, line, "", f"byte {exc.start} is not valid UTF-8; save the file as UTF-8")
        ) from None
    return parse_yaml(text, shown)


class YamlProblem(Exception):
    """A file that could not be read as YAML; carries the :class:`Problem` to report."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem
