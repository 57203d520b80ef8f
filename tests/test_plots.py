"""Tests of runner.plots: well-formed SVG, labels present, contributed text escaped, gaps handled."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from runner import plots

SVG = "{http://www.w3.org/2000/svg}"
SCHWARTZ = [
    "self_direction",
    "stimulation",
    "hedonism",
    "achievement",
    "power",
    "security",
    "conformity",
    "tradition",
    "benevolence",
    "universalism",
]
EVIL = "<script>alert(1)</script>"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def title(root: ET.Element) -> str:
    node = root.find(f"{SVG}title")
    assert node is not None
    return node.text or ""


def test_coupling_heatmap() -> None:
    R = [[1.0, -1.0, 0.8], [-1.0, 1.0, None], [0.8, float("nan"), 1.0]]
    root = parse(plots.coupling_heatmap(R, ["A", "B", "C"], "Coupling <k=2>"))
    assert title(root) == "Coupling <k=2>"
    shown = texts(root)
    assert {"A", "B", "C", "1.00", "-1.00", "0.80", "n/a"} <= set(shown)
    assert shown.count("n/a") == 2
    assert len(root.findall(f".//{SVG}linearGradient")) == 1


def test_heatmap_accepts_numpy_and_many_values() -> None:
    R = np.eye(10)
    root = parse(plots.coupling_heatmap(R, SCHWARTZ, "ten"))
    assert set(SCHWARTZ) <= set(texts(root))


def test_diverging_colour_scale() -> None:
    assert plots.diverging_colour(0.0) == "#f7f7f7"
    assert plots.diverging_colour(1.0) == "#b2182b"
    assert plots.diverging_colour(-5) == "#2166ac"
    assert plots.diverging_colour(None) == plots.diverging_colour(math.nan) == "#bdbdbd"


def test_circumplex_radar() -> None:
    vat = {v: 0.1 * i for i, v in enumerate(SCHWARTZ)}
    vat["power"] = None
    root = parse(plots.circumplex_radar(vat, SCHWARTZ, "Radar"))
    assert set(SCHWARTZ) <= set(texts(root))
    assert "n/a" in texts(root)
    polygon = root.find(f"{SVG}polygon")
    assert polygon is not None and len(polygon.get("points", "").split()) == 10
    assert len(root.findall(f"{SVG}circle")) == 4


def test_radar_security_points_down() -> None:
    # security (index 5) sits opposite self_direction: straight below the centre.
    vat = {v: float(v == "security") for v in SCHWARTZ}
    root = parse(plots.circumplex_radar(vat, SCHWARTZ, "down"))
    polygon = root.find(f"{SVG}polygon")
    assert polygon is not None
    points = [tuple(map(float, p.split(","))) for p in polygon.get("points", "").split()]
    centre = points[0]
    assert points[5][0] == pytest.approx(centre[0]) and points[5][1] > centre[1] + 100


def test_radar_all_missing() -> None:
    parse(plots.circumplex_radar(dict.fromkeys(SCHWARTZ), SCHWARTZ, "empty"))


def test_gnd_bars() -> None:
    gnd = {"A": 1.0, "B": -1 / 3, "C": None, "D": float("nan")}
    root = parse(plots.gnd_bars(gnd, "A", "GND"))
    shown = texts(root)
    assert {"A", "B", "C", "D", "1.00", "-0.33"} <= set(shown)
    assert shown.count("n/a") == 2
    assert len(root.findall(f"{SVG}rect")) == 1 + 2  # background + two bars
    bold = [t.text for t in root.iter(f"{SVG}text") if t.get("font-weight") == "bold"]
    assert "A" in bold and "B" not in bold


def test_pareto_plot() -> None:
    pts = [
        {"label": "step 100", "gain": 0.10, "nvat": 0.10, "efficient": True},
        {"label": "step 200", "gain": 0.20, "nvat": 0.12, "efficient": True},
        {"label": "step 300", "gain": 0.15, "nvat": 0.15, "efficient": False},
        {"label": "step 400", "gain": 0.30, "nvat": 0.20, "efficient": True},
        {"label": "broken", "gain": None, "nvat": 0.2, "efficient": False},
    ]
    root = parse(plots.pareto_plot(pts, "Pareto"))
    shown = texts(root)
    assert {"step 100", "step 200", "step 300", "step 400"} <= set(shown)
    assert any("broken" in t and "n/a" in t for t in shown)
    assert len(root.findall(f"{SVG}circle")) == 4
    line = root.find(f"{SVG}polyline")
    assert line is not None and len(line.get("points", "").split()) == 3


def test_pareto_plot_empty() -> None:
    parse(plots.pareto_plot([], "nothing"))


def test_everything_escaped() -> None:
    figures = [
        plots.coupling_heatmap([[1.0, 0.0], [0.0, 1.0]], [EVIL, "b&c"], EVIL),
        plots.circumplex_radar({EVIL: 0.5, "b&c": 0.2}, [EVIL, "b&c"], EVIL),
        plots.gnd_bars({EVIL: 1.0, "b&c": None}, EVIL, EVIL),
        plots.pareto_plot([{"label": EVIL, "gain": 0.1, "nvat": 0.1, "efficient": True}], EVIL),
    ]
    for svg in figures:
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg
        root = parse(svg)
        assert title(root) == EVIL
        assert root.find(f".//{SVG}script") is None
        assert EVIL in texts(root)
