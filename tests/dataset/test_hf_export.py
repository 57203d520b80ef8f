"""`vat export <folder>`: a Hub dataset folder with train/test splits and a card; `vat import` reads it back."""

import json
from pathlib import Path

import pytest
import yaml
from support.specs import SPEC

from runner.core.yamlio import read_yaml
from runner.dataset import hf_export
from runner.spec.load import load_index
from runner.spec.models import Scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index():
    return load_index(SPEC, check_lock=False)


@pytest.fixture(scope="module")
def folder(index, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "vat-scenes"
    hf_export.write_folder(index, out)
    return out


def _expected_rows(index, split: str) -> int:
    return sum(len(s.actions) for s in index.scenes.values() if s.split.value == split)


def test_load_dataset_gives_train_and_test_splits(index, folder) -> None:
    import datasets
    from datasets import ClassLabel

    dd = datasets.load_dataset(str(folder))  # offline: HF_DATASETS_OFFLINE=1 in conftest / make
    assert sorted(dd) == ["test", "train"]
    for split in ("train", "test"):
        assert len(dd[split]) == _expected_rows(index, split) > 0
        assert set(dd[split]["split"]) == {hf_export.SPLITS.index(split)}  # class label of its own split
    assert not set(dd["train"]["scene_id"]) & set(dd["test"]["scene_id"])  # scene-level split
    feats = dd["test"].features
    for col in ("country", "topic", "value", "polarity", "split"):
        assert isinstance(feats[col], ClassLabel), col
    assert feats["value"].names == index.value_ids and feats["polarity"].names == ["express", "suppress"]
    assert feats["scene_version"].dtype == "int32" and feats["scene_text"].dtype == "string"


def test_the_card_has_hub_metadata_and_the_citation(index, folder) -> None:
    text = (folder / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---", 2)[1])
    assert meta["license"] == "apache-2.0" and meta["task_categories"] == ["text-classification"]
    assert hf_export.CARD_TAG in meta["tags"]
    files = meta["configs"][0]["data_files"]
    assert [f["split"] for f in files] == ["train", "test"]
    for f in files:  # every config glob names exactly the split's file
        assert [p.name for p in folder.glob(f["path"])] == [f"{f['split']}-00000-of-00001.parquet"]
    sizes = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert sizes == {s: _expected_rows(index, s) for s in ("train", "test")}
    assert "arXiv" in text and "2602.12134" in text and "Value Alignment Tax" in text
    assert hf_export.is_vat_folder(folder)


def test_vat_export_folder_and_refusals(vat, tmp_path) -> None:
    result = vat("export", str(tmp_path / "ds"), "format=json")
    assert result.code == 0, result.err
    done = json.loads(result.out)
    assert done["rows"]["test"] > 0 and done["scenes"]["test"] > 0 and done["bytes"] > 0
    assert vat("export", str(tmp_path / "ds")).code == 0  # re-export replaces the splits
    assert sorted(p.name for p in (tmp_path / "ds" / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = vat("export", str(tmp_path / "other"))
    assert refused.code == 2 and "other files" in refused.err
    assert vat("export", str(tmp_path / "scenes.parquet")).code == 0  # the single file stays available


def _scenes_under(out: Path) -> dict[str, Scene]:
    return {s.id: s for s in (Scene.model_validate(read_yaml(p).data) for p in sorted(out.rglob("*.yaml")))}


def test_vat_import_reads_the_folder_back_identically(vat, index, folder, tmp_path) -> None:
    out = tmp_path / "back"
    result = vat("import", f"source={folder}", f"out={out}", "format=json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["format"] == "vat-bench" and summary["scenes_written"] == len(index.scenes)
    assert summary["rows_by_split"] == {s: _expected_rows(index, s) for s in ("train", "test")}
    assert _scenes_under(out) == index.scenes  # ids, versions, splits, texts, actions: all equal
    # laid out as spec/scenarios is: <country>/<topic>.yaml
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.yaml")} == {
        Path(f).relative_to("spec/scenarios").as_posix()
        for k, f in index.files.items()
        if k.startswith("scenarios/")
    }


def test_a_revision_reaches_load_dataset_for_a_hub_id(vat, folder, tmp_path, monkeypatch) -> None:
    """The Hub needs network: stand the exported folder in for the id and check what load_dataset got."""
    import datasets

    real = datasets.load_dataset
    calls = []

    def fake(path, *args, **kwargs):
        calls.append((path, kwargs.get("revision")))
        return real(str(folder), *args, **{k: v for k, v in kwargs.items() if k != "revision"})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    out = tmp_path / "hub"
    result = vat("import", "source=someone/vat-scenes", "revision=0123abcd", f"out={out}", "format=json")
    assert result.code == 0, result.err
    assert calls == [("someone/vat-scenes", "0123abcd")]
    assert json.loads(result.out)["source"] == "someone/vat-scenes@0123abcd"
    assert len(list(out.rglob("*.yaml"))) > 0


def test_a_revision_with_a_local_folder_and_an_offline_hub_id_are_refused(vat, folder, tmp_path) -> None:
    pinned = vat("import", f"source={folder}", "revision=abc", f"out={tmp_path / 'a'}")
    assert pinned.code == 2 and "pins Hub ids only" in pinned.err
    offline = vat("import", "source=someone/vat-scenes", f"out={tmp_path / 'b'}")
    assert offline.code == 2 and "HF_HUB_OFFLINE=1" in offline.err
