"""All terminal output goes through here (rich).

People read stderr; programs read stdout. With ``format=json`` stdout carries exactly one JSON document
and everything else (progress, notes, warnings) goes to stderr — the same for every verb.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console

# Piped output has no terminal width; rich would wrap tables at 80 columns, which folds every cell.
_WIDTH = None if sys.stdout.isatty() else 160
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
"""Progress, notes, warnings and errors."""

out = Console(highlight=False, width=_WIDTH)
"""Tables and results (stdout)."""


def note(message: str) -> None:
    """A short informational line on stderr."""
    err.print(f"[dim]›[/dim] {message}")  # notes are ours and may carry markup; user text must be escaped


def warn(message: str) -> None:
    """A warning on stderr."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    """A one-line error on stderr (no traceback)."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout (the only thing on stdout with format=json)."""
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def escape(text: str) -> str:
    """Escape rich markup in user-supplied text before printing it."""
    from rich.markup import escape as _escape

    return _escape(text)


def estimate_cells(row: Mapping[str, Any]) -> list[str]:
    """The to-send, prompt-token and cost cells of a plan row (``vat plan`` tables and release plans)."""
    return [f"{row['to_send']:,}", f"{row['est_prompt_tokens']:,}", f"{row['est_cost_usd']:.4f}"]
