"""`vat report format=eee`: Every Eval Ever records of a report (issue 20, item 2)."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.report import eee

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("sim/circle", "sim/no_offtarget")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two simulated judges on fewshot_2 × security, 10 scenes each (enough for every interval)."""
    from runner.cli import main

    path = str(tmp_path_factory.mktemp("eee") / "vat.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for model in MODELS:
            args = ["strategy=fewshot_2", "target=security", "selection.max_scenes=10"]
            assert (
                main(["run", f"model.name={model}", *args, f"store.path={path}", "execution.progress=false"])
                == 0
            )
    yield path


def _json(vat: Any, *args: str) -> Any:
    result = vat("report", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_one_valid_record_per_model(vat: Any, store: str) -> None:
    recs = _json(vat, f"store.path={store}", "format=eee")
    assert [r["model_info"]["id"] for r in recs] == list(MODELS)
    for rec in recs:
        assert eee.problems(rec) == []
        assert rec["schema_version"] == eee.EEE_SCHEMA_VERSION
        assert rec["source_metadata"]["source_type"] == "evaluation_run"
        assert rec["eval_library"]["name"] == "vat-bench"
        names = [r["evaluation_name"] for r in rec["evaluation_results"]]
        assert len(names) == len(set(names)) == len(eee.METRICS)  # one row per model here
        assert rec["model_info"]["developer"] == "sim"


def test_scores_and_intervals_are_the_report_s(vat: Any, store: str) -> None:
    """Every exported score is the row's number, and every interval the row has is carried unchanged."""
    doc = _json(vat, f"store.path={store}", "format=results")
    recs = _json(vat, f"store.path={store}", "format=eee")
    carried = 0
    for row, rec in zip(doc["rows"], recs, strict=True):
        by_metric = {r["metric_config"]["additional_details"]["metric"]: r for r in rec["evaluation_results"]}
        for m in eee.METRICS:
            res = by_metric[m.key]
            assert res["score_details"]["score"] == row[m.key]
            assert res["score_details"]["details"]["run_id"] == row["run_id"]
            assert res["metric_config"]["min_score"] <= row[m.key] <= res["metric_config"]["max_score"]
            ci = res["score_details"]["uncertainty"].get("confidence_interval")
            if m.interval is None:
                assert ci is None
                continue
            assert [ci["lower"], ci["upper"]] == row[m.interval]
            assert ci["confidence_level"] == row["params"]["ci_level"]
            carried += 1
        # the null-calibration facts ride along as strings
        assert by_metric["nvat"]["score_details"]["details"]["null_p"] == str(row["null"]["nvat"]["p"])
        assert by_metric["nvat_corrected"]["score_details"]["details"]["beats_null"] in ("true", "false")
    assert carried == 2 * 4  # gain, nVAT, rho_rms and Gini intervals of both rows


def test_filters_and_an_empty_store(vat: Any, store: str, tmp_path: Path) -> None:
    recs = _json(vat, f"store.path={store}", "format=eee", "report.model=sim/circle")
    assert [r["model_info"]["id"] for r in recs] == ["sim/circle"]
    assert json.loads(recs[0]["source_metadata"]["additional_details"]["filters"]) == {
        "model": ["sim/circle"]
    }
    from runner.store.store import open_store

    with open_store(str(tmp_path / "empty.duckdb")):
        pass  # a store with no runs yet: an empty list, still exit 0
    assert _json(vat, f"store.path={tmp_path / 'empty.duckdb'}", "format=eee") == []


def test_an_undefined_metric_is_left_out_and_a_missing_interval_said(vat: Any, store: str) -> None:
    doc = _json(vat, f"store.path={store}", "format=results")
    doc["rows"][0]["gain"] = None  # e.g. NaN in the store: EEE needs a number
    doc["rows"][0]["nvat_ci"] = [None, None]
    rec = eee.records(doc)[0]
    metrics = [r["metric_config"]["additional_details"]["metric"] for r in rec["evaluation_results"]]
    assert "gain" not in metrics and len(metrics) == len(eee.METRICS) - 1
    nv = next(r for r in rec["evaluation_results"] if r["evaluation_name"].startswith("nvat_corrected"))
    assert "confidence_interval" not in nv["score_details"]["uncertainty"]
    assert "not computable" in nv["score_details"]["details"]["interval"]
    assert eee.problems(rec) == []


def test_the_schema_facts_reject_broken_records(vat: Any, store: str) -> None:
    good = _json(vat, f"store.path={store}", "format=eee")[0]
    cases: list[tuple[str, Any]] = [
        ("(top)", lambda r: r.pop("eval_library")),
        ("(top)", lambda r: r.update(extra=1)),
        ("source_metadata/source_type", lambda r: r["source_metadata"].update(source_type="run")),
        (
            "evaluation_results/0/metric_config",
            lambda r: r["evaluation_results"][0]["metric_config"].pop("max_score"),
        ),
        (
            "evaluation_results/0/score_details/details/run_id",
            lambda r: r["evaluation_results"][0]["score_details"]["details"].update(run_id=3),
        ),
        (
            "evaluation_results/0/score_details/uncertainty/confidence_interval",
            lambda r: r["evaluation_results"][0]["score_details"]["uncertainty"]["confidence_interval"].pop(
                "upper"
            ),
        ),
        (
            "evaluation_results/0/score_details/score",
            lambda r: r["evaluation_results"][0]["score_details"].update(score=None),
        ),
    ]
    for where, spoil in cases:
        bad = copy.deepcopy(good)
        spoil(bad)
        found = eee.problems(bad)
        assert any(p.startswith(where) for p in found), (where, found)
