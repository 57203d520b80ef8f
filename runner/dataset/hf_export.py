"""The scene set as a Hugging Face dataset folder: ``vat export <folder>`` and ``vat import source=<folder>``.

The folder is what the Hub stores for a dataset repository, so ``datasets.load_dataset(<folder>)`` reads
it offline and ``huggingface-cli upload <repo> <folder> --repo-type dataset`` (or
``DatasetDict.push_to_hub``) publishes it unchanged::

    <folder>/README.md                              dataset card: YAML metadata, then prose
    <folder>/data/train-00000-of-00001.parquet      the spec's train scenes, one row per action
    <folder>/data/test-00000-of-00001.parquet       the spec's test scenes

The splits are the scenes' own (``split:`` in each scene file), so no scene is in both. ``country``,
``topic``, ``value``, ``polarity`` and ``split`` are ``ClassLabel`` features (their names from the spec);
the rest are strings, ``scene_version`` an int32. Reading back decodes the labels and rebuilds every
scene exactly (runner.export.scenes_from_rows).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.core.errors import VatError
from runner.core.hub import BUNDLE_TAG, CARD_TAG, CITATION, card_metadata, render_card, size_category
from runner.dataset.export import COLUMNS, action_rows, scenes_from_rows
from runner.spec.load import SpecIndex
from runner.spec.models import TOPICS, Polarity, Scene, Split

SPLITS = tuple(s.value for s in Split)


def label_names(index: SpecIndex) -> dict[str, list[str]]:
    """The categories of each ``ClassLabel`` column, from the spec (every scene's value among them)."""
    countries = sorted(set(index.countries) | {s.country for s in index.scenes.values()})
    return {
        "country": countries,
        "topic": list(TOPICS),
        "value": list(index.value_ids),
        "polarity": [p.value for p in Polarity],
        "split": list(SPLITS),
    }


def features(index: SpecIndex) -> Any:
    """The typed ``datasets.Features`` of the folder's splits."""
    from datasets import ClassLabel, Features, Value

    names = label_names(index)
    return Features(
        {
            c: ClassLabel(names=names[c])
            if c in names
            else Value("int32")
            if c == "scene_version"
            else Value("string")
            for c in COLUMNS
        }
    )


def to_dataset_dict(index: SpecIndex) -> Any:
    """The scene set as a ``datasets.DatasetDict`` with ``train`` and ``test`` splits."""
    from datasets import Dataset, DatasetDict

    feats = features(index)
    rows = action_rows(index)
    return DatasetDict(
        {
            split: Dataset.from_list([r for r in rows if r["split"] == split], features=feats)
            for split in SPLITS
        }
    )


def card(index: SpecIndex, dd: Any) -> str:
    """The dataset card: Hub YAML metadata (licence, task, configs, features, splits), prose, citation."""
    counts = {split: len(dd[split]) for split in SPLITS}
    scenes = {split: len({r for r in dd[split]["scene_id"]}) for split in SPLITS}
    meta = {
        "license": "apache-2.0",
        "language": ["en"],
        "pretty_name": "VAT Bench scenes",
        "task_categories": ["text-classification"],
        "tags": [CARD_TAG, "value-alignment", "schwartz-values", "llm-evaluation"],
        "size_categories": [size_category(sum(counts.values()))],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in SPLITS],
            }
        ],
        "dataset_info": {
            "features": dd[SPLITS[0]].features._to_yaml_list(),
            "splits": [
                {"name": s, "num_bytes": dd[s].data.nbytes, "num_examples": counts[s]} for s in SPLITS
            ],
        },
    }
    values = ", ".join(index.value_ids)
    return render_card(
        meta,
        f"""# VAT Bench scenes

The scene set of VAT Bench (the Value Alignment Tax benchmark), one row per
action: {counts["train"]:,} actions of {scenes["train"]} train scenes and {counts["test"]:,} actions of
{scenes["test"]} test scenes. A model judges each first-person action in its social scene on a 1–5 scale,
before and after an alignment intervention on one Schwartz value; the paired shifts give the tax.

- **Splits** are the scenes' own: few-shot demonstrations come from `train`, evaluation from `test`;
  no scene is in both.
- **Columns**: `scene_id`, `scene_version`, `country`, `topic`, `split`, `scene_text`, `action_id`,
  `value` (one of {values}), `micro_value` (empty when the action names none), `polarity` (`express` or
  `suppress` its value), `action_text`, `generated` (JSON: how a generated scene was made, else empty).
  `country`, `topic`, `value`, `polarity` and `split` are class labels.
- **Licence**: Apache-2.0, as the benchmark.
- **Made by** `vat export <folder>`; `vat import source=<folder or Hub id> [revision=<commit>]` reads it
  back into scene files.

## Citation

```bibtex
{CITATION}
```
""",
    )


