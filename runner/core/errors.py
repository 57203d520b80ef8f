"""User-facing errors: one clear sentence naming the file, field and fix — never a bare traceback."""

from __future__ import annotations

from dataclasses import dataclass


class VatError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line.

    ``exit_code`` follows the convention: 1 for invalid input or a failed check, 2 for usage errors
    (unknown verb, bad override), 3 for a run that ended with unresolved provider errors.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
