"""`vat report format=results`: the versioned results document and its JSON Schema (issue 20, item 2)."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.metrics import results_doc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sim-judge family: fewshot_2 and fewshot_4 on security, 5 scenes each."""
    from runner.cli.app import main

    path = str(tmp_path_factory.mktemp("results") / "vat.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for strategy in ("fewshot_2", "fewshot_4"):
            args = [f"strategy={strategy}", "target=security", "selection.max_scenes=5"]
            assert (
                main(
                    ["run", "model.name=sim/circle", *args, f"store.path={path}", "execution.progress=false"]
                )
                == 0
            )
    yield path


def _report(vat: Any, *args: str) -> dict[str, Any]:
    result = vat("report", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_a_real_report_validates_against_the_schema(vat: Any, store: str) -> None:
    doc = _report(vat, f"store.path={store}", "format=results")
    assert doc["schema"] == "vat-bench/results" and doc["schema_version"] == 1
    assert results_doc.problems(doc) == []
    assert len(doc["rows"]) == 2 and len(doc["families"]) == 1
    prov = doc["provenance"]
    assert [r["run_id"] for r in prov["runs"]] == [r["run_id"] for r in doc["rows"]]
    assert all(r["provenance"]["overrides"] for r in prov["runs"])  # what `vat run` recorded
    assert prov["values"] == list(doc["rows"][0]["vat"]) and prov["metrics"]["bootstrap_b"] > 0


def test_the_document_carries_every_field_of_format_json(vat: Any, store: str) -> None:
    doc = _report(vat, f"store.path={store}", "format=results")
    plain = _report(vat, f"store.path={store}", "format=json")
    assert doc["rows"] == plain["rows"] and doc["families"] == plain["families"]
    row = doc["rows"][0]
    assert row["null"]["nvat"]["p"] is not None and "nvat_ci" in row and "gain_ci" in row
    # Every field is documented in the schema: a new metric must be described there too.
    defs = results_doc.schema()["$defs"]
    assert set(row) <= set(defs["row"]["properties"]), set(row) - set(defs["row"]["properties"])
    assert set(doc["families"][0]) <= set(defs["family"]["properties"])


def test_filters_reach_the_provenance(vat: Any, store: str) -> None:
    doc = _report(vat, f"store.path={store}", "format=results", "strategy=fewshot_4")
    assert doc["provenance"]["filters"] == {"strategy": ["fewshot_4"]}
    assert [r["strategy"] for r in doc["rows"]] == ["fewshot_4"] and doc["families"] == []
    assert results_doc.problems(doc) == []


def test_the_schema_rejects_broken_documents(vat: Any, store: str) -> None:
    doc = _report(vat, f"store.path={store}", "format=results")
    cases: list[tuple[str, Any]] = [
        ("schema_version", lambda d: d.update(schema_version=2)),
        ("rows/0", lambda d: d["rows"][0].pop("gain")),
        ("rows/0/gain_ci", lambda d: d["rows"][0].update(gain_ci=[0.1, 0.2, 0.3])),
        ("rows/0/nvat", lambda d: d["rows"][0].update(nvat="1.2")),
        ("families/0/pareto/k=2", lambda d: d["families"][0]["pareto"].update({"k=2": "yes"})),
        ("provenance", lambda d: d["provenance"].pop("runs")),
    ]
    for where, breaks in cases:
        bad = copy.deepcopy(doc)
        breaks(bad)
        found = results_doc.problems(bad)
        assert found and found[0].startswith(where), (where, found)
