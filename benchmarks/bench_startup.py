"""Start-up: ``vat --help`` and ``vat validate`` wall time (median of 5 fresh processes). Target < 1.5 s."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VAT, median, show, timed_rss  # noqa: E402


def run(repeats: int = 5) -> dict[str, Any]:
    """Median wall seconds of each command, and whether LiteLLM stayed unimported."""
    out: dict[str, Any] = {}
    for name, args in (("help", ["--help"]), ("validate", ["validate"])):
        walls = [timed_rss([*VAT, *args])["wall_s"] for _ in range(repeats)]
        out[name] = median(walls)
        show(f"startup.vat_{name} (target < 1.5 s)", out[name], "s")
    probe = "import sys, runner.cli.app as c\ntry:\n c.main(['validate'])\nexcept SystemExit: pass\nprint('litellm' in sys.modules)"
    out["litellm_imported_by_validate"] = (
        timed_rss([sys.executable, "-c", probe])["stdout"].strip().endswith("True")
    )
    show("startup.validate_imports_litellm", out["litellm_imported_by_validate"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    run(ap.parse_args().repeats)
