"""Hugging Face dataset folders: the card's front matter, the citation, and what the Hub accepts.

Shared by the two folders VAT Bench writes for the Hub, the scene set (``vat export``,
runner.dataset.hf_export) and a submission bundle (``vat bundle``, runner.leaderboard.bundle), so both
carry the same tag, citation and card shape. Nothing here imports ``datasets`` or ``huggingface_hub``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

CARD = "README.md"
"""The dataset card: YAML metadata between ``---`` lines, then prose (what the Hub shows)."""
CARD_TAG = "vat-bench"
"""The tag every VAT Bench folder's card carries."""
BUNDLE_TAG = "vat-bench-bundle"
"""The tag that marks a folder as a submission bundle (judgments), not the scene set."""
MAX_HUB_FILE_BYTES = 50_000_000_000
"""The Hub's hard limit on one file (huggingface.co/docs/hub/storage-limits)."""

CITATION = """@inproceedings{chen2026vat,
  title         = {Value Alignment Tax: Measuring Value Trade-offs in {LLM} Alignment},
  author        = {Chen and Shen},
  booktitle     = {Findings of the Association for Computational Linguistics: ACL 2026},
  year          = {2026},
  eprint        = {2602.12134},
  archivePrefix = {arXiv}
}"""


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of a dataset of ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M"


def render_card(meta: dict[str, Any], body: str) -> str:
    """A card's text: ``meta`` as YAML front matter (key order kept), then ``body`` (Markdown)."""
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{body.lstrip()}"


def card_metadata(readme: Path) -> dict[str, Any] | None:
    """The YAML front matter of a card as a dict, or None when the file has none (or it is not YAML)."""
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return None
    return meta if isinstance(meta, dict) else None


_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def push_problems(folder: Path) -> list[str]:
    """Why ``hf upload <repo> <folder> --repo-type dataset`` would not publish ``folder`` as it is; [] when it would.

    What can be checked without the network: plain files only (an upload follows no link and skips
    dot-folders such as ``.git``), names of letters, digits, ``.``, ``_`` and ``-``, each file under the
    Hub's size limit, and a card whose ``configs`` name data files that exist.
    """
    out: list[str] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            out.append(f"{rel} is not a plain file or folder")
        elif any(part.startswith(".") or not _SAFE_NAME.match(part) for part in rel.parts):
            out.append(f"{rel}: use letters, digits, '.', '_' and '-' only, not starting with '.'")
        elif path.is_file() and path.stat().st_size > MAX_HUB_FILE_BYTES:
            out.append(f"{rel} is over the Hub's {MAX_HUB_FILE_BYTES:,}-byte limit per file")
    meta = card_metadata(folder / CARD)
    if meta is None:
        return [*out, f"{CARD} is missing or has no YAML metadata"]
    for config in meta.get("configs") or [{}]:
        files = config.get("data_files") or []
        patterns = [f["path"] if isinstance(f, dict) else f for f in files]
        if not patterns:
            out.append(f"{CARD}: configs names no data_files")
        out += [f"{CARD}: data_files {p} matches no file" for p in patterns if not list(folder.glob(p))]
    return out