def write_folder(index: SpecIndex, out: str | Path) -> dict[str, Any]:
    """Write the dataset folder (README.md and one Parquet file per split); return what was written."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise VatError(f"{folder} is a file; give a folder name, or a .parquet/.jsonl file name", 2)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "README.md").exists():
        raise VatError(f"{folder} is a folder with other files in it; give a new or empty folder", 2)
    import datasets

    datasets.disable_progress_bars()
    dd = to_dataset_dict(index)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("*.parquet"):  # re-exporting replaces the splits, it never adds shards
        old.unlink()
    files = []
    for split in SPLITS:
        path = data / f"{split}-00000-of-00001.parquet"
        dd[split].to_parquet(str(path))
        files.append(path)
    readme = folder / "README.md"
    readme.write_text(card(index, dd), encoding="utf-8")
    files.append(readme)
    return {
        "path": str(folder),
        "rows": {s: len(dd[s]) for s in SPLITS},
        "scenes": {s: len(set(dd[s]["scene_id"])) for s in SPLITS},
        "files": [str(p) for p in files],
        "bytes": sum(p.stat().st_size for p in files),
    }


def is_vat_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder that ``vat export`` wrote (its card carries the ``vat-bench`` tag).

    A submission bundle's card carries the tag too, with ``vat-bench-bundle``: it holds judgments, not scenes.
    """
    meta = card_metadata(Path(path) / "README.md")
    tags = (meta or {}).get("tags") or []
    return CARD_TAG in tags and BUNDLE_TAG not in tags


def _decoded(ds: Any) -> list[dict[str, Any]]:
    """Rows with every ``ClassLabel`` turned back into its name."""
    from datasets import ClassLabel

    labels = {c: f for c, f in ds.features.items() if isinstance(f, ClassLabel)}
    rows = ds.to_list()
    for r in rows:
        for c, f in labels.items():
            if r[c] is not None:
                r[c] = f.int2str(r[c])
    return rows


def read_dataset(source: str, revision: str | None = None) -> tuple[list[Scene], dict[str, int]]:
    """The scenes of a VAT Bench dataset (a local folder, or a Hub id at ``revision``) and rows per split."""
    import os

    import datasets

    if not Path(source).exists() and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise VatError(
            f"{source!r} is not a folder here, and the Hub is off (HF_HUB_OFFLINE=1); to read a Hub dataset run "
            "with HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 and network access, or give a local folder",
            2,
        )
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as cache:  # nothing cached beyond this call
        try:
            dd = datasets.load_dataset(source, revision=revision, cache_dir=cache)
        except Exception as exc:  # noqa: BLE001 - a folder or id that cannot be read: one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise VatError(f"could not read {source!r} as a VAT Bench dataset: {first}", 1) from None
        missing = [c for c in COLUMNS if c not in next(iter(dd.values())).column_names]
        if missing:
            raise VatError(
                f"{source}: not a VAT Bench export (no column {', '.join(missing)}); "
                "map its columns with importer.columns.<field>= (docs/dataset.md)",
                2,
            )
        rows = [r for split in dd for r in _decoded(dd[split])]
        counts = {split: len(dd[split]) for split in dd}
    return scenes_from_rows(rows), counts


def import_folder(section: Mapping[str, Any], index: SpecIndex) -> dict[str, Any]:
    """``vat import`` of a VAT Bench export: every scene written back as it was (id, version, split)."""
    from runner.dataset.draft import check_out_dir, scene_path, write_scene

    source, revision = str(section["source"]), section.get("revision") or None
    if revision and Path(source).exists():
        raise VatError(
            f"importer.revision={revision}: {source} is a local path; a revision pins Hub ids only", 2
        )
    out = check_out_dir(Path(str(section["out"])), index.root, "importer.out")
    scenes, counts = read_dataset(source, revision)
    files = []
    for scene in scenes:
        doc = scene.model_dump(mode="json", exclude_none=True)
        path = scene_path(out, scene.id, scene.country)
        write_scene(
            doc,
            path,
            f"Imported by `vat import` from {source}{'@' + revision if revision else ''} (a VAT Bench export).",
        )
        files.append(str(path))
    return {
        "source": source + (f"@{revision}" if revision else ""),
        "format": "vat-bench",
        "rows": sum(counts.values()),
        "rows_by_split": counts,
        "scenes_written": len(scenes),
        "actions_written": sum(len(s.actions) for s in scenes),
        "out": str(out),
        "files": sorted(files),
    }
