"""runner.api: the verbs as calls that return data; the CLI prints the same numbers."""

import json
from pathlib import Path

import pytest

from runner import api
from runner.core.errors import VatError
from runner.metrics import results_doc

ROOT = Path(__file__).resolve().parent.parent
RUN = ["model.name=sim/circle", "strategy=fewshot_4", "target=security", "selection.max_scenes=4"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("api") / "vat.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        before = api.plan(*RUN, f"store.path={store}")
        summary = api.run(*RUN, f"store.path={store}", "execution.progress=false")
        after = api.plan(*RUN, f"store.path={store}")
    return store, before, summary, after


def test_run_sends_what_plan_said_and_a_second_plan_has_nothing_left(ran):
    store, before, summary, after = ran
    assert summary["exit_code"] == 0 and summary["store"] == str(store)
    assert before["to_send"] == summary["sent"] == summary["answered"] > 0 and before["stored"] == 0
    assert after["to_send"] == 0 and after["stored"] == before["requests"]
    assert summary["run_id"] == before["run_id"]


def test_report_rows_are_the_cli_report_rows(ran, vat, monkeypatch):
    store, *_ = ran
    monkeypatch.chdir(ROOT)
    rows = api.report(f"store.path={store}", target="security")
    cli = vat("report", f"store.path={store}", "format=json")
    assert cli.code == 0, cli.err
    cli_rows = json.loads(cli.out)["rows"]
    assert len(rows) == 1 and rows[0]["run_id"] == cli_rows[0]["run_id"]
    for key in ("nvat", "nvat_corrected", "gain"):
        assert rows[0][key] == pytest.approx(cli_rows[0][key]), key
    assert api.report(f"store.path={store}", target="power") == []  # the filter filters


def test_results_is_a_valid_versioned_document(ran, monkeypatch):
    store, *_ = ran
    monkeypatch.chdir(ROOT)
    doc = api.results(f"store.path={store}", strategy=["fewshot_4"])
    assert results_doc.problems(doc) == []
    assert doc["provenance"]["filters"] == {"strategy": ["fewshot_4"]} and len(doc["rows"]) == 1


def test_validate_returns_the_problems_the_cli_prints(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert api.validate("spec") == []
    assert api.validate(str(tmp_path / "nowhere")) != []


def test_a_bad_override_or_filter_is_a_one_sentence_error(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(VatError, match="model.nmae"):
        api.plan("model.nmae=x")
    with pytest.raises(VatError, match="unknown report filter"):
        api.report("store.path=x.duckdb", taget="security")
