"""Bundle format 2 is a Hugging Face dataset folder: `datasets` reads it, its card carries the Hub's
metadata, and it is ready to push (checked offline, as far as an upload can be checked without the Hub)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from runner.core.hub import BUNDLE_TAG, CARD_TAG, CITATION, card_metadata, push_problems
from runner.leaderboard.bundle import BUNDLE_FORMAT, JUDGMENTS, MANIFEST, SPLIT
from runner.spec.entries import file_sha256


def _copy(bundled: dict, name: str) -> Path:
    dst = bundled["tmp"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(bundled["folder"], dst)
    return dst


def test_a_bundle_folder_is_a_dataset_folder(bundled):
    folder = bundled["folder"]
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert (
        files
        == ["README.md", JUDGMENTS, MANIFEST]
        == ["README.md", "data/judgments-00000-of-00001.parquet", "manifest.json"]
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["bundle_format"] == BUNDLE_FORMAT == 2
    assert manifest["judgments"]["file"] == JUDGMENTS
    assert manifest["card"] == {"file": "README.md", "sha256": file_sha256(folder / "README.md")}


def test_load_dataset_reads_the_judgment_rows_offline(bundled, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dd = datasets.load_dataset(str(bundled["folder"]), cache_dir=str(tmp_path / "cache"))
    assert list(dd) == [SPLIT]
    rows = dd[SPLIT]
    table = pq.read_table(bundled["folder"] / JUDGMENTS)
    assert rows.num_rows == table.num_rows == 400 and rows.column_names == table.column_names
    for column in ("request_key", "condition", "rating", "expected_rating", "messages"):
        assert rows[column] == table.column(column).to_pylist(), column
    assert rows.features["created_at"].dtype == "timestamp[us]"  # the card's features are the file's types


def test_the_card_carries_the_hub_metadata_and_says_what_the_rows_are(bundled):
    from huggingface_hub import DatasetCard

    readme = bundled["folder"] / "README.md"
    meta = card_metadata(readme)
    assert meta is not None
    assert meta["license"] == "apache-2.0" and {CARD_TAG, BUNDLE_TAG} <= set(meta["tags"])
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": SPLIT, "path": "data/judgments-*.parquet"}]}
    ]
    assert meta["dataset_info"]["splits"] == [
        {"name": SPLIT, "num_bytes": meta["dataset_info"]["splits"][0]["num_bytes"], "num_examples": 400}
    ]
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    schema = pq.read_schema(bundled["folder"] / JUDGMENTS)
    assert names == schema.names
    # The dtypes the card names without importing `datasets` are the ones `datasets` itself gives.
    from datasets import Features

    assert meta["dataset_info"]["features"] == Features.from_arrow_schema(schema)._to_yaml_list()
    text = readme.read_text(encoding="utf-8")
    assert CITATION in text and "one per (run, condition, request key)" in text
    assert "(leaderboard entry `test__mock-a`)" in text and "`t1`, 400 rows over 2 conditions" in text
    card = DatasetCard.load(readme)  # huggingface_hub parses the metadata offline
    assert card.data.license == "apache-2.0" and BUNDLE_TAG in card.data.tags


def test_the_folder_is_ready_to_push_as_far_as_can_be_checked_offline(bundled, tmp_path):
    """`hf upload <repo> <folder> --repo-type dataset` (HfApi.upload_folder) needs the Hub: it asks the Hub
    to validate the card and to pre-upload the Parquet file through LFS. Offline we check what
    huggingface_hub computes locally: the files an upload_folder would take (its own filter and default
    ignore patterns), a valid path in the repo and a content hash for each; plus push_problems()."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
    from huggingface_hub.utils import filter_repo_objects

    folder = bundled["folder"]
    assert push_problems(folder) == []
    local = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    taken = list(filter_repo_objects(local, ignore_patterns=DEFAULT_IGNORE_PATTERNS))
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(local[rel])) for rel in taken]
    assert sorted(op.path_in_repo for op in ops) == sorted(local)
    for op in ops:
        assert op.upload_info.sha256.hex() == file_sha256(local[op.path_in_repo])

    # ... and the check can fail: a link, a hidden file and a card pointing at nothing.
    bad = _copy(bundled, "t-unpushable")
    (bad / "extra").symlink_to(bad / MANIFEST)
    (bad / ".notes").write_text("x")
    card = (bad / "README.md").read_text().replace("data/judgments-*.parquet", "data/train-*.parquet")
    (bad / "README.md").write_text(card)
    problems = push_problems(bad)
    assert any(p.startswith("extra is not a plain file") for p in problems), problems
    assert any(p.startswith(".notes: use letters") for p in problems), problems
    assert any("data_files data/train-*.parquet matches no file" in p for p in problems), problems


def test_an_edited_or_missing_card_fails_verification(vat, board_env):
    folder = _copy(board_env, "t-card")
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("# VAT Bench judgments", "# Best model ever"))
    result = vat("verify", str(folder), "format=json")
    out = json.loads(result.out)
    assert result.code == 1 and any(
        r.startswith("dataset card: README.md has SHA-256") for r in out["reasons"]
    )
    readme.unlink()
    out = json.loads(vat("verify", str(folder), "format=json").out)
    assert any("holds no README.md" in r for r in out["reasons"]), out["reasons"]


def test_a_bundle_folder_is_not_taken_for_a_scene_export(bundled):
    from runner.dataset.hf_export import is_vat_folder

    assert not is_vat_folder(bundled["folder"])


def test_contributed_text_reaches_the_card_as_plain_text():
    from runner.leaderboard.bundle.card import _plain

    assert _plain("Evil <img src=x onerror=alert(1)>\n# [click](javascript:x) `code`") == (
        "Evil img src=x onerror=alert 1 click javascript:x code"
    )
    assert _plain("gpt_4o mini") == "gpt_4o mini"
