"""``vat list values|strategies|prompts|releases|entries``: what the benchmark ships, as a table or JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.core import display
from runner.core.errors import Problem, VatError

KINDS = ("values", "strategies", "prompts", "releases", "entries")
"""What `vat list` lists: spec documents (values, strategies, prompts) and leaderboard files."""


def _values(spec_dir: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    index = _index(spec_dir)
    rows = [
        {
            "id": v.id,
            "name": v.name,
            "circle_index": v.circle_index,
            "opposite": v.opposite,
            "groups": list(v.groups),
            "micro_values": [m.id for m in v.micro_values],
        }
        for v in index.values
    ]
    return rows, []


def _strategies(spec_dir: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    index = _index(spec_dir)
    rows = [
        {
            "id": s.id,
            "version": s.version,
            "kind": s.kind.value,
            "params": dict(s.params),
            "description": s.description,
        }
        for s in sorted(index.strategies.values(), key=lambda s: s.id)
    ]
    return rows, []


def _prompts(spec_dir: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    index = _index(spec_dir)
    rows = [
        {"id": p.id, "version": p.version, "description": p.description}
        for p in sorted(index.prompts.values(), key=lambda p: p.id)
    ]
    return rows, []


Rows = tuple[list[dict[str, Any]], list[Problem]]


def _by_id(loaded: tuple[dict[str, Any], list[Problem]], row: Callable[[Any], dict[str, Any]]) -> Rows:
    """Rows of leaderboard documents in id order, with the problems of the files that did not load."""
    docs, problems = loaded
    return [row(d) for d in sorted(docs.values(), key=lambda d: d.id)], problems


def _releases(_spec_dir: str) -> Rows:
    from runner.spec.entries import load_releases

    return _by_id(
        load_releases(),
        lambda r: {
            "id": r.id,
            "title": r.title,
            "status": r.status,
            "scenes": len(r.scenes),
            "strategies": [str(s) for s in r.strategies],
            "targets": len(r.targets),
        },
    )


def _entries(_spec_dir: str) -> Rows:
    from runner.spec.entries import load_entries

    return _by_id(
        load_entries(),
        lambda e: {
            "id": e.id,
            "model": e.model,
            "display_name": e.display_name,
            "provider": e.provider,
            "licence": e.licence,
        },
    )


_LISTERS: dict[str, Callable[[str], Rows]] = {
    "values": _values,
    "strategies": _strategies,
    "prompts": _prompts,
    "releases": _releases,
    "entries": _entries,
}


def _index(spec_dir: str) -> Any:
    from runner.spec.load import load_index

    return load_index(spec_dir, check_lock=False)


def list_items(kind: str, spec_dir: str = "spec") -> tuple[list[dict[str, Any]], list[Problem]]:
    """The rows `vat list kind` shows, and the problems of files that could not be read."""
    if kind not in _LISTERS:
        raise VatError(f"`vat list {kind}` lists nothing; choose one of {', '.join(KINDS)}", 2)
    return _LISTERS[kind](spec_dir)


def list_verb(kind: str, spec_dir: str = "spec", fmt: str = "table") -> int:
    """``vat list``: print the rows (a table, or JSON with format=json); exit 1 if a file was unreadable."""
    rows, problems = list_items(kind, spec_dir)
    if fmt == "json":
        display.emit_json({"kind": kind, "items": rows, "problems": [str(p) for p in problems]})
    else:
        _print(kind, rows)
        for p in problems:
            display.error(str(p))
    return 1 if problems else 0


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if len(value) <= 4 else f"{len(value)} ({value[0]}, …)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _print(kind: str, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not rows:
        display.warn(f"no {kind} found")
        return
    table = Table(title=f"{kind} ({len(rows)})", title_justify="left")
    for key in rows[0]:
        table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(*(display.escape(_cell(v)) for v in row.values()))
    display.out.print(table)
