"""Committed JSON Schemas match the pydantic models (regenerate with `python -m runner.spec.schemas`)."""

from __future__ import annotations

from pathlib import Path

from runner.spec.schemas import SCHEMA_DIR, schemas


def test_committed_schemas_match_the_models():
    for name, text in schemas().items():
        path = Path(SCHEMA_DIR) / name
        assert path.exists(), f"{path} missing: run `python -m runner.spec.schemas`"
        assert path.read_text() == text, (
            f"{path} drifted from runner/spec/models.py: run `python -m runner.spec.schemas`"
        )
