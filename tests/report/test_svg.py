"""The shared SVG charts: nice ticks that cover the data, log axes, legends, well-formed markup."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from tfopt.report import svg

NS = ""  # inline in HTML: no xmlns


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0, 7.3), (3, 1700), (-2.5, 0.4), (0.013, 0.021), (5, 5),
                                        (0, 0), (1e-6, 3e-6), (120_000, 4_500_000)])
def test_linear_ticks_cover_the_data_at_a_nice_step(lo, hi):
    ticks = svg.linear_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 3 <= len(ticks) <= 12, ticks
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    (step,) = {float(f"{s:.6g}") for s in steps}
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5), step


@pytest.mark.parametrize(("lo", "hi"), [(2, 9), (9, 11), (1e-9, 0.3), (0.04, 80), (1, 1)])
def test_log_ticks_are_powers_of_ten_covering_the_data(lo, hi):
    ticks = svg.log_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) >= 3, ticks
    assert all(round(t / 10 ** math.floor(math.log10(t) + 1e-9), 6) in (1, 2, 5) for t in ticks)


@pytest.mark.parametrize("count", [1, 3, 8])
def test_scatter_has_ticks_a_legend_entry_per_series_and_escaped_text(count):
    series = [svg.Series(f"s{i} <&\"'>", [svg.Point(j + 1, 10.0 ** -j * (i + 1), title="a<b", label="x&y",
                                                   marker=svg.MARKERS[j % 4]) for j in range(5)], line=i % 2 == 0)
              for i in range(count)]
    text = svg.scatter(series, svg.Axis("x & y"), svg.Axis("err", log=True), name="t<1>",
                       markers=[("fp32", "circle"), ("int8", "triangle")], markers_title="precision")
    root = ET.fromstring(text)  # well-formed: every label escaped
    labels = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "legend-label"]
    assert labels == [s.label for s in series] + ["precision:", "fp32", "int8"]
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert len(ticks) >= 6 and any(t.startswith("1e-") for t in ticks)
    marks = [e for e in root.iter() if e.get("class") == "mark"]
    assert len(marks) == 5 * count


def test_log_axis_floors_zeros_and_skips_nan_and_says_so():
    points = [svg.Point(1, 0.0), svg.Point(2, 1e-3), svg.Point(3, math.nan), svg.Point(4, 0.1)]
    root = ET.fromstring(svg.scatter([svg.Series("a", points)], svg.Axis("x"), svg.Axis("y", log=True), name="n"))
    assert len([e for e in root.iter() if e.get("class") == "mark"]) == 3
    (note,) = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "note"]
    assert "1 point(s) at 0" in note and "1 point(s) NaN" in note


def test_bars_stack_segments_by_key_from_zero():
    rows = [svg.Bar("m1", [("prepare", 2.0), ("emit", 5.0)], note="ok, 7.0 s"), svg.Bar("m2", [("prepare", 0.0)])]
    root = ET.fromstring(svg.bars(rows, svg.Axis("seconds"), name="b", colors={"prepare": "#111", "emit": "#222"}))
    rects = [e for e in root.iter(f"{NS}rect") if e.get("class") == "mark"]
    assert len(rects) == 2  # a zero segment draws nothing
    first, second = sorted(rects, key=lambda e: float(e.get("x")))
    assert math.isclose(float(first.get("x")) + float(first.get("width")), float(second.get("x")), abs_tol=0.2)
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert ticks[0] == "0" and float(ticks[-1]) >= 7
