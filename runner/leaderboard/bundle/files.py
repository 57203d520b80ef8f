"""What a bundle holds: its format, its file names, and the limits on a bundle as untrusted input."""

from __future__ import annotations

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
JUDGMENTS = "judgments.parquet"
SIDECAR = "verification.json"
MAX_MEMBER_BYTES = 500_000_000
"""Largest judgments file accepted, in a folder or unpacked from an archive (a full release of every
strategy and target is ~100 MB of Parquet; this stops a decompression bomb)."""
MAX_MANIFEST_BYTES = 50_000_000
"""Largest manifest.json (a full release's request keys are ~5 MB)."""
MAX_ARCHIVE_MEMBERS = 16
"""Members read from an archive: a bundle has two; thousands of tiny members are an attack."""
MAX_JSON_DEPTH = 12
"""Deepest nesting accepted in manifest.json (a real one nests 5 levels; deep JSON exhausted the stack)."""
MAX_ROWS_FACTOR = 2
"""A judgments file may hold at most this many times the release's rows (repeats would fail anyway)."""
