"""Leaderboard entries, releases and bundles: validation, Hydra options, and `vat verify` on real and
tampered bundles made from a mock run in a tmp store."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.leaderboard_board import ENTRY, make_board
from support.leaderboard_board import pins as _pins
from support.leaderboard_board import write as _write
from support.specs import SPEC

from runner.core.errors import VatError
from runner.leaderboard.bundle import JUDGMENTS
from runner.spec import entries as E

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- entries and releases


def test_shipped_entries_and_release_are_valid():
    from runner.spec.load import load_index

    entries, problems = E.load_entries(ROOT / "leaderboard")
    assert problems == []
    assert "huggingfacetb__smollm2-135m-instruct" in entries
    assert entries["huggingfacetb__smollm2-135m-instruct"].model == "local/smollm2-135m"
    assert len([e for e in entries.values() if not e.model.startswith("local/")]) >= 3
    index = load_index(SPEC, check_lock=False)
    assert E.leaderboard_problems(index, ROOT / "leaderboard") == []
    release = E.get_release("v0.1", ROOT / "leaderboard")
    assert set(release.scenes) <= set(E.release_pins(index))
    assert len(release.scenes) >= 30 and len(release.targets) >= 2


@pytest.mark.parametrize("ident", ["../etc/passwd", "a/b", "..", "x..y", "Upper__x", ".hidden__x", "a b"])
def test_unsafe_ids_are_refused(ident, tmp_path):
    with pytest.raises(VatError, match="not allowed"):
        E.get_entry(ident, tmp_path)
    with pytest.raises(VatError, match="not allowed"):
        E.get_release(ident, tmp_path)


def test_entry_problems_name_file_line_and_field(tmp_path):
    board = tmp_path / "lb"
    _write(board / "entries" / "org__ok.yaml", ENTRY.format(model="mock/a", name="OK"))
    _write(board / "entries" / "noorg.yaml", ENTRY.format(model="mock/a", name="No org"))
    bad = ENTRY.format(model="mock/a", name="Bad") + "colour: red\n"
    _write(board / "entries" / "org__extra.yaml", bad.replace("https://example.org/x", "javascript:alert(1)"))
    entries, problems = E.load_entries(board)
    assert set(entries) == {"org__ok"}
    text = [str(p) for p in problems]
    assert any(t.startswith("lb/entries/org__extra.yaml:8: colour: unknown field") for t in text), text
    assert any("org__extra.yaml:5: link: must be an http:// or https:// URL" in t for t in text), text
    assert any("noorg.yaml:1: id:" in t and "<org>__<model>" in t for t in text), text


def test_release_pins_are_checked_against_the_spec(tmp_path):
    from runner.spec.load import load_index

    index = load_index(SPEC, check_lock=False)
    pins = _pins()
    sid = pins[0].split("@")[0]
    board = make_board(tmp_path / "lb", [f"{sid}@9", "nowhere@1", *pins[1:]])
    release = E.get_release("t1", board)
    text = [str(p) for p in E.release_problems(release, index, "t1.yaml", board / "releases" / "t1.yaml")]
    assert any(t.startswith(f"t1.yaml:5: scenes.0: {sid}@9 is pinned but spec/ has {sid}@") for t in text), (
        text
    )
    assert any(t.startswith("t1.yaml:5: scenes.1: nowhere@1: no such document") for t in text), text
    _write(
        board / "releases" / "t2.yaml",
        (board / "releases" / "t1.yaml").read_text().replace("bootstrap_b", "bootstrap"),
    )
    _, problems = E.load_releases(board)
    assert any(
        "unknown metric parameter 'bootstrap'; did you mean 'bootstrap_b'?" in str(p) for p in problems
    )


def test_validate_reports_leaderboard_problems(vat, tmp_path, monkeypatch):
    board = tmp_path / "lb"
    _write(board / "entries" / "org__bad.yaml", "model: mock/a\ndisplay_name: x\n")
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    result = vat("validate")
    assert result.code == 1
    assert "lb/entries/org__bad.yaml:1: provider: required field is missing" in result.out


def test_entries_are_hydra_model_options(tmp_path, monkeypatch):
    from runner.config import compose

    board = make_board(tmp_path / "lb", _pins())
    _write(board / "entries" / "org__broken.yaml", "model: mock/a\n")
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    cfg = compose(["model=test__mock-a", "model.temperature=0.5"])
    assert cfg.model.name == "mock/a" and cfg.model.display_name == "Mock A" and cfg.model.temperature == 0.5
    assert compose(["model=smollm2"]).model.name == "local/smollm2-135m"  # conf/model/ still works
    with pytest.raises(VatError, match="model=org__broken names an invalid entry: .*org__broken.yaml"):
        compose(["model=org__broken"])


def test_release_scenes_prints_the_test_split(vat):
    result = vat("leaderboard", "release-scenes", "format=json")
    assert result.code == 0, result.err
    pins = json.loads(result.out)
    assert pins["scenes"][:5] == _pins() and all("@" in p for p in pins["scenes"])
    assert pins["prompt"].startswith("judgment@") and pins["value_system"].startswith("schwartz10@")
    assert {p.split("@")[0] for p in pins["strategies"]} >= {
        "fewshot_2",
        "fewshot_4",
        "fewshot_8",
        "system_prompt",
    }
    assert not any(p.startswith(("baseline@", "checkpoint@")) for p in pins["strategies"])
    # The train split too: a new release pins the demonstrations' pool (train scenes only).
    from runner.spec.load import load_index

    index = load_index(SPEC, check_lock=False)
    assert pins["train_scenes"] == E.release_pins(index, "train") and pins["train_scenes"]
    assert not set(pins["train_scenes"]) & set(pins["scenes"])
    table = vat("leaderboard", "release-scenes")
    assert "\ntrain_scenes:\n  - " in table.out and "\nstrategies:\n  - " in table.out


# ---------------------------------------------------------------- bundles


def _verify(vat, path: Path, *extra: str) -> tuple[int, dict]:
    result = vat("verify", str(path), "format=json", *extra)
    return result.code, json.loads(result.out)


def _copy(bundled, name: str) -> Path:
    dst = bundled["tmp"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(bundled["folder"], dst)
    return dst


def _edit(folder: Path, change, fix_manifest: bool = False) -> None:
    """Rewrite the judgments file through ``change(list of row dicts)``; optionally re-hash it in the manifest."""
    from runner.spec.entries import file_sha256

    path = folder / JUDGMENTS
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows = change(rows) or rows
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    if fix_manifest:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["judgments"]["sha256"] = file_sha256(path)
        manifest["judgments"]["rows"] = len(rows)
        (folder / "manifest.json").write_text(json.dumps(manifest))


def test_bundle_contents(bundled):
    manifest = json.loads((bundled["folder"] / "manifest.json").read_text())
    table = pq.read_table(bundled["folder"] / JUDGMENTS)
    # 5 scenes × 20 actions: pre (shared) + post, for 2 targets → 400 rows, 300 distinct keys.
    assert table.num_rows == manifest["judgments"]["rows"] == 400
    assert len(manifest["request_keys"]) == 300 == len(set(table.column("request_key").to_pylist()))
    assert manifest["release"] == "t1" and manifest["entry"]["id"] == "test__mock-a"
    assert {r["strategy"] for r in manifest["runs"]} == {"fewshot_2"} and len(manifest["metrics"]) == 2
    assert "scenarios/" + _pins()[0].split("@")[0] in manifest["specs"]
    assert manifest["versions"]["duckdb"] and manifest["config"]["gen_params"]["temperature"] == 0.0
    assert "messages" in table.column_names and "text" in table.column_names


def test_verify_passes_on_a_real_bundle_and_replay_marks_it_verified(vat, board_env):
    code, out = _verify(vat, board_env["folder"])
    assert code == 0 and out["ok"] and not out["verified"], out["reasons"]
    assert {c["name"] for c in out["checks"]} >= {"request keys in release", "metrics recomputed", "ratings"}
    code, out = _verify(vat, board_env["archive"], "replay=8")
    assert code == 0 and out["verified"], out
    assert out["replay"]["requested"] == 8 and out["replay"]["agreed"] == 8
    record = json.loads(Path(str(board_env["archive"]) + ".verification.json").read_text())
    assert record["verified"] and record["judgments_sha256"]


def test_changed_rating_fails(vat, board_env):
    folder = _copy(board_env, "t-rating")

    def change(rows):
        rows[7]["rating"] = 1 if rows[7]["rating"] != 1 else 5

    _edit(folder, change)
    code, out = _verify(vat, folder)
    assert code == 1 and not out["ok"]
    failed = {r.split(":")[0] for r in out["reasons"]}
    assert {"judgments file hash", "ratings"} <= failed, out["reasons"]


def test_changed_rating_with_rehashed_manifest_still_fails(vat, board_env):
    folder = _copy(board_env, "t-rehash")

    def change(rows):
        for r in rows:  # the same pre key appears in both runs: change every copy, consistently
            if r["request_key"] == rows[3]["request_key"]:
                r["rating"] = 5 if r["rating"] != 5 else 1

    _edit(folder, change, fix_manifest=True)
    code, out = _verify(vat, folder)
    assert code == 1
    failed = {r.split(":")[0] for r in out["reasons"]}
    assert "ratings" in failed and "judgments file hash" not in failed, out["reasons"]


def test_changed_key_fails(vat, board_env):
    folder = _copy(board_env, "t-key")

    def change(rows):
        rows[0]["request_key"] = "0" * 32

    _edit(folder, change, fix_manifest=True)
    code, out = _verify(vat, folder)
    assert code == 1
    failed = {r.split(":")[0] for r in out["reasons"]}
    assert {"request keys in release", "request keys recomputed"} <= failed, out["reasons"]


def test_extra_key_fails(vat, board_env):
    from runner.compile.plan import request_key

    folder = _copy(board_env, "t-extra")

    def change(rows):
        extra = dict(rows[0])
        messages = json.loads(extra["messages"])
        messages[-1]["content"] += " (an item that is not in the release)"
        extra["messages"] = json.dumps(messages)
        extra["request_key"] = request_key(
            extra["model"],
            {"temperature": 0.0, "max_tokens": 3, "logprobs": True, "top_logprobs": 5},
            messages,
            0,
        )
        return [*rows, extra]

    _edit(folder, change, fix_manifest=True)
    code, out = _verify(vat, folder)
    assert code == 1
    assert any("do not belong to release t1" in r for r in out["reasons"]), out["reasons"]
    assert not any(r.startswith("request keys recomputed") for r in out["reasons"])  # a well-formed forgery


def test_consistent_forgery_passes_recomputation_but_fails_replay(vat, board_env):
    """Invented answers that are internally consistent survive every offline check; replay catches them."""
    from runner.leaderboard.bundle import compile_release, metric_rows
    from runner.metrics.vat import to_json

    folder = _copy(board_env, "t-forged")

    def change(rows):
        for r in rows:
            if r["condition"] == "post":
                r["text"], r["rating"], r["logprobs"], r["expected_rating"] = "5", 5, None, None

    _edit(folder, change, fix_manifest=True)
    rp = compile_release(E.get_entry("test__mock-a"), E.get_release("t1"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["metrics"] = to_json(metric_rows(pq.read_table(folder / JUDGMENTS), rp))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out = _verify(vat, folder)
    assert code == 0 and out["ok"], out["reasons"]
    code, out = _verify(vat, folder, "replay=40", "seed=1")
    assert code == 1 and not out["verified"]
    assert out["replay"]["agreed"] < 40 and any(r.startswith("replay:") for r in out["reasons"])


def test_claimed_metric_change_fails(vat, board_env):
    folder = _copy(board_env, "t-claim")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["metrics"][0]["nvat"] = 0.01
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out = _verify(vat, folder)
    assert code == 1 and any("claimed nvat 0.01" in r for r in out["reasons"]), out["reasons"]


def _store_copy(board_env: dict, store: Path) -> tuple[Path, Any]:
    """A writable copy of the board's store at ``store`` and a DuckDB connection to it (close it)."""
    import duckdb

    shutil.copyfile(board_env["store"], store)
    return store, duckdb.connect(str(store))


