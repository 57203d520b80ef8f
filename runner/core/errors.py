"""User-facing errors: one clear sentence naming the file, field and fix — never a bare traceback."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class VatError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line.

    ``exit_code`` follows the convention: 1 for invalid input or a failed check, 2 for usage errors
    (unknown verb, bad override), 3 for a run that ended with unresolved provider errors.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``kill``, a container stop), raised where Ctrl-C would be.

    A subclass of KeyboardInterrupt, so every path that keeps a run's answers on Ctrl-C keeps them on
    SIGTERM too; the run then exits 143 (128 + 15) instead of 130.
    """


_TERM_RECEIVED: list[bool] = []  # set by the CLI's SIGTERM handler (a list: no `global` needed)


def note_sigterm() -> None:
    """Remember that this process got SIGTERM, for a stop that surfaces as a plain KeyboardInterrupt.

    asyncio's own Ctrl-C handler cancels the running task gracefully and raises KeyboardInterrupt at
    the end; the CLI hands SIGTERM to it, so the interrupt itself does not say which signal it was.
    """
    _TERM_RECEIVED.append(True)


def stop_reason(exc: KeyboardInterrupt) -> str:
    """The ``stopped`` reason of a run ended by ``exc``: "terminated" (SIGTERM) or "interrupted" (Ctrl-C)."""
    return "terminated" if isinstance(exc, Terminated) or _TERM_RECEIVED else "interrupted"


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> bool:
    """Is ``exc`` a full disk or an exhausted quota? DuckDB reports it as its own IOException, in words."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


@contextlib.contextmanager
def disk_full_is_an_error(where: str | Path) -> Iterator[None]:
    """Turn a full disk while writing ``where`` into one clear :class:`VatError` instead of a traceback."""
    try:
        yield
    except Exception as exc:
        if not disk_full(exc):
            raise
        raise VatError(
            f"no space left on the disk holding {where} ({exc}): free some space or point store.path at "
            "another disk, then run the same command again; the answers received so far are kept",
            1,
        ) from exc


@dataclass(frozen=True, order=True)
class Problem:
    """One validation problem, printed as ``path:line: field: message``."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SpecInvalid(VatError):
    """Raised when the spec tree has problems; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        first = self.problems[0] if self.problems else "no details"
        more = f" (and {len(self.problems) - 1} more; run `vat validate`)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid spec: {first}{more}", exit_code=1)
