"""Verbs and messages of issue 21 (items 6 and 8): `vat leaderboard plan` prices a whole release,
`vat run -m ... format=json` gives one JSON document, sweep jobs are listed in numeric order, and
`vat validate` counts leaderboard problems under leaderboard/, not spec/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.leaderboard_board import make_board, pins, write

ROOT = Path(__file__).resolve().parents[2]


def test_leaderboard_plan_prices_every_condition_with_the_pre_condition_once(vat, tmp_path, monkeypatch):
    board = make_board(tmp_path / "lb", pins())  # t1: 5 test scenes, fewshot_2 × 2 targets
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    store = f"store.path={tmp_path / 'none' / 'vat.duckdb'}"
    result = vat("leaderboard", "plan", "entry=test__mock-a", "release=t1", store, "format=json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    rows, total = doc["conditions"], doc["total"]
    # Per condition: 5 scenes × 20 actions, pre and post = 200 requests; the 100 pre keys are shared.
    assert [(r["strategy"], r["target"], r["requests"]) for r in rows] == [
        ("fewshot_2", "security", 200),
        ("fewshot_2", "power", 200),
    ]
    assert total["conditions"] == 2 and total["scenes"] == 5
    assert total["shared_pre"] == 100 and total["requests"] == total["to_send"] == 300
    one = vat("leaderboard", "plan", "entry=test__mock-a", "release=t1", "target=power", store, "format=json")
    assert one.code == 0, one.err
    power = json.loads(one.out)["total"]
    assert power["requests"] == 200
    # Tokens: both conditions minus the pre condition counted twice (pre = both totals' overlap).
    security = rows[0]["est_prompt_tokens"]
    pre_tokens = security + power["est_prompt_tokens"] - total["est_prompt_tokens"]
    assert 0 < pre_tokens < security
    table = vat("leaderboard", "plan", "entry=test__mock-a", "release=t1", store)
    assert table.code == 0 and "total, each key once (100 pre requests shared)" in table.out
    bad = vat("leaderboard", "plan", "entry=test__mock-a", "release=t1", "strategy=fewshot_9", store)
    assert bad.code == 2 and "no condition of release t1 matches strategy=fewshot_9" in bad.err


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
def test_run_multirun_takes_format_json(vat, tmp_path):
    result = vat(
        "run",
        "-m",
        "model.name=mock/a",
        "strategy=fewshot_2,system_prompt",
        "selection.max_scenes=1",
        f"store.path={tmp_path / 'vat.duckdb'}",
        "execution.progress=false",
        "format=json",
    )
    assert result.code == 0, result.err
    doc = json.loads(result.out)  # exactly one document
    assert [j["strategy"] for j in doc["jobs"]] == ["fewshot_2", "system_prompt"]
    assert doc["rc"] == 0 and doc["failed"] == 0 and doc["jobs"][0]["answered"] == 40


def test_sweep_table_lists_jobs_in_numeric_order(capsys):
    from runner.sweep.app import _print_sweep_table

    jobs = [
        {"job": job, "overrides": [f"seed={job}"], "rc": 0} for job in (3, 11, 0, 10, 1, 2, 4, 5, 6, 7, 8, 9)
    ]
    _print_sweep_table(jobs)
    err = capsys.readouterr().err
    order = [int(line.split("│")[1]) for line in err.splitlines() if line.startswith("│")]
    assert order == list(range(12)), order


def test_validate_counts_leaderboard_problems_under_leaderboard(vat, tmp_path, monkeypatch):
    board = make_board(tmp_path / "lb", pins())
    write(board / "entries" / "org__bad.yaml", "model: mock/a\ndisplay_name: x\n")
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    result = vat("validate")
    assert result.code == 1
    lines = result.out.splitlines()
    n_board = sum(1 for line in lines if line.startswith("lb/"))
    n_spec = sum(1 for line in lines if line.startswith("spec/"))
    assert n_board >= 1 and n_board + n_spec == len(lines)
    spec_part = f"{n_spec} in spec/, " if n_spec else ""
    assert f"error: {n_board + n_spec} problem(s): {spec_part}{n_board} in lb/" in result.err, result.err
