"""Tests of runner.report.plots: well-formed SVG, labels present, contributed text escaped, gaps handled."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from support.specs import SCHWARTZ

from runner.report import plots

SVG = "{http://www.w3.org/2000/svg}"
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


def test_heatmap_mutes_couplings_inside_the_null_band() -> None:
    coupling = [[1.0, 0.2, -0.5], [0.2, 1.0, 0.05], [-0.5, 0.05, 1.0]]
    root = parse(plots.coupling_heatmap(coupling, ["a", "b", "c"], "R", band=0.3))
    muted = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "in-null-band"]
    assert len(muted) == 4  # 0.2 and 0.05, each twice; the diagonal and ±0.5 stay strong
    assert all(r.get("fill-opacity") == "0.25" for r in muted)
    assert any("inside the 95 % band of noise" in t for t in texts(root))
    plain = parse(plots.coupling_heatmap(coupling, ["a", "b", "c"], "R"))
    assert not [r for r in plain.iter(f"{SVG}rect") if r.get("class") == "in-null-band"]


def test_radar_draws_the_null_ring_and_bold_hubs() -> None:
    vat = {v: 0.5 for v in SCHWARTZ}
    null = {v: 0.25 for v in SCHWARTZ}
    root = parse(plots.circumplex_radar(vat, SCHWARTZ, "VAT", null=null, hubs=["security"]))
    (ring,) = [p for p in root.iter(f"{SVG}polygon") if p.get("class") == "null-ring"]
    # the ring sits at half the VAT polygon's radius: the top vertex (self_direction) at cy − 75
    top = ring.get("points", "").split()[0].split(",")
    assert float(top[0]) == pytest.approx(240.0) and float(top[1]) == pytest.approx(260.0 - 75.0)
    bold = [t.text for t in root.iter(f"{SVG}text") if t.get("font-weight") == "bold"]
    assert "security" in bold and "power" not in bold


def test_shift_bars_draw_intervals() -> None:
    root = parse(plots.shift_bars({"A": 0.2, "B": -0.1}, {"A": [0.1, 0.3], "B": [-0.2, 0.05]}, "A", "shift"))
    lines = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "interval"]
    assert len(lines) == 2
    # B's whisker crosses the zero line: one end left of it, one right
    zero = float(next(root.iter(f"{SVG}line")).get("x1", "0"))
    b = lines[1]
    assert float(b.get("x1", "0")) < zero < float(b.get("x2", "0"))


def test_gnd_caveat_is_printed() -> None:
    root = parse(plots.gnd_bars({"A": 1.0, "B": 16.0}, "A", "GND", caveat="gain spans 0"))
    assert "gain spans 0" in texts(root)


def test_gain_tax_chart() -> None:
    pts = [
        {"label": "one", "x": 0.1, "x_ci": [0.0, 0.2], "y": 0.3, "y_ci": [0.2, 0.4]},
        {"label": EVIL, "x": 0.2, "x_ci": None, "y": 0.1, "y_ci": [0.0, 0.2]},
        {"label": "gone", "x": None, "y": 0.1},
    ]
    svg = plots.gain_tax_chart(pts, "chart", "tax", "gain")
    root = parse(svg)
    assert len(root.findall(f"{SVG}circle")) == 2
    assert len([ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "interval"]) == 3
    assert any("gone" in t and "n/a" in t for t in texts(root))
    assert "<script>" not in svg
