"""What a bundle holds: its format, its file names, and the limits on a bundle as untrusted input.

Format 2 (written since 0.1.x) is a Hugging Face dataset folder, so ``datasets.load_dataset(<bundle>)``
reads the judgments and ``hf upload <repo> <bundle> --repo-type dataset`` publishes it unchanged::

    <bundle>/README.md                                 dataset card (YAML metadata, prose, citation)
    <bundle>/manifest.json                             what verification checks the judgments against
    <bundle>/data/judgments-00000-of-00001.parquet     the judgments, one row per (run, condition, key)
    <bundle>/verification.json                         the maintainer's signed replay record, if any

Format 1 had ``manifest.json`` and ``judgments.parquet`` side by side; runner.leaderboard.bundle.migrate
reads it (:data:`LAYOUTS`).
"""

from __future__ import annotations

from runner.core.hub import CARD

BUNDLE_FORMAT = 2
"""The format ``vat bundle`` writes; older ones are read through named migrations."""
MANIFEST = "manifest.json"
JUDGMENTS = "data/judgments-00000-of-00001.parquet"
"""The judgments file, relative to the bundle folder (the Hub's ``data/<split>-NNNNN-of-NNNNN`` name)."""
SPLIT = "judgments"
"""The one split of the dataset card's config."""
SIDECAR = "verification.json"
LAYOUTS: dict[int, dict[str, str]] = {
    1: {"manifest": MANIFEST, "judgments": "judgments.parquet"},
    2: {"manifest": MANIFEST, "judgments": JUDGMENTS, "card": CARD},
}
"""Each format's files by role, relative to the bundle folder."""
MAX_MEMBER_BYTES = 500_000_000
"""Largest judgments file accepted, in a folder or unpacked from an archive (a full release of every
strategy and target is ~100 MB of Parquet; this stops a decompression bomb)."""
MAX_MANIFEST_BYTES = 50_000_000
"""Largest manifest.json (a full release's request keys are ~5 MB)."""
MAX_CARD_BYTES = 1_000_000
"""Largest dataset card (a bundle's is ~5 KB)."""
MAX_ARCHIVE_MEMBERS = 16
"""Members read from an archive: a bundle has three; thousands of tiny members are an attack."""
MAX_JSON_DEPTH = 12
"""Deepest nesting accepted in manifest.json (a real one nests 5 levels; deep JSON exhausted the stack)."""
MAX_ROWS_FACTOR = 2
"""A judgments file may hold at most this many times the release's rows (repeats would fail anyway)."""


def known_files() -> dict[str, str]:
    """Every file a bundle of any known format may hold: relative path → role."""
    return {rel: role for layout in LAYOUTS.values() for role, rel in layout.items()}


def size_limit(role: str) -> int:
    """The largest file accepted in ``role`` (manifest, card or judgments)."""
    return {"manifest": MAX_MANIFEST_BYTES, "card": MAX_CARD_BYTES}.get(role, MAX_MEMBER_BYTES)
