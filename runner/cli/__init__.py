"""The command line: the only code that parses argv.

``app`` holds the parser and the verbs table; ``verbs``, ``leaderboard`` and ``listing`` do each verb.

``main`` is imported lazily so that ``runner.cli:main`` (the ``vat`` script) costs nothing before the
parser runs.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vat`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from runner.cli.app import main as _main

    return _main(argv)
