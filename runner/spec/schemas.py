"""JSON Schemas of the spec documents, generated from the pydantic models and committed to spec/schema/.

Editors use them to autocomplete and check the YAML (see .vscode/settings.json); a test fails when the
committed files drift from the models. Regenerate with ``python -m runner.spec.schemas``.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.spec.models import KINDS

SCHEMA_DIR = Path("spec/schema")


def schemas() -> dict[str, str]:
    """File name → JSON text of each document kind's schema (deterministic)."""
    out = {}
    for kind, model in KINDS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"vat-bench/{kind}.schema.json"
        out[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in schemas().items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_schemas():
        print(p)
