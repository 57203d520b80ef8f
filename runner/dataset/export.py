"""The scene set as a Hugging Face ``datasets.Dataset`` (one row per action) and back, losslessly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.spec.load import SpecIndex
from runner.spec.models import Scene

COLUMNS = (
    "scene_id",
    "scene_version",
    "country",
    "topic",
    "split",
    "scene_text",
    "action_id",
    "value",
    "micro_value",
    "polarity",
    "action_text",
    "generated",
)


def action_rows(index: SpecIndex) -> list[dict[str, Any]]:
    """One dict per action, carrying its scene's fields (scene order, then action order)."""
    rows = []
    for scene in index.scenes.values():
        generated = json.dumps(scene.generated, sort_keys=True) if scene.generated else None
        for action in scene.actions:
            rows.append(
                {
                    "scene_id": scene.id,
                    "scene_version": scene.version,
                    "country": scene.country,
                    "topic": scene.topic,
                    "split": scene.split.value,
                    "scene_text": scene.text,
                    "action_id": action.id,
                    "value": action.value,
                    "micro_value": action.micro_value,
                    "polarity": action.polarity.value,
                    "action_text": action.text,
                    "generated": generated,
                }
            )
    return rows


def to_dataset(index: SpecIndex) -> Any:
    """The scene set as a ``datasets.Dataset`` (built offline from a list)."""
    from datasets import Dataset, Features, Value

    features = Features({c: Value("int32") if c == "scene_version" else Value("string") for c in COLUMNS})
    return Dataset.from_list(action_rows(index), features=features)


def scenes_from_rows(rows: list[dict[str, Any]]) -> list[Scene]:
    """Rebuild Scene documents from action rows (the inverse of :func:`action_rows`)."""
    grouped: dict[str, dict[str, Any]] = {}
    for r in rows:
        doc = grouped.setdefault(
            r["scene_id"],
            {
                "id": r["scene_id"],
                "version": r["scene_version"],
                "country": r["country"],
                "topic": r["topic"],
                "split": r["split"],
                "text": r["scene_text"],
                "actions": [],
                **({"generated": json.loads(r["generated"])} if r.get("generated") else {}),
            },
        )
        action = {
            "id": r["action_id"],
            "value": r["value"],
            "polarity": r["polarity"],
            "text": r["action_text"],
        }
        if r.get("micro_value"):
            action["micro_value"] = r["micro_value"]
        doc["actions"].append(action)
    return [Scene.model_validate(d) for d in grouped.values()]


def from_dataset(ds: Any) -> list[Scene]:
    """Scenes from a ``datasets.Dataset`` produced by :func:`to_dataset`."""
    return scenes_from_rows(ds.to_list())


def write(ds: Any, output: str | Path) -> Path:
    """Write the dataset to ``.parquet`` or ``.jsonl`` (chosen by the suffix)."""
    from runner.core.errors import VatError

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        ds.to_parquet(str(path))
    elif path.suffix in (".jsonl", ".json"):
        ds.to_json(str(path), lines=True, force_ascii=False)
    else:
        raise VatError(
            f"cannot export to {path.name!r}: use a folder name (a Hub dataset folder) or a .parquet or .jsonl file name",
            2,
        )
    return path
