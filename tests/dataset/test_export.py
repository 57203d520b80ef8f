"""Export to a datasets.Dataset and back, losslessly; `vat export` files."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from runner.dataset.export import from_dataset, to_dataset
from runner.spec.load import load_index


def test_dataset_round_trip_is_lossless():
    index = load_index("spec")
    ds = to_dataset(index)
    assert len(ds) == sum(len(s.actions) for s in index.scenes.values())
    assert {
        "scene_id",
        "country",
        "topic",
        "split",
        "scene_text",
        "value",
        "micro_value",
        "polarity",
        "action_text",
    } <= set(ds.column_names)
    back = {s.id: s for s in from_dataset(ds)}
    assert back == index.scenes


def test_vat_export_parquet_and_jsonl(vat, tmp_path):
    index = load_index("spec")
    n = sum(len(s.actions) for s in index.scenes.values())
    result = vat("export", str(tmp_path / "scenes.parquet"), "format=json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["rows"] == n
    assert pq.read_table(tmp_path / "scenes.parquet").num_rows == n
    assert vat("export", str(tmp_path / "scenes.jsonl")).code == 0
    lines = (tmp_path / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == n and json.loads(lines[0])["scene_id"]
    assert vat("export", str(tmp_path / "scenes.xlsx")).code == 2