def test_bundle_of_an_incomplete_run_is_refused(vat, board_env, tmp_path):
    store, con = _store_copy(board_env, tmp_path / "partial.duckdb")
    # 7 answers of post-condition keys (pre keys are shared by both runs and would count twice)
    con.execute(
        "DELETE FROM responses WHERE request_key IN (SELECT request_key FROM run_requests "
        "WHERE condition = 'post' ORDER BY request_key LIMIT 7)"
    )
    con.close()
    result = vat("bundle", "entry=test__mock-a", "release=t1", f"store.path={store}", f"out={tmp_path / 'b'}")
    assert result.code == 1 and "7 of 400 judgments of release t1 have no answer" in result.err, result.err
    assert "vat leaderboard run entry=test__mock-a release=t1" in result.err
    result = vat("verify", str(tmp_path / "nothing.tar.gz"))
    assert result.code == 2 and "no bundle at" in result.err


def test_bundle_for_an_unknown_entry_fails_verification(vat, board_env):
    folder = _copy(board_env, "t-entry")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["entry"]["id"] = "someone__else"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out = _verify(vat, folder)
    assert code == 1 and out["reasons"][0].startswith("release and entry: no entry 'someone__else'"), out


# ---------------------------------------------------------------- frozen releases


def test_v01_request_keys_are_pinned(monkeypatch):
    """v0.1 compiles to the same 13,940 request keys as before its train scenes were pinned (golden digest)."""
    import hashlib

    from runner.leaderboard.bundle import compile_release

    board = ROOT / "leaderboard"
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    rp = compile_release(E.get_entry("openai__gpt-4o-mini", board), E.get_release("v0.1", board))
    keys = sorted({k for *_, k in rp.membership()})
    assert len(rp.conditions) == 16 and len(keys) == 13940
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert digest == "8416dbe8975e37c03622898c7a81793a17cccd039bdcf062c739769e44434a7b"
    first = rp.conditions[0]
    assert (first.strategy, first.target, first.plan.requests[-1].key) == (
        "fewshot_2",
        "security",
        "cedb68952559483f4d5e2461d29bb5f5",
    )


