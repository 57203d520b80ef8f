"""Named bundle migrations: a format-1 bundle verifies through `v1_to_v2_hf_layout` with the same verdict,
metrics and hashes, the migration is recorded, and a bundle newer than the code is refused."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

from runner.leaderboard.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_MIGRATIONS,
    JUDGMENTS,
    MANIFEST,
    migrate_manifest,
    open_bundle,
    read_sidecar,
    verify_folder,
)
from runner.leaderboard.bundle.migrate import pending
from runner.spec.entries import file_sha256


def as_format_1(bundle: Path, dst: Path) -> Path:
    """The format-1 bundle of the same judgments, as `vat bundle` wrote it before format 2.

    Format 1 is manifest.json beside judgments.parquet; its manifest names that file and has no card.
    The judgments file's bytes are the same, so its hash is too.
    """
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copyfile(bundle / JUDGMENTS, dst / "judgments.parquet")
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["bundle_format"] = 1
    manifest["judgments"]["file"] = "judgments.parquet"
    del manifest["card"]
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return dst


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in folder.rglob("*") if p.is_file()}


def _verdict(path: Path):
    with open_bundle(path) as folder:
        return verify_folder(folder, path)[0]


def test_a_format_1_bundle_verifies_through_the_migration_with_the_same_numbers(vat, board_env):
    v1 = as_format_1(board_env["folder"], board_env["tmp"] / "v1")
    before = _files(v1)
    result = vat("verify", str(v1), "format=json")
    out = json.loads(result.out)
    assert result.code == 0 and out["ok"], out["reasons"]
    assert out["bundle_format"] == 1 and out["migrations"] == ["v1_to_v2_hf_layout"]
    assert _files(v1) == before  # read, never rewritten
    old, new = _verdict(v1), _verdict(board_env["folder"])
    assert [c.name for c in old.checks] == [c.name for c in new.checks if c.name != "dataset card"]
    assert [dict(r) for r in old.rows] == [dict(r) for r in new.rows]  # every metric, to the last digit
    assert old.hashes == {"manifest": before[MANIFEST], "judgments": before["judgments.parquet"]}
    assert new.migrations == [] and new.bundle_format == BUNDLE_FORMAT
    # The table view says so too.
    assert "read through the migration(s) v1_to_v2_hf_layout" in vat("verify", str(v1)).err


def test_a_format_1_archive_verifies_through_the_migration(vat, board_env):
    v1 = as_format_1(board_env["folder"], board_env["tmp"] / "v1-archive")
    archive = board_env["tmp"] / "v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in (MANIFEST, "judgments.parquet"):
            data = (v1 / name).read_bytes()
            info = tarfile.TarInfo(f"v1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = json.loads(vat("verify", str(archive), "format=json").out)
    assert out["ok"] and out["migrations"] == ["v1_to_v2_hf_layout"], out["reasons"]


def test_a_signed_record_of_a_format_1_bundle_stays_valid(vat, board_env, monkeypatch):
    """A record the maintainer signed before format 2 hashes the format-1 files; those hashes still match."""
    from runner.leaderboard.bundle.sidecar import _signature

    monkeypatch.setenv("VAT_VERIFY_HMAC_KEY", "maintainer-only-key-123")
    v1 = as_format_1(board_env["folder"], board_env["tmp"] / "v1-signed")
    files = _files(v1)
    old_record = {  # the fields a format-1 era `vat verify replay=N` wrote
        "format": 1,
        "verified": True,
        "checks_passed": True,
        "reasons": [],
        "release": "t1",
        "entry": "test__mock-a",
        "manifest_sha256": files[MANIFEST],
        "judgments_sha256": files["judgments.parquet"],
        "replay": {"requested": 4, "agreed": 4, "passed": True},
        "vat_bench": "0.1.0",
    }
    old_record["signature"] = _signature(old_record, "maintainer-only-key-123")
    (v1 / "verification.json").write_text(json.dumps(old_record))
    assert read_sidecar(v1, _verdict(v1).hashes) == old_record
    # A new replay of the old bundle records how it was read, under the signature.
    (v1 / "verification.json").unlink()
    assert vat("verify", str(v1), "replay=2").code == 0
    record = read_sidecar(v1, _verdict(v1).hashes)
    assert record is not None and record["verified"]
    assert record["bundle_format"] == 1 and record["migrations"] == ["v1_to_v2_hf_layout"]


def test_the_migration_reaches_the_store_that_recomputes_the_metrics(board_env):
    from runner.leaderboard.bundle import compile_release, in_memory_store
    from runner.spec.entries import get_entry, get_release

    v1 = as_format_1(board_env["folder"], board_env["tmp"] / "v1-store")
    with open_bundle(v1) as folder:
        verdict, rp, table = verify_folder(folder, v1)
    assert rp is not None and table is not None
    provenance = {"bundle_format": verdict.bundle_format, "bundle_migrations": verdict.migrations}
    store = in_memory_store(table, compile_release(get_entry("test__mock-a"), get_release("t1")), provenance)
    try:
        recorded = {
            json.loads(p)["bundle_migrations"][0] for (p,) in store.query("SELECT provenance FROM runs")
        }
    finally:
        store.close()
    assert recorded == {"v1_to_v2_hf_layout"}


def test_a_bundle_of_a_newer_format_is_refused_in_one_sentence(vat, board_env):
    folder = board_env["tmp"] / "t-newer"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(board_env["folder"], folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["bundle_format"] = BUNDLE_FORMAT + 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    result = vat("verify", str(folder))
    text = result.out + result.err
    assert result.code == 1 and "Traceback" not in text
    assert (
        f"manifest.json is a bundle of format {BUNDLE_FORMAT + 1}, newer than the formats 1 to {BUNDLE_FORMAT}"
        in text
    )
    assert "upgrade vat-bench (`pip install -U vat-bench`) to verify it" in text


def test_migrations_are_named_in_order_up_to_the_current_format():
    versions = [m.version for m in BUNDLE_MIGRATIONS]
    assert versions == list(range(2, BUNDLE_FORMAT + 1))
    for m in BUNDLE_MIGRATIONS:
        assert re.fullmatch(rf"v{m.version - 1}_to_v{m.version}_[a-z0-9_]+", m.name), m.name
    assert [m.name for m in pending(1)] == ["v1_to_v2_hf_layout"] and pending(BUNDLE_FORMAT) == []
    old = {"bundle_format": 1, "judgments": {"file": "judgments.parquet", "sha256": "x"}}
    new, applied = migrate_manifest(old)
    assert applied == ["v1_to_v2_hf_layout"] and old["bundle_format"] == 1  # the input is left alone
    assert new == {"bundle_format": 2, "judgments": {"file": JUDGMENTS, "sha256": "x"}, "card": None}


def test_the_site_build_takes_a_format_1_bundle(vat, board_env, tmp_path):
    """leaderboard/submissions/ may hold bundles made before format 2: they stay on the board."""
    subs = board_env["board"] / "submissions"
    v1 = as_format_1(board_env["folder"], subs / "old-v1")
    try:
        result = vat("leaderboard", "build", "release=t1", f"out={tmp_path / 'site'}", "store=false")
        text = result.out + result.err
        assert result.code == 0 and "Traceback" not in text and "old-v1" not in text, text
        board = json.loads((tmp_path / "site" / "data" / "leaderboard.json").read_text())
        assert any(r.get("bundle") == "old-v1" for r in board["rows"]), list(board)
    finally:
        shutil.rmtree(v1)
