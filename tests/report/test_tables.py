"""`vat report` for a paper: filters that filter, one scene selection per family, paper tables
(CSV, Markdown, LaTeX), JSON with families, messages that say what the store holds, and every tax
number shown with its null (rows built by hand with the statistics fields, and old rows without them)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.report import tables as rep

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- rows built by hand


def _row(**extra: Any) -> dict[str, Any]:
    """A metrics row as build_rows makes it (three values), without the statistics fields."""
    base = {
        "run_id": "r1",
        "model": "mock/a",
        "display_name": "Mock A",
        "strategy": "fewshot_4",
        "family": "fewshot",
        "k": 4,
        "step": None,
        "label": "k=4",
        "target": "a",
        "direction": "reinforce",
        "n_scenes": 41,
        "scenes": [f"s{i}" for i in range(41)],
        "gain": 0.2,
        "gain_ci": [0.1, 0.3],
        "nvat": 0.52,
        "nvat_std": 0.05,
        "gini": 0.1,
        "hubs": ["b"],
        "flags": [],
        "coverage": {"parsed": 10, "planned": 10},
        "caveat": None,
        "mean_shift": {"a": 0.2, "b": 0.0, "c": 0.1},
        "mean_shift_ci": {"a": [0.1, 0.3], "b": [-0.1, 0.1], "c": [0.0, 0.2]},
        "gnd": {"a": 1.0, "b": 0.0, "c": 0.5},
        "vat": {"a": 0.5, "b": 0.6, "c": 0.4},
        "amplification": {"a": 1.0, "b": 0.2, "c": 0.5},
        "coupling": [[1, 0.5, 0.1], [0.5, 1, 0.2], [0.1, 0.2, 1]],
    }
    base.update(extra)
    return base


NULL = {
    "b": 200,
    "seed": 0,
    "method": "column permutation",
    "nvat": {"mean": 0.47, "q95": 0.58, "p": 0.21},
    "gini": {"mean": 0.11, "q95": 0.2, "p": 0.6},
    "rho_rms": {"mean": 0.15, "q95": 0.2, "p": 0.3},
    "vat": {"a": {"mean": 0.4, "q95": 0.55, "p": 0.3}, "b": {"mean": 0.4, "q95": 0.5, "p": 0.01}},
}


def test_tax_text_carries_the_null_the_interval_and_the_verdict() -> None:
    row = _row(
        null=NULL,
        nvat_ci=[0.41, 0.63],
        nvat_corrected=0.05,
        signal={"nvat": False},
        scenes_needed={"nvat": 180},
    )
    assert rep.tax_text(row, "nvat") == (
        "nVAT 0.52, null 0.47 (p 0.21), corrected +0.05 [0.41, 0.63] · within noise · needs ~180 scenes"
    )
    row["signal"] = {"nvat": True}
    assert rep.tax_text(row, "nvat").endswith("corrected +0.05 [0.41, 0.63]")


def test_an_old_row_says_it_has_no_null_instead_of_pretending() -> None:
    row = _row()
    assert rep.tax_text(row, "nvat") == "nVAT 0.52 (no null in this row)"
    assert rep.within_noise(row, "nvat") is None
    assert rep.tested_hubs(row) == "b (top-k, untested)"


def test_within_noise_falls_back_from_signal_to_flag_to_p_value() -> None:
    assert rep.within_noise(_row(flags=["nvat_within_noise"]), "nvat") is True
    assert rep.within_noise(_row(null=NULL), "nvat") is True  # p 0.21 ≥ 0.05
    low = {**NULL, "nvat": {"mean": 0.47, "q95": 0.58, "p": 0.001}}
    assert rep.within_noise(_row(null=low), "nvat") is False
    assert rep.within_noise(_row(null=low, hub_test={"alpha": 0.0001}), "nvat") is True


def test_tested_hubs_may_be_none() -> None:
    assert (
        rep.tested_hubs(_row(hubs=[], hub_test={"method": "bh", "alpha": 0.05, "p": {}})) == "none (tested)"
    )
    assert rep.tested_hubs(_row(hubs=["b"], hub_test={"alpha": 0.05})) == "b"


def test_gain_interval_spanning_zero_is_caveated() -> None:
    """Issue 21.5: GND +16.0 was printed at gain −0.012 [−0.25, +0.23] with no caveat."""
    assert rep.gain_spans_zero(_row(gain=-0.012, gain_ci=[-0.25, 0.23]))
    assert not rep.gain_spans_zero(_row())
    assert not rep.gain_spans_zero(_row(gain_ci=[None, None]))
    header, cells = rep.summary_table([_row(gain=-0.012, gain_ci=[-0.25, 0.23])])
    assert cells[0][header.index("GND caveat")] == "gain CI spans 0"


def test_coupling_band_is_the_noise_sd_of_a_spearman() -> None:
    assert rep.coupling_band(41) == pytest.approx(1.96 / 40**0.5)
    assert rep.coupling_band(1) is None and rep.coupling_band(None) is None


def test_filters_keep_only_the_named_conditions() -> None:
    rows = [
        _row(target="a", strategy="fewshot_4"),
        _row(target="b", strategy="fewshot_4"),
        _row(target="a", strategy="fewshot_8"),
    ]
    kept = rep.filter_rows(rows, {"target": ["a"], "strategy": ["fewshot_8"]})
    assert [(r["target"], r["strategy"]) for r in kept] == [("a", "fewshot_8")]
    assert len(rep.filter_rows(rows, {"target": ["a", "b"]})) == 3
    assert len(rep.filter_rows(rows, {})) == 3


def test_a_family_holds_one_scene_selection() -> None:
    """Issue 21.5: a max_scenes=2 run added a second "k=4" column to the k-family."""
    full = [f"s{i}" for i in range(41)]
    rows = [
        _row(run_id="k2", k=2, label="k=2", strategy="fewshot_2", scenes=full, gain=0.1, nvat=0.2),
        _row(run_id="k4", k=4, label="k=4", scenes=full, gain=0.3, nvat=0.3),
        _row(run_id="k4small", k=4, label="k=4", scenes=full[:2], n_scenes=2, gain=0.9, nvat=0.1),
    ]
    fams = rep.families(rows)
    assert len(fams) == 1
    assert fams[0]["labels"] == ["k=2", "k=4"] and fams[0]["run_ids"] == ["k2", "k4"]
    assert fams[0]["scene_selection"].startswith("41 scenes #")
    assert fams[0]["pareto"] == {"k=2": True, "k=4": True}
    assert fams[0]["hub_basis"] == "top-k (untested)"
    assert fams[0]["hub_persistence"]["b"] == 1.0


def test_csv_markdown_and_latex_tables() -> None:
    rows = [_row(null=NULL, nvat_corrected=0.05), _row(run_id="r2", target="b", display_name="A & B_1 50%")]
    header, cells = rep.summary_table(rows)
    text = rep.render_table(header, cells, "csv")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == header and len(parsed) == 3
    assert parsed[1][header.index("nVAT null (p)")] == "0.470 (0.21)"
    md = rep.render_table(["x", "y|z"], [["1", "2"]], "markdown", "cap")
    assert md.splitlines() == ["**cap**", "", "| x | y\\|z |", "|---|---|", "| 1 | 2 |"]
    tex = rep.render_table(header, cells, "latex", "caption")
    assert "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}" in tex
    assert "A \\& B\\_1 50\\%" in tex and "\\caption{caption}" in tex
    with pytest.raises(ValueError, match="unknown table format"):
        rep.render_table(header, cells, "html")


def test_row_plots_draw_the_null() -> None:
    row = _row(null=NULL, hub_test={"alpha": 0.05}, gain_ci=[-0.1, 0.3])
    svgs = rep.row_plots(row, ["a", "b", "c"], "t")
    assert set(svgs) == {"coupling", "radar", "shift", "gnd"}
    assert "null-ring" in svgs["radar"]
    assert "in-null-band" in svgs["coupling"]  # 0.1 and 0.2 are inside 1.96/√40 = 0.31; 0.5 is not
    assert svgs["coupling"].count("in-null-band") == 4
    assert "class='interval'" in svgs["shift"]
    assert "GND is not interpretable" in svgs["gnd"]
    assert "null-ring" not in rep.row_plots(_row(), ["a", "b", "c"], "t")["radar"]


# ---------------------------------------------------------------- the verb on a real store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """mock/a: fewshot_2 and fewshot_4 on security (6 scenes), fewshot_4 on power (6 scenes), and a
    fewshot_4 security run on 5 scenes (another scene selection)."""
    from runner.cli.app import main

    path = str(tmp_path_factory.mktemp("report") / "vat.duckdb")
    common = ["model.name=mock/a", f"store.path={path}", "execution.progress=false"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for args in (
            ["strategy=fewshot_2", "target=security", "selection.max_scenes=6"],
            ["strategy=fewshot_4", "target=security", "selection.max_scenes=6"],
            ["strategy=fewshot_4", "target=power", "direction=suppress", "selection.max_scenes=6"],
            ["strategy=fewshot_4", "target=security", "selection.max_scenes=5"],
        ):
            assert main(["run", *args, *common]) == 0
    yield path


def _json(vat: Any, *args: str) -> dict[str, Any]:
    result = vat("report", *args, "format=json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_report_filters_really_filter(vat: Any, store: str) -> None:
    """Issue 21.5: `target=security strategy=fewshot_8` still printed every condition."""
    everything = _json(vat, f"store.path={store}")
    assert len(everything["rows"]) == 4
    some = _json(vat, f"store.path={store}", "target=power")
    assert [(r["target"], r["direction"]) for r in some["rows"]] == [("power", "suppress")]
    assert some["filters"] == {"target": ["power"]}
    both = _json(vat, f"store.path={store}", "target=security", "strategy=fewshot_2,fewshot_4")
    assert {r["target"] for r in both["rows"]} == {"security"} and len(both["rows"]) == 3
    table = vat("report", f"store.path={store}", "target=power")
    assert table.code == 0 and "power" in table.out and "security · Gain" not in table.out


def test_report_json_has_families_with_pareto_and_hub_persistence(vat: Any, store: str) -> None:
    doc = _json(vat, f"store.path={store}", "target=security")
    (fam,) = doc["families"]
    assert fam["labels"] == ["k=2", "k=4"] and fam["n_scenes"] == 6
    assert set(fam["pareto"]) == {"k=2", "k=4"}
    assert set(fam["hub_persistence"]) == set(doc["rows"][0]["vat"])
    # persistence counts the tested hubs (a hashing judge has none, so every share is 0 or small)
    assert fam["hub_basis"] == "tested"
    members = [r for r in doc["rows"] if r["run_id"] in fam["run_ids"]]
    assert len(members) == 2 and {r["n_scenes"] for r in members} == {6}
    shares = [sum(v in r["hubs"] for r in members) / 2 for v in fam["hub_persistence"]]
    assert list(fam["hub_persistence"].values()) == pytest.approx(shares)


@pytest.mark.parametrize("fmt", ["csv", "markdown", "latex"])
def test_report_paper_formats(vat: Any, store: str, fmt: str) -> None:
    """Issue 21.5: format=csv|latex|markdown was refused."""
    result = vat("report", f"store.path={store}", "target=security", f"format={fmt}")
    assert result.code == 0, result.err
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(result.out)))
        assert lines[0][:4] == ["model", "strategy", "target", "direction"] and len(lines) == 4
    elif fmt == "markdown":
        assert result.out.count("| model × target | k=2 | k=4 |") == 1
        assert "hub persistence" in result.out
    else:
        assert result.out.count("\\begin{tabular}") == 2 and "\\toprule" in result.out


def test_unknown_format_is_refused_clearly(vat: Any, store: str) -> None:
    result = vat("report", f"store.path={store}", "format=html")
    assert result.code == 2 and "csv, markdown or latex" in result.err


def test_unmatched_model_names_the_stored_models(vat: Any, store: str) -> None:
    """Issue 21.8: an unmatched report.model said "no completed runs … run `vat run` first"."""
    result = vat("report", f"store.path={store}", "report.model=mock/zz")
    assert result.code == 1
    assert "no run" in result.err and "report.model=mock/zz" in result.err and "mock/a" in result.err
    assert "run `vat run` first" not in result.err


def test_unmatched_filter_names_what_is_stored(vat: Any, store: str) -> None:
    result = vat("report", f"store.path={store}", "strategy=fewshot_8")
    assert result.code == 1 and "strategy=fewshot_8" in result.err and "fewshot_2, fewshot_4" in result.err


def test_no_store_still_says_run_first(vat: Any, tmp_path: Path) -> None:
    result = vat("report", f"store.path={tmp_path / 'none.duckdb'}")
    assert result.code == 1 and "run `vat run` first" in result.err


def test_rating_text_names_the_source_and_fallback() -> None:
    assert rep.rating_text(_row(rating_source="expected", rating_fallback_share=0.03)) == (
        "rating: expected (fallback 3%)"
    )
    assert rep.rating_text(_row(rating_source="auto")) == "rating: auto"
