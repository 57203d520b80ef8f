"""`vat figures`: the paper's figures as print-size PDF and PNG with intervals (issue 20, item 4).

The drawing tests need matplotlib (the `figures` extra) and are slow (three simulated runs): `make
test-slow` installs the extra and runs them. The missing-extra message is checked everywhere.
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.specs import SPEC

ROOT = Path(__file__).resolve().parents[2]


def test_without_matplotlib_one_line_names_the_extra(vat, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = vat("figures", "store.path=results/none.duckdb", "out=results/none")
    assert result.code == 2
    assert result.err.strip().count("\n") == 0, result.err
    assert "vat-bench[figures]" in result.err and "matplotlib" in result.err


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """sim/circle on fewshot_2, _4, _8 × security, 12 scenes (a family of three), sim/no_offtarget on
    fewshot_2, and sim/circle on fewshot_2 × power (two targets of one strategy: a target × value panel)."""
    from runner.cli import main

    path = str(tmp_path_factory.mktemp("figures") / "vat.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        runs: list[tuple[str, ...]] = [("sim/circle", s) for s in ("fewshot_2", "fewshot_4", "fewshot_8")]
        runs.append(("sim/no_offtarget", "fewshot_2"))
        runs.append(("sim/circle", "fewshot_2", "power"))
        for model, s, *target in runs:
            args = [f"strategy={s}", f"target={(target or ['security'])[0]}", "selection.max_scenes=12"]
            args.append("execution.progress=false")
            assert main(["run", f"model.name={model}", *args, f"store.path={path}"]) == 0
    yield path


@pytest.mark.slow
def test_every_figure_is_written_as_pdf_and_png_at_print_size(vat, store, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from runner.report.figures import paper

    out = tmp_path / "fig"
    result = vat("figures", f"store.path={store}", f"out={out}", "format=json")
    assert result.code == 0, result.err
    files = [Path(p) for p in json.loads(result.out)["files"]]
    stems = {p.with_suffix("") for p in files}
    assert len(files) == 2 * len(stems) and all(p.stat().st_size > 0 for p in files)
    kinds = sorted("models" if s.name.startswith("models__") else s.name.rsplit("__", 1)[1] for s in stems)
    want = ["coupling"] * 5 + ["gnd"] * 5 + ["models"] + ["radar"] * 5 + ["targets", "trajectory"]
    assert kinds == want
    for stem in stems:
        assert stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        with Image.open(stem.with_suffix(".png")) as im:  # 300 dpi: 3.3 in single column, 6.9 in double
            width, height = im.size
            if stem.name.startswith("models__"):  # fewshot_2 on two models: the cross-model panel
                assert abs(width - paper.DOUBLE * paper.DPI) <= 2 and height < width / 3, (stem.name, im.size)
                continue
            if stem.name.endswith("__targets"):  # fewshot_2 on two targets: the target × value panel
                assert abs(width - paper.DOUBLE * paper.DPI) <= 2 and height < width / 2, (stem.name, im.size)
                continue
            assert abs(width - paper.SINGLE * paper.DPI) <= 2, (stem.name, im.size)
            assert 0.5 * width < height < 1.2 * width


@pytest.mark.slow
def test_the_figures_carry_the_intervals(store) -> None:
    pytest.importorskip("matplotlib")
    from runner.report.figures import paper
    from runner.report.tables import build_rows, families, family_members
    from runner.spec.load import load_index
    from runner.store.store import open_store

    index = load_index(SPEC, check_lock=False)
    params = {"seed": 0}
    with open_store(store, read_only=True) as s:
        rows = build_rows(s, index.value_ids, params)
    names = {v.id: v.name for v in index.values}
    row = rows[0]
    g = abs(row["gain_raw"])

    fig = paper.gnd_figure(row, index.value_ids, names)
    ax = fig.axes[0]
    whiskers = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"][0]
    ends = sorted((min(seg[:, 0]), max(seg[:, 0])) for seg in whiskers.get_segments())
    expected = sorted((lo / g, hi / g) for lo, hi in (row["mean_shift_ci"][v] for v in index.value_ids))
    assert [x for e in ends for x in e] == pytest.approx(
        [x for e in expected for x in e]
    )  # each whisker is m(w)'s interval over |gain|

    title = paper.heatmap_figure(row, index.value_ids, names)._suptitle.get_text()
    lo, hi = row["nvat_ci"]
    assert f"[{lo:.2f}, {hi:.2f}]" in title and f"{row['nvat_corrected']:.2f}" in title

    fam = families(rows)[0]
    members = family_members(rows, fam)
    ax = paper.trajectory_figure(members, fam).axes[0]
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    got = sorted((min(b.get_segments()[0][:, 1]), max(b.get_segments()[0][:, 1])) for b in bars)
    want = sorted(tuple(m["gain_ci"]) for m in members)
    assert [x for e in got for x in e] == pytest.approx([x for e in want for x in e])
    filled = [ln for ln in ax.lines if ln.get_marker() == "o" and ln.get_xdata().size == 1]
    assert sum(ln.get_markerfacecolor() != "white" for ln in filled) == sum(fam["pareto"].values())

    two = [r for r in rows if r["strategy"] == "fewshot_2"]
    left, right = paper.models_figure(two).axes
    for ax, key in ((left, "gain_ci"), (right, "nvat_ci")):
        spans = sorted(
            tuple(ln.get_xdata())
            for ln in ax.lines
            if ln.get_linestyle() == "-" and ln.get_color() == paper.MAIN
        )
        want = sorted(tuple(r[key]) for r in two)
        assert [x for e in spans for x in e] == pytest.approx([x for e in want for x in e])

    radar = paper.radar_figure(row, index.value_ids, names).axes[0]
    floor = [p for p in radar.patches if p.get_label().startswith("null 95th")]
    assert floor  # the noise floor polygon is drawn
    import matplotlib.pyplot as plt

    plt.close("all")


# ---------------------------------------------------------------- the target × value panel (no store needed)

VALUES = ["a", "b", "c", "d"]


def _row(target: str, direction: str = "reinforce", n_scenes: int = 12, **extra: object) -> dict:
    shift = {"a": 0.30, "b": -0.12, "c": 0.02, "d": None}
    cis = {"a": [0.25, 0.35], "b": [-0.2, -0.04], "c": [-0.05, 0.09]}
    row = {"model": "m", "display_name": "M", "strategy": "fewshot_4", "label": "k=4", "step": None}
    row |= {"variant": None, "target": target, "direction": direction, "n_scenes": n_scenes}
    return row | {"mean_shift": shift, "mean_shift_ci": cis} | extra


def test_panel_groups_one_row_per_target_in_circle_order() -> None:
    from runner.report.figures.panels import panel_groups

    rows = [_row("c"), _row("a"), _row("a", n_scenes=40), _row("a", "suppress"), _row("b", strategy="other")]
    (group,) = panel_groups(rows, VALUES)  # "other" has one target: no panel
    assert [(r["target"], r["direction"], r["n_scenes"]) for r in group] == [
        ("a", "reinforce", 40),
        ("a", "suppress", 12),
        ("c", "reinforce", 12),
    ]


@pytest.mark.slow  # needs the figures extra, which `make test-slow` installs
def test_target_value_panel_has_a_cell_per_target_and_value_with_its_interval() -> None:
    pytest.importorskip("matplotlib")
    from runner.report.figures import panels, paper

    rows = [_row("a"), _row("b"), _row("c")]
    fig = panels.target_value_figure(rows, VALUES, {"a": "Alpha"})
    assert len(fig.axes) == 3 * 4  # rows × columns
    assert fig.axes[0].get_title() == "Alpha" and "Alpha" in fig.axes[0].get_ylabel()
    lows, highs = zip(*(ax.get_ylim() for ax in fig.axes), strict=True)
    assert len(set(lows)) == len(set(highs)) == 1  # one scale for every cell
    for i, row in enumerate(rows):
        for j, v in enumerate(VALUES):
            ax = fig.axes[i * 4 + j]
            bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
            ci = row["mean_shift_ci"].get(v)
            assert len(bars) == (1 if ci else 0)
            if ci:
                seg = bars[0].get_segments()[0]
                assert sorted(seg[:, 1]) == pytest.approx(ci)
            shaded = ax.get_facecolor()[:3] != (1.0, 1.0, 1.0)
            assert shaded == (v == row["target"])
    points = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "o"]
    hollow = [p for p in points if p.get_markerfacecolor() == "white"]
    assert len(points) == 3 * 3 and len(hollow) == 3  # c's interval includes 0 in every row; d is n/a
    assert all(p.get_markeredgecolor() == paper.GREY for p in hollow)
    import matplotlib.pyplot as plt

    plt.close("all")
