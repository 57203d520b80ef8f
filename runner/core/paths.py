"""Where the shipped data lives: ``conf/``, ``spec/``, ``generation/prompts/``, ``leaderboard/`` (and its ``template/``).

The design keeps these folders at the top of the repository. A wheel carries them inside the package as
``runner/_data/<name>`` (pyproject.toml maps each folder there through ``package-dir``); a checkout or
an editable install has no ``_data`` and uses the repository's own folders. A user's own folder always
wins: an explicit ``spec_dir=``, ``VAT_SPEC_DIR``, ``VAT_CONF_DIR``, or a ``spec/`` folder in the current
directory.
"""

from __future__ import annotations

import os
import subprocess
from importlib import resources
from pathlib import Path

SHIPPED = {
    "conf": "conf",
    "spec": "spec",
    "generation_prompts": "generation/prompts",
    "leaderboard_template": "leaderboard/template",
    "leaderboard": "leaderboard",
}
"""Name under ``runner/_data/`` (in a wheel) → folder relative to the repository root (in a checkout)."""

DEFAULT_SPEC_DIR = "spec"
"""The ``spec_dir`` default: ``./spec`` when the current directory has one, else the shipped spec."""


def repo_root() -> Path:
    """The folder above ``runner/`` (this file is runner/core/paths.py): the repository in a checkout, ``site-packages`` in a wheel install."""
    return Path(__file__).resolve().parents[2]


def shipped(name: str) -> Path:
    """The shipped folder ``name`` (a key of :data:`SHIPPED`): inside the wheel, else in the checkout."""
    packaged = Path(str(resources.files("runner"))) / "_data" / name
    if packaged.is_dir():
        return packaged
    return repo_root() / SHIPPED[name]


def spec_dir(configured: str | Path) -> Path:
    """The spec folder to read for ``spec_dir=configured``.

    Any value other than the default is the user's and is used as given (relative to the current
    directory). The default ``spec`` means ``$VAT_SPEC_DIR`` when set, else ``./spec`` when that exists
    (a checkout, or a user's project with its own specs), else the shipped spec, so ``vat validate``
    works from any folder. (The test suite sets ``VAT_SPEC_DIR`` to a frozen scene set, so a new scene
    changes no test's counts.)
    """
    path = Path(configured)
    if str(configured) == DEFAULT_SPEC_DIR and os.environ.get("VAT_SPEC_DIR"):
        return Path(os.environ["VAT_SPEC_DIR"])
    if str(configured) != DEFAULT_SPEC_DIR or path.is_dir():
        return path
    return shipped("spec")


def git_revision() -> str | None:
    """The commit of the repository this package was loaded from, or None outside a git checkout.

    Asked in the package's own folder, not the current directory: a run started from some other
    repository must not record that repository's commit.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    # A wheel installed into a venv that sits inside some checkout would otherwise report that checkout.
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != repo_root():
        return None
    return lines[1]


def inside_installed_package(path: Path) -> bool:
    """Whether ``path`` is shipped data inside an installed wheel (``runner/_data``): never to be written."""
    packaged = Path(str(resources.files("runner"))) / "_data"
    return packaged.is_dir() and path.resolve().is_relative_to(packaged.resolve())


def conf_dir() -> Path:
    """The shipped ``conf/`` folder, unless VAT_CONF_DIR points to the user's own."""
    return Path(os.environ.get("VAT_CONF_DIR") or shipped("conf"))


def leaderboard_dir() -> Path:
    """The leaderboard folder (entries, releases, submissions), unless VAT_LEADERBOARD_DIR points elsewhere.

    The checkout's ``leaderboard/``; in a wheel install the shipped copy of its entries and releases
    (read-only: a release is frozen, or an entry added, in a checkout or a folder VAT_LEADERBOARD_DIR names).
    """
    env = os.environ.get("VAT_LEADERBOARD_DIR")
    return Path(env) if env else shipped("leaderboard")


def cache_dir() -> Path | None:
    """Where VAT Bench keeps derived files it can rebuild (parsed specs); None when caching is off.

    ``VAT_CACHE_DIR`` names the folder, and set to the empty string turns the cache off; otherwise
    ``$XDG_CACHE_HOME/vat-bench`` or ``~/.cache/vat-bench``. Nothing in it is ever the only copy.
    """
    env = os.environ.get("VAT_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vat-bench"


def template_dir() -> Path:
    """The site template (HTML, CSS, JS sources); always the shipped one, whatever VAT_LEADERBOARD_DIR says."""
    return shipped("leaderboard_template")
