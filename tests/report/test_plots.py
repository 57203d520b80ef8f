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
    """Every text element's words, a wrapped label's lines joined (its <title> left out)."""
    return ["".join(s.text or "" for s in [t, *t.iter(f"{SVG}tspan")]) for t in root.iter(f"{SVG}text")]


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
    rings = [c for c in root.findall(f"{SVG}circle") if c.get("class") == "ring"]
    assert [float(c.get("r", "0")) for c in rings] == pytest.approx([30.0, 60.0, 90.0, 120.0, 150.0])
    assert tick_labels(root) == ["0.2", "0.4", "0.6", "0.8", "1.0"]  # 0.9 at most: rings every 0.2


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
    vat_top = root.findall(f"{SVG}polygon")[-1].get("points", "").split()[0].split(",")
    assert float(top[0]) == pytest.approx(float(vat_top[0]))
    centre = float(vat_top[1]) + 150.0
    assert float(top[1]) == pytest.approx(centre - 75.0)
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


# ---------------------------------------------------------------- issue 20.4: figures that scale, round ticks, intervals


def tick_labels(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if "tick" in (t.get("class") or "")]


def is_nice(values: list[float]) -> bool:
    """Equally spaced multiples of a 1, 2 or 5 × 10^k step."""
    if len(values) < 2:
        return False
    step = values[1] - values[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    spaced = all(b - a == pytest.approx(step) for a, b in zip(values, values[1:], strict=False))
    multiples = all(v / step == pytest.approx(round(v / step), abs=1e-6) for v in values)
    return spaced and multiples and any(mantissa == pytest.approx(m) for m in (1, 2, 5))


UNROUND = [
    {"label": "k=2", "x": 0.137, "x_ci": [0.081, 0.193], "y": 0.2113, "y_ci": [0.173, 0.252]},
    {"label": "k=4", "x": 0.311, "x_ci": [0.254, 0.377], "y": 0.318, "y_ci": [0.271, 0.363]},
    {"label": "k=8", "x": 0.422, "x_ci": None, "y": 0.402, "y_ci": [0.339, 0.471]},
]
ROW_SHIFTS = {"A": 0.213, "B": -0.071, "C": 0.034, "D": None}
ROW_CIS = {"A": [0.17, 0.25], "B": [-0.11, -0.03], "C": [-0.02, 0.09]}


def every_figure() -> list[str]:
    R = [[1.0, 0.31, -0.2], [0.31, 1.0, 0.6], [-0.2, 0.6, 1.0]]
    return [
        plots.coupling_heatmap(R, ["a", "b", "c"], "R", band=0.25),
        plots.circumplex_radar({v: 0.137 * (i % 4) for i, v in enumerate(SCHWARTZ)}, SCHWARTZ, "radar"),
        plots.shift_bars(ROW_SHIFTS, ROW_CIS, "A", "shift"),
        plots.gnd_bars({"A": 1.0, "B": -0.4}, "A", "GND", intervals={"A": [0.8, 1.2]}),
        plots.gain_tax_chart(UNROUND, "chart", "tax", "gain"),
        plots.pareto_plot([{"label": "a", "gain": 0.21, "nvat": 0.13, "efficient": True}], "P"),
    ]


def test_every_figure_scales_to_its_container() -> None:
    """The figures had width='480' (a fixed canvas): now width 100 % and a viewBox."""
    for svg in every_figure():
        root = parse(svg)
        assert root.get("width") == "100%" and root.get("height") is None
        box = [float(x) for x in (root.get("viewBox") or "").split()]
        assert box[:2] == [0, 0] and box[2] > 300 and box[3] > 150


def test_tick_values_are_nice_numbers() -> None:
    """Ticks were five equal cuts of the raw range (0.137, 0.209, ...): now multiples of a 1-2-5 step."""
    chart = parse(plots.gain_tax_chart(UNROUND, "chart", "tax", "gain"))
    ticks = [float(t) for t in tick_labels(chart)]
    xs = [t for t in ticks if t <= 0.5]
    assert len(ticks) >= 6
    bars = parse(plots.shift_bars(ROW_SHIFTS, ROW_CIS, "A", "shift"))
    assert is_nice([float(t) for t in tick_labels(bars)])
    radar = parse(plots.circumplex_radar({v: 0.37 for v in SCHWARTZ}, SCHWARTZ, "r"))
    assert is_nice([float(t) for t in tick_labels(radar)])
    for svg in (
        plots.gain_tax_chart(UNROUND, "c", "x", "y"),
        plots.pareto_plot(
            [{"label": "a", "gain": 0.2113, "nvat": 0.137}, {"label": "b", "gain": 0.318, "nvat": 0.311}], "p"
        ),
    ):
        labels = tick_labels(parse(svg))
        values = [float(t) for t in labels]
        # two axes: each is its own run of nice ticks
        split = next(i for i in range(1, len(values)) if values[i] < values[i - 1])
        assert is_nice(values[:split]) and is_nice(values[split:]), labels
    assert xs


def test_scatter_axes_fit_the_data_and_are_not_forced_to_zero() -> None:
    """The Pareto and gain-tax axes started at 0 whatever the data: now they span the data plus a margin."""
    pts = [
        {"label": "a", "gain": 0.51, "nvat": 0.62, "efficient": True},
        {"label": "b", "gain": 0.55, "nvat": 0.70},
    ]
    root = parse(plots.pareto_plot(pts, "P"))
    values = [float(t) for t in tick_labels(root)]
    assert min(values) > 0.3  # nothing near 0 on either axis
    assert not [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "zero"]


def test_an_interval_is_drawn_for_every_point_and_bar_that_has_one() -> None:
    chart = parse(plots.gain_tax_chart(UNROUND, "chart", "tax", "gain"))
    assert len([ln for ln in chart.iter(f"{SVG}line") if ln.get("class") == "interval"]) == 2 + 3
    gnd = parse(
        plots.gnd_bars(
            {"A": 1.0, "B": -0.4, "C": 0.1}, "A", "GND", intervals={"A": [0.8, 1.2], "B": [-0.6, -0.2]}
        )
    )
    assert len([ln for ln in gnd.iter(f"{SVG}line") if ln.get("class") == "interval"]) == 2
    pareto = parse(
        plots.pareto_plot(
            [
                {
                    "label": "a",
                    "gain": 0.2,
                    "nvat": 0.3,
                    "efficient": True,
                    "gain_ci": [0.1, 0.3],
                    "null": [0.1, 0.2],
                },
                {
                    "label": "b",
                    "gain": 0.25,
                    "nvat": 0.5,
                    "efficient": True,
                    "gain_ci": [0.15, 0.35],
                    "null": [0.12, 0.22],
                },
            ],
            "P",
        )
    )
    assert len([ln for ln in pareto.iter(f"{SVG}line") if ln.get("class") == "interval"]) == 2
    (band,) = [r for r in pareto.iter(f"{SVG}rect") if r.get("class") == "null-band"]
    assert float(band.get("width", "0")) > 0


def test_within_noise_is_drawn_pale_or_hollow() -> None:
    """Bars whose interval includes 0, gains that span 0 and VAT(u) inside its null are marked as noise."""
    bars = parse(plots.shift_bars(ROW_SHIFTS, ROW_CIS, "A", "shift"))
    pale = [r for r in bars.iter(f"{SVG}rect") if r.get("class") == "within-noise"]
    assert len(pale) == 1  # C's interval [-0.02, 0.09] includes 0; A's and B's do not
    assert any("includes 0" in t for t in texts(bars))
    chart = parse(
        plots.gain_tax_chart(
            [*UNROUND, {"label": "flat", "x": 0.2, "y": 0.01, "y_ci": [-0.05, 0.07]}], "c", "x", "y"
        )
    )
    hollow = [c for c in chart.iter(f"{SVG}circle") if c.get("class") == "within-noise"]
    assert len(hollow) == 1
    vat = {v: 0.5 for v in SCHWARTZ} | {"power": 0.1}
    radar = parse(plots.circumplex_radar(vat, SCHWARTZ, "r", null={v: 0.3 for v in SCHWARTZ}))
    assert len([c for c in radar.iter(f"{SVG}circle") if c.get("class") == "within-noise"]) == 1


def text_boxes(root: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each unrotated one-line text's estimated box (0.56 em a character, one em high)."""
    out = []
    for t in root.iter(f"{SVG}text"):
        if t.get("transform"):
            continue
        size, x, y = float(t.get("font-size", "12")), float(t.get("x", "0")), float(t.get("y", "0"))
        lines = [(t.text or "", 0.0)] if not t.findall(f"{SVG}tspan") else []
        for span in t.findall(f"{SVG}tspan"):  # a wrapped label: one box per line
            y += float(span.get("dy", "0"))
            lines.append((span.text or "", y - float(t.get("y", "0"))))
        for line, dy in lines:
            w = 0.56 * size * len(line)
            x0 = {"start": x, "end": x - w}.get(t.get("text-anchor") or "start", x - w / 2)
            base = float(t.get("y", "0")) + dy
            out.append((line, (x0, base - 0.8 * size, x0 + w, base)))
    return out


def overlapping(root: ET.Element) -> list[tuple[str, str]]:
    boxes = text_boxes(root)
    return [
        (a, b)
        for i, (a, p) in enumerate(boxes)
        for b, q in boxes[i + 1 :]
        if p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]
    ]


def test_radar_ring_labels_stay_clear_of_the_value_labels() -> None:
    """The outer ring's label sat on the top spoke, under the top value's number: now between spokes."""
    for top in (1.0, 0.43, 7.7):
        root = parse(
            plots.circumplex_radar(
                {v: top for v in SCHWARTZ}, SCHWARTZ, "r", null={v: top / 2 for v in SCHWARTZ}
            )
        )
        assert overlapping(root) == []


def test_scatter_labels_do_not_cover_each_other() -> None:
    crowd = [{"label": f"checkpoint {k}", "x": 0.30 + 0.002 * k, "y": 0.20 + 0.001 * k} for k in range(5)]
    root = parse(plots.gain_tax_chart(crowd, "crowded", "tax", "gain"))
    assert overlapping(root) == []


def test_long_labels_are_wrapped_or_shortened() -> None:
    long = "a_remarkably_long_value_name_from_a_contributor"
    radar = parse(plots.circumplex_radar({long: 0.5, "b": 0.2}, [long, "b"], "r"))
    (label,) = [t for t in radar.iter(f"{SVG}text") if len(t.findall(f"{SVG}tspan")) > 1]
    shown = "".join(s.text or "" for s in label.findall(f"{SVG}tspan"))
    assert shown.endswith("…") and long.startswith(shown[:-1])  # two lines at most, then cut
    assert label.findtext(f"{SVG}title") == long  # the full name on hover
    gnd = parse(plots.gnd_bars({long: 0.5, "b": 0.2}, "b", "GND"))
    assert overlapping(gnd) == []
    heat = parse(plots.coupling_heatmap([[1.0, 0.0], [0.0, 1.0]], [long, "b"], "R"))
    cut = [t for t in heat.iter(f"{SVG}text") if (t.text or "").endswith("…")]
    assert len(cut) == 2 and all(t.find(f"{SVG}title") is not None for t in cut)
    left = min(float(r.get("x", "0")) for r in heat.iter(f"{SVG}rect") if r.get("stroke") == "white")
    assert left > 0.56 * 11 * 24  # the margin fits the shortened name


def test_target_value_grid_has_a_cell_per_target_and_value() -> None:
    rows = [
        {"target": t, "direction": "reinforce", "mean_shift": ROW_SHIFTS, "mean_shift_ci": ROW_CIS}
        for t in ("A", "B", "C")
    ]
    root = parse(plots.target_value_grid(rows, ["A", "B", "C", "D"], "grid"))
    cells = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "cell"]
    assert len(cells) == 3 * 4
    assert [c.get("fill") for c in cells].count("#fdebd9") == 3  # each target's own cell
    whiskers = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "interval"]
    assert len(whiskers) == 3 * len(ROW_CIS)
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("class") == "within-noise"]) == 3  # C
    assert texts(root).count("n/a") == 3  # D has no shift
    ticks = [float(t) for t in tick_labels(root)]
    per_row = len(ticks) // 3
    assert per_row >= 2 and is_nice(ticks[:per_row]) and ticks == ticks[:per_row] * 3