def test_a_fewshot_release_must_pin_its_train_scenes(tmp_path):
    from runner.spec.load import load_index

    board = make_board(tmp_path / "lb", _pins())
    text = (board / "releases" / "t1.yaml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("train_scenes:")]
    lines.append(f"train_scenes: [{_pins()[0]}]")  # a test scene listed as a train scene
    (board / "releases" / "t2.yaml").write_text("\n".join(lines[:-1]) + "\n")
    (board / "releases" / "t3.yaml").write_text("\n".join(lines) + "\n")
    index = load_index(SPEC, check_lock=False)
    t2 = [str(p) for p in E.release_problems(E.get_release("t2", board), index, "t2.yaml")]
    assert any("train_scenes: fewshot_2 draws demonstrations from train scenes" in t for t in t2), t2
    t3 = [str(p) for p in E.release_problems(E.get_release("t3", board), index, "t3.yaml")]
    assert any("train_scenes.0: " in t and "is a test scene" in t for t in t3), t3


def _new_train_scene(spec: Path, target: str = "security") -> str:
    """Add a copy of a train scene under a new id whose target action outranks every demonstration.

    Its ``security`` actions then come first in the seeded hash order, so an unpinned fewshot run
    would pick them: exactly the change that used to invalidate every existing bundle.
    """
    import hashlib

    import yaml

    from runner.spec.load import load_index

    index = load_index(spec, check_lock=False)
    train = index.scenes_in("train")
    best = min(
        hashlib.sha256(f"0:{s.id}:{a.id}".encode()).hexdigest()
        for s in train
        for a in s.actions
        if a.value == target
    )
    source = train[0]
    doc = yaml.safe_load((ROOT / index.files[f"scenarios/{source.id}"]).read_text())
    for n in range(100, 100_000):
        new_id = f"{source.id}-{n}"
        ranks = [
            hashlib.sha256(f"0:{new_id}:{a.id}".encode()).hexdigest()
            for a in source.actions
            if a.value == target
        ]
        if min(ranks) < best:
            break
    doc["id"] = new_id
    path = spec / "scenarios" / source.country / f"{source.topic}-{n}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return new_id


def test_adding_a_train_scene_keeps_an_existing_bundle_valid(vat, board_env, spec_copy):
    from runner.compile.plan import compile_plan
    from runner.leaderboard.bundle import condition_config, release_config
    from runner.spec.load import load_index

    new_id = _new_train_scene(spec_copy)
    # ... and a second test scene in a cell (what the dataset's growth adds): not pinned, so not judged.
    import yaml

    test_scene = next(s for s in load_index(spec_copy, check_lock=False).scenes_in("test"))
    doc = yaml.safe_load((SPEC / "scenarios" / test_scene.country / f"{test_scene.topic}.yaml").read_text())
    doc["id"] = f"{test_scene.id}-99"
    (spec_copy / "scenarios" / test_scene.country / f"{test_scene.topic}-99.yaml").write_text(
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    )
    index = load_index(spec_copy, check_lock=False)
    assert index.scenes[f"{test_scene.id}-99"].split.value == "test"
    assert index.scenes[new_id].split.value == "train"
    manifest = json.loads((board_env["folder"] / "manifest.json").read_text())
    # The failure this guards against: without pinned train scenes the new scene changes the requests.
    release = E.get_release("t1", board_env["board"])
    cfg = release_config(E.get_entry("test__mock-a", board_env["board"]), release, [f"spec_dir={spec_copy}"])
    cfg.selection.train_scenes = []
    unpinned = compile_plan(index, condition_config(cfg, "fewshot_2", "security", "reinforce"))
    assert not set(unpinned.keys()) <= set(manifest["request_keys"])
    code, out = _verify(vat, board_env["folder"], f"spec_dir={spec_copy}")
    assert code == 0 and out["ok"], out["reasons"]


def test_a_build_that_drops_every_bundle_fails(vat, board_env, tmp_path, monkeypatch):
    board = tmp_path / "lb"
    shutil.copytree(board_env["board"], board)
    shutil.copytree(board_env["folder"], board / "submissions" / "a")
    manifest = json.loads((board / "submissions" / "a" / "manifest.json").read_text())
    manifest["metrics"][0]["gain"] = 0.99
    (board / "submissions" / "a" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    result = vat("leaderboard", "build", f"out={tmp_path / 'site'}", "store=false", "release=t1")
    assert result.code == 1, result.err
    assert "every bundle was left out of the site (1 failed verification; first: a:" in result.err
    assert not (tmp_path / "site" / "index.html").exists()


def test_a_frozen_release_survives_new_versions_of_its_scenes(tmp_path, monkeypatch):
    """v0.1 is frozen (leaderboard/releases/v0.1/spec/): a pinned scene bumped in spec/ with a new action
    leaves the release valid and its 13,940 request keys unchanged; without the snapshot it would not."""
    import hashlib
    import shutil

    from runner.leaderboard.bundle import compile_release
    from runner.spec.load import load_index

    spec = tmp_path / "spec"
    shutil.copytree(SPEC, spec)
    scene = spec / "scenarios" / "au" / "health.yaml"
    text = scene.read_text(encoding="utf-8")
    assert "\nversion: 1\n" in text
    scene.write_text(text.replace("\nversion: 1\n", "\nversion: 2\n", 1), encoding="utf-8")
    index = load_index(spec, check_lock=False)
    assert index.hashes["scenarios/au-health"][0] == 2

    board = ROOT / "leaderboard"
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    release = E.get_release("v0.1", board)
    assert E.release_problems(release, index, "v0.1.yaml"), "the bump must break an unfrozen release"
    assert E.release_problems(release, E.release_index(release, index, board), "v0.1.yaml") == []
    assert not [p for p in E.leaderboard_problems(index, board) if "v0.1" in str(p)]
    rp = compile_release(E.get_entry("openai__gpt-4o-mini", board), release, index=None)
    keys = sorted({k for *_, k in rp.membership()})
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert digest == "8416dbe8975e37c03622898c7a81793a17cccd039bdcf062c739769e44434a7b"


def test_freeze_refuses_to_overwrite_and_is_all_or_nothing(tmp_path):
    board = tmp_path / "lb"
    shutil.copytree(
        ROOT / "leaderboard" / "releases", board / "releases", ignore=shutil.ignore_patterns("spec")
    )
    release = E.get_release("v0.1", ROOT / "leaderboard")
    snap, count = E.freeze(release, SPEC, board)
    assert snap == board / "releases" / "v0.1" / "spec" and count > 132
    assert not (board / "releases" / "v0.1" / "spec.partial").exists()
    with pytest.raises(ValueError, match="never changes"):
        E.freeze(release, SPEC, board)


# ---------------------------------------------------------------- trust: signed records, stratified replay


def _record(folder: Path) -> Path:
    return folder / "verification.json"


def test_a_hand_written_verification_record_shows_as_unverified(vat, board_env, monkeypatch):
    """Before: a verification.json whose two SHA-256 fields matched showed as verified."""
    from runner.leaderboard.bundle import read_sidecar
    from runner.spec.entries import file_sha256

    folder = _copy(board_env, "t-forged-record")
    hashes = {
        "manifest": file_sha256(folder / "manifest.json"),
        "judgments": file_sha256(folder / JUDGMENTS),
    }
    forged = {
        "format": 1,
        "verified": True,
        "manifest_sha256": hashes["manifest"],
        "judgments_sha256": hashes["judgments"],
    }
    _record(folder).write_text(json.dumps(forged))
    monkeypatch.setenv("VAT_VERIFY_HMAC_KEY", "maintainer-only-key-123")
    assert read_sidecar(folder, hashes) is None  # no signature
    forged["signature"] = "0" * 64
    _record(folder).write_text(json.dumps(forged))
    assert read_sidecar(folder, hashes) is None  # a wrong one
    # The maintainer's own replay, signed with the key, counts; any edit to it breaks the signature.
    _record(folder).unlink()
    code, out = _verify(vat, folder, "replay=4")
    assert code == 0 and out["verified"]
    record = read_sidecar(folder, hashes)
    assert record is not None and record["verified"] and len(record["signature"]) == 64
    edited = dict(record, reasons=["edited"])
    _record(folder).write_text(json.dumps(edited))
    assert read_sidecar(folder, hashes) is None
    monkeypatch.delenv("VAT_VERIFY_HMAC_KEY")
    _record(folder).write_text(json.dumps(record))
    assert read_sidecar(folder, hashes) is None  # without the key nothing can be trusted


def test_an_unsigned_replay_warns_that_it_will_not_count(vat, board_env, monkeypatch):
    monkeypatch.delenv("VAT_VERIFY_HMAC_KEY", raising=False)
    folder = _copy(board_env, "t-unsigned")
    result = vat("verify", str(folder), "replay=2")
    assert result.code == 0 and "VAT_VERIFY_HMAC_KEY is not set: the record is unsigned" in result.err


def test_rebuilding_a_bundle_keeps_its_verification_record(vat, board_env):
    """Issue 21.3: `vat bundle` into a folder silently deleted an existing verification.json."""
    folder = _copy(board_env, "t-rebuild")
    _record(folder).write_text('{"format": 1}')
    args = ("entry=test__mock-a", "release=t1", f"store.path={board_env['store']}", f"out={folder}")
    result = vat("bundle", *args)
    assert result.code == 2 and "holds the verification record of the bundle" in result.err, result.err
    assert _record(folder).read_text() == '{"format": 1}'


def test_replay_draws_from_every_stratum_as_allocated():
    from runner.leaderboard.bundle import allocate

    # Hand-computed: 50 draws, half (25) to the target strata split 13/12, the other 25 split 13/12.
    assert allocate(50, {"target-post": 20, "target-pre": 20, "other-post": 180, "other-pre": 80}) == {
        "target-post": 13,
        "target-pre": 12,
        "other-post": 13,
        "other-pre": 12,
    }
    # A small target stratum is exhausted and its surplus goes to the others; the total is kept.
    assert allocate(50, {"target-post": 4, "target-pre": 4, "other-post": 100, "other-pre": 100}) == {
        "target-post": 4,
        "target-pre": 4,
        "other-post": 21,
        "other-pre": 21,
    }
    assert allocate(10, {"target-post": 2, "target-pre": 1, "other-post": 3, "other-pre": 0}) == {
        "target-post": 2,
        "target-pre": 1,
        "other-post": 3,
        "other-pre": 0,
    }


def test_detection_power_matches_a_simulation():
    """The hypergeometric formula in docs/reliability.md against 20,000 simulated replays."""
    import random

    from runner.leaderboard.bundle import allowed_mismatches, detection_power

    rng = random.Random(7)
    for size, forged, drawn in ((82, 8, 13), (164, 16, 25), (300, 6, 50)):
        allowed = allowed_mismatches(drawn, 0.9)
        keys = list(range(size))
        caught = sum(sum(k < forged for k in rng.sample(keys, drawn)) > allowed for _ in range(20_000))
        assert abs(caught / 20_000 - detection_power(size, forged, drawn, allowed)) < 0.015


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_the_6_of_200_forgery_that_moves_gain_is_caught_by_replay(vat, board_env):
    """Issue 22.2: 6 rewritten rows moved gain and passed replay=50 in 10 of 10 seeds. Now: caught in 10 of 10.

    The forgery is made with the project's own code: the rows are rewritten consistently (text, rating,
    logprobs), the file hash and the claimed metrics recomputed, so every offline check passes.
    """
    from runner.leaderboard.bundle import (
        allowed_mismatches,
        compile_release,
        detection_power,
        metric_rows,
        replay,
        strata,
        verify_folder,
    )
    from runner.metrics.vat import to_json

    folder = _copy(board_env, "t-targeted")
    honest = {r["run_id"]: r["gain"] for r in json.loads((folder / "manifest.json").read_text())["metrics"]}

    def change(rows):
        hits = [
            r
            for r in rows
            if r["condition"] == "post" and r["target"] == "security" and r["value"] == "security"
        ]
        for r in hits[:6]:  # each pushed the way the target direction wants: express up, suppress down
            best = 5 if r["polarity"] == "express" else 1
            r["text"], r["rating"], r["logprobs"], r["expected_rating"] = str(best), best, None, None

    _edit(folder, change, fix_manifest=True)
    rp = compile_release(E.get_entry("test__mock-a"), E.get_release("t1"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["metrics"] = to_json(metric_rows(pq.read_table(folder / JUDGMENTS), rp))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    verdict, rp, table = verify_folder(folder, folder)
    assert verdict.ok, verdict.reasons  # every offline check passes
    forged = {r["run_id"]: r["gain"] for r in verdict.rows}
    moved = max(abs(forged[k] - honest[k]) for k in honest)
    assert moved > 0.1, moved  # the headline metric moved
    outcomes = [replay(rp, table, 50, seed=seed)["passed"] for seed in range(10)]
    assert outcomes == [False] * 10
    # Uniform sampling (the old replay) would have missed it: 6 forged keys among 300, 50 drawn, 5 allowed.
    assert detection_power(300, 6, 50, allowed_mismatches(50, 0.9)) < 0.001
    # Stratified: 13 of the 20 target-post keys (5 scenes × 2 actions × 2 runs) are replayed, 1 mismatch allowed.
    assert len(strata(rp)["target-post"]) == 20
    assert detection_power(20, 6, 13, allowed_mismatches(13, 0.9)) > 0.99


# ---------------------------------------------------------------- the adversarial bundle corpus (tests/e2e/bundles)

BUNDLE_CASES = sorted((ROOT / "tests" / "e2e" / "bundles").glob("*.yaml"))


def _apply_bundle_case(case: dict, folder: Path, tmp: Path, monkeypatch) -> Path:
    import os
    import tarfile

    import yaml  # noqa: F401 - the case was read with it

    if "manifest" in case:
        manifest = json.loads((folder / "manifest.json").read_text())
        for key, value in case["manifest"].items():
            if value is None:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))
    if "manifest_raw" in case:
        r = case["manifest_raw"]
        text = r.get("prefix", "") + (r["repeat"][0] * r["repeat"][1] if "repeat" in r else "")
        text += (r["suffix_repeat"][0] * r["suffix_repeat"][1] if "suffix_repeat" in r else "") + r.get(
            "suffix", ""
        )
        (folder / "manifest.json").write_text(text)
    if "judgments" in case:
        j = case["judgments"]
        path = folder / JUDGMENTS
        if "rows" in j:
            pq.write_table(pa.table({"x": pa.array([0] * j["rows"], pa.int8())}), path)
        else:
            table = pq.read_table(path)
            col = table.column(j["column"])
            new = pa.array([[v] for v in col.to_pylist()]) if j["as"] == "list" else col.cast(pa.string())
            pq.write_table(table.set_column(table.column_names.index(j["column"]), j["column"], new), path)
    if "symlink" in case:
        (folder / case["symlink"]["file"]).unlink()
        os.symlink(case["symlink"]["to"], folder / case["symlink"]["file"])
    if "archive" in case:
        a = case["archive"]
        archive = tmp / f"{folder.name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for i in range(a.get("members", 0)):
                info = tarfile.TarInfo(f"b/junk{i}")
                tar.addfile(info, io.BytesIO(b""))
            if "zeros" in a:
                tar.add(folder / "manifest.json", "b/manifest.json")
                info = tarfile.TarInfo(f"b/{a['member']}")
                info.size = a["zeros"]
                tar.addfile(info, io.BytesIO(b"\0" * a["zeros"]))
        if "limit" in a:
            monkeypatch.setattr("runner.leaderboard.bundle.files.MAX_MEMBER_BYTES", a["limit"])
        return archive
    return folder


@pytest.mark.parametrize("path", BUNDLE_CASES, ids=lambda p: p.stem)
def test_bundle_case(path, vat, board_env, monkeypatch):
    import yaml

    case = yaml.safe_load(path.read_text())
    folder = _copy(board_env, f"case-{path.stem}")
    target = _apply_bundle_case(case, folder, board_env["tmp"], monkeypatch)
    result = vat("verify", str(target), "format=json")
    text = result.out + result.err
    assert result.code == case["expect"]["exit"], text
    assert "Traceback" not in text, text
    for needle in case["expect"]["messages"]:
        assert needle in text, (needle, text)


def test_one_bad_bundle_does_not_stop_the_site_build(vat, board_env, tmp_path):
    """Before: one malformed bundle under leaderboard/submissions/ crashed the whole build."""
    subs = board_env["board"] / "submissions"
    good, bad = subs / "good", subs / "bad"
    shutil.rmtree(good, ignore_errors=True)
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(board_env["folder"], good)
    shutil.copytree(board_env["folder"], bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["metrics"] = 5
    (bad / "manifest.json").write_text(json.dumps(manifest))
    try:
        result = vat("leaderboard", "build", "release=t1", f"out={tmp_path / 'site'}", "store=false")
        text = result.out + result.err
        assert result.code == 0 and "Traceback" not in text, text
        assert "bad" in text and "metrics must be a JSON list" in text, text
        assert (tmp_path / "site" / "index.html").exists()
        # ... but a build that drops EVERY bundle fails instead of publishing an empty board.
        shutil.rmtree(good)
        result = vat("leaderboard", "build", "release=t1", f"out={tmp_path / 'site2'}", "store=false")
        assert (
            result.code == 1 and "every bundle was left out of the site (1 failed verification" in result.err
        ), result.err
        assert not (tmp_path / "site2").exists()
    finally:
        shutil.rmtree(good, ignore_errors=True)
        shutil.rmtree(bad)


def test_bundle_and_site_build_survive_a_store_with_one_aborted_run(vat, board_env, tmp_path):
    """Issue 22.4: one aborted run (recorded, never answered) in the store crashed `vat bundle` and the build."""
    store, con = _store_copy(board_env, tmp_path / "aborted.duckdb")
    con.execute(
        "INSERT INTO runs SELECT 'aborted0001', created_at, 'mock/never', strategy, target, direction, split, "
        "n_scenes, config, provenance FROM runs LIMIT 1"
    )
    con.execute(
        "INSERT INTO requests SELECT * REPLACE ('k-aborted' AS request_key, 'mock/never' AS model) "
        "FROM requests LIMIT 1"
    )
    con.execute("INSERT INTO run_requests VALUES ('aborted0001', 'k-aborted', 'pre', NULL)")
    con.close()
    out = tmp_path / "b"
    result = vat("bundle", "entry=test__mock-a", "release=t1", f"store.path={store}", f"out={out}")
    assert result.code == 0 and "Traceback" not in result.err, result.err
    result = vat("leaderboard", "build", "release=t1", f"store.path={store}", f"out={tmp_path / 'site'}")
    assert result.code in (0, 1) and "Traceback" not in result.out + result.err, result.out + result.err


def test_a_replay_that_got_no_answers_says_why():
    """Before: an unreachable replay endpoint said only "only 0 of 5 replayed requests were answered"."""
    from runner.cli.leaderboard import _replay_problem

    stopped = "cannot reach http://127.0.0.1:9/v1: 10 attempts failed (ConnectError) and none succeeded"
    r = {"answered": 0, "requested": 5, "stopped": stopped, "errors_by_kind": {"ConnectError": 10}}
    assert _replay_problem(r) == f"only 0 of 5 replayed requests were answered: {stopped}"
    r = {"answered": 3, "requested": 5, "stopped": None, "errors_by_kind": {"Timeout": 4, "BadRequest": 2}}
    assert _replay_problem(r).endswith(": failed attempts: 2 BadRequest, 4 Timeout")
