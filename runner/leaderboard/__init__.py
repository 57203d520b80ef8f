"""The leaderboard: model entries, releases, verifiable submission bundles and the static site.

- :mod:`runner.spec.entries`: ``leaderboard/entries/<org>__<model>.yaml`` and
  ``leaderboard/releases/<release>.yaml`` (pydantic models, validation, Hydra ``model`` options).
- :mod:`runner.leaderboard.bundle`: ``vat bundle`` packs a submission, ``vat verify`` recomputes and
  checks it (and replays a sample against the provider).
- :mod:`runner.leaderboard.site`: ``vat leaderboard build`` writes the static site.
- :mod:`runner.cli.leaderboard`: the verbs behind the CLI.

Importing this package is cheap (no DuckDB, no LiteLLM): ``vat validate`` checks entries and releases.
"""

from __future__ import annotations

import os
from pathlib import Path


def leaderboard_dir() -> Path:
    """The project's ``leaderboard/`` folder (next to ``runner/``), unless VAT_LEADERBOARD_DIR points elsewhere."""
    env = os.environ.get("VAT_LEADERBOARD_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "leaderboard"


def template_dir() -> Path:
    """The site template (HTML, CSS, JS sources); always the shipped one, whatever VAT_LEADERBOARD_DIR says."""
    from runner.core.paths import shipped

    return shipped("leaderboard_template")
