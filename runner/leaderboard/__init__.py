"""The leaderboard: model entries, releases, verifiable submission bundles and the static site.

- :mod:`runner.spec.entries`: ``leaderboard/entries/<org>__<model>.yaml`` and
  ``leaderboard/releases/<release>.yaml`` (pydantic models, validation, Hydra ``model`` options).
- :mod:`runner.leaderboard.bundle`: ``vat bundle`` packs a submission, ``vat verify`` recomputes and
  checks it (and replays a sample against the provider).
- :mod:`runner.leaderboard.site`: ``vat leaderboard build`` writes the static site (``site_rows``
  gathers the rows, ``site_board`` ranks entries, ``site_data`` writes the data and downloads,
  ``site_charts`` the SVGs, ``site_pages`` the HTML; ``site`` re-exports their public names).
- :mod:`runner.cli.leaderboard`: the verbs behind the CLI.

Importing this package is cheap (no DuckDB, no LiteLLM): ``vat validate`` checks entries and releases.
"""

from runner.core.paths import leaderboard_dir, template_dir

__all__ = ["leaderboard_dir", "template_dir"]
