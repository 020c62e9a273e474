"""Self-contained SVG charts for tfopt's HTML pages (report.html, compare.html, fleet.html): axes
with tick labels, axis titles, a legend and a hover title on every mark; no fonts, images, links or
scripts fetched, so a page opens from a CI artifact store or an air-gapped machine as it is.

Scales. A value v maps to the pixel ``p0 + (t(v) - t(lo)) / (t(hi) - t(lo)) * (p1 - p0)`` with
``t`` the identity (linear) or log10 (log). Linear ticks step by a "nice" number 1, 2 or 5 x 10^k
chosen so about five ticks span the data, and the domain is widened to whole steps; log ticks sit
on the powers of ten (and on 2 x and 5 x them when the data spans less than two decades). On a
log axis a value <= 0 cannot be placed: it is drawn on the axis floor and the chart says how many
were; a NaN or infinite value is not drawn, and the chart says so too.

Markup (what the rendered-report test reads): a chart is ``<svg class="chart">``; tick labels are
``<text class="tick">``; legend entries ``<g class="legend-entry">`` (their text ``legend-label``); marks (points, lines, bars)
are in ``<g class="series" data-series="i">``. :data:`SCRIPT` (inline, once per page) lets a click
on a legend entry hide or show its series, and marks each chart ``data-ready`` when it ran.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22")
MARKERS = ("circle", "square", "triangle", "diamond")
LEFT, RIGHT, TOP, BOTTOM, LEGEND = 78, 16, 16, 62, 230  # margins around the plot, px
ROW = 18  # legend and bar row height, px

SCRIPT = ("<script>document.querySelectorAll('svg.chart').forEach(function(svg){"
          "svg.querySelectorAll('.legend-entry[data-series]').forEach(function(entry){"
          "entry.addEventListener('click',function(){"
          "var g=svg.querySelector('.series[data-series=\"'+entry.getAttribute('data-series')+'\"]');"
          "if(!g)return;var hide=g.style.display!=='none';g.style.display=hide?'none':'';"
          "entry.style.opacity=hide?0.4:1;});});svg.setAttribute('data-ready','1');});</script>")
STYLE = ("svg.chart{font-family:sans-serif;font-size:11px;display:block;margin:.5em 0 1.5em}"
         "svg.chart .legend-entry[data-series]{cursor:pointer}svg.chart .grid{stroke:#e4e4e4}"
         "svg.chart .axis{stroke:#333}")


@dataclass(frozen=True)
class Axis:
    """An axis: its title, log or linear, and how its tick labels read (default :func:`number`)."""

    title: str
    log: bool = False
    fmt: Callable[[float], str] | None = None
    integer: bool = False  # a count or a position: ticks on whole numbers only


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str = ""        # the hover text
    label: str = ""        # drawn beside the point
    marker: str = "circle"  # one of MARKERS


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    line: bool = False     # join the points in order
    color: str | None = None


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart: stacked segments ``(key, value)``, a note after the bar."""

    label: str
    segments: Sequence[tuple[str, float]]
    note: str = ""
    title: str = ""


@dataclass
class _Scale:
    lo: float
    hi: float
    log: bool
    p0: float
    p1: float
    ticks: list[float] = field(default_factory=list)

    def __call__(self, v: float) -> float:
        t = math.log10 if self.log else float
        return self.p0 + (t(v) - t(self.lo)) / (t(self.hi) - t(self.lo)) * (self.p1 - self.p0)


def number(v: float) -> str:
    """A tick label: 3 significant digits, thousands separated, no trailing zeros."""
    if v == 0:
        return "0"
    if abs(v) >= 1e6 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def size(v: float) -> str:
    """Bytes as a tick label, in decimal units (ticks fall on round numbers): 12 kB, 3.4 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} B"


def linear_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Ticks at a nice step (1, 2, 5 x 10^k; at least 1 when ``integer``) covering [lo, hi], about
    ``count`` of them."""
    if not hi > lo:
        lo, hi = (lo - 1, hi + 1) if lo == 0 else (lo - abs(lo) * 0.1, hi + abs(hi) * 0.1)
    raw = (hi - lo) / count
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    step = max(step, 1.0) if integer else step
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (both > 0); 2x and 5x too when that is under two decades."""
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    b = max(b, a + 1)
    ticks = [10.0 ** e for e in range(a, b + 1)]
    if b - a < 2:
        ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= 10.0 ** b)
    return ticks


def _scale(values: Sequence[float], axis: Axis, p0: float, p1: float) -> _Scale:
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not axis.log)]
    if axis.log:
        lo, hi = (min(finite), max(finite)) if finite else (1.0, 10.0)
        ticks = log_ticks(lo, hi)
    else:
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        ticks = linear_ticks(min(lo, 0.0) if lo >= 0 and lo < 0.3 * hi else lo, hi, integer=axis.integer)
    return _Scale(ticks[0], ticks[-1], axis.log, p0, p1, ticks)


def _axes(sx: _Scale, sy: _Scale, x: Axis, y: Axis) -> list[str]:
    out = [f'<line class="axis" x1="{sx.p0}" x2="{sx.p1}" y1="{sy.p0}" y2="{sy.p0}"/>',
           f'<line class="axis" x1="{sx.p0}" x2="{sx.p0}" y1="{sy.p0}" y2="{sy.p1}"/>']
    for v in sx.ticks:
        px = sx(v)
        out.append(f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{sy.p0}" y2="{sy.p1}"/>'
                   f'<text class="tick" x="{px:.1f}" y="{sy.p0 + 15}" text-anchor="middle">'
                   f'{_esc((x.fmt or number)(v))}</text>')
    for v in sy.ticks:
        py = sy(v)
        out.append(f'<line class="grid" x1="{sx.p0}" x2="{sx.p1}" y1="{py:.1f}" y2="{py:.1f}"/>'
                   f'<text class="tick" x="{sx.p0 - 6}" y="{py + 4:.1f}" text-anchor="end">'
                   f'{_esc((y.fmt or number)(v))}</text>')
    mid_y = (sy.p0 + sy.p1) / 2
    out.append(f'<text class="axis-title" x="{(sx.p0 + sx.p1) / 2:.1f}" y="{sy.p0 + 36}" text-anchor="middle">'
               f'{_esc(x.title)}{" (log scale)" if x.log else ""}</text>'
               f'<text class="axis-title" transform="translate(14,{mid_y:.1f}) rotate(-90)" text-anchor="middle">'
               f'{_esc(y.title)}{" (log scale)" if y.log else ""}</text>')
    return out


def _marker(kind: str, x: float, y: float, color: str, title: str, cls: str = "mark") -> str:
    tip = f"<title>{_esc(title)}</title>" if title else ""
    if kind == "square":
        return f'<rect class="{cls}" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}">{tip}</rect>'
    if kind in ("triangle", "diamond"):
        pts = ((x, y - 5), (x + 5, y + 4), (x - 5, y + 4)) if kind == "triangle" else \
            ((x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y))
        return (f'<polygon class="{cls}" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" '
                f'fill="{color}">{tip}</polygon>')
    return f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}">{tip}</circle>'


def _legend(x: float, entries: Sequence[tuple[str, str, str, int | None]]) -> list[str]:
    """``(label, color, marker or "line"/"box", series index or None)`` per entry, top to bottom."""
    out = []
    for k, (label, color, kind, index) in enumerate(entries):
        y = TOP + 8 + ROW * k
        sym = ("" if kind == "none" else
               f'<line x1="{x}" x2="{x + 16}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2"/>' if kind == "line"
               else f'<rect x="{x + 2}" y="{y - 6}" width="12" height="12" fill="{color}"/>' if kind == "box"
               else _marker(kind, x + 8, y, color, "", "symbol"))
        attr = f' data-series="{index}"' if index is not None else ""
        out.append(f'<g class="legend-entry"{attr}>{sym}<text class="legend-label" x="{x + 22}" y="{y + 4}">{_esc(label)}</text></g>')
    return out


def scatter(series: Sequence[Series], x: Axis, y: Axis, *, name: str, markers: Sequence[tuple[str, str]] = (),
            markers_title: str = "marker", rules: Sequence[tuple[str, float, str]] = (), width: int = 760,
            height: int = 340) -> str:
    """Points (and lines, ``Series.line``) on two axes. ``markers``: extra legend entries ``(label,
    marker)`` under ``markers_title``, explaining the marker shapes; ``rules``: reference lines
    ``("x"|"y", value, label)``."""
    marks = [p for s in series for p in s.points]
    legend_rows = len(series) + len(markers) + (1 if markers else 0)
    height = max(height, TOP + ROW * legend_rows + 10)
    right = width - LEGEND
    sx = _scale([p.x for p in marks] + [v for a, v, _ in rules if a == "x"], x, LEFT, right - RIGHT)
    sy = _scale([p.y for p in marks] + [v for a, v, _ in rules if a == "y"], y, height - BOTTOM, TOP)
    parts = _axes(sx, sy, x, y)
    for axis, value, label in rules:
        if not (math.isfinite(value) and (value > 0 or not (x.log if axis == "x" else y.log))):
            continue
        if axis == "x":
            px = sx(value)
            parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{sy.p0}" y2="{sy.p1}" stroke="#555" '
                         f'stroke-dasharray="4 3"/><text x="{px + 4:.1f}" y="{sy.p1 + 10}">{_esc(label)}</text>')
        else:
            py = sy(value)
            parts.append(f'<line x1="{sx.p0}" x2="{sx.p1}" y1="{py:.1f}" y2="{py:.1f}" stroke="#555" '
                         f'stroke-dasharray="4 3"/><text x="{sx.p1 - 4}" y="{py - 4:.1f}" text-anchor="end">'
                         f'{_esc(label)}</text>')
    floored = dropped = 0
    entries: list[tuple[str, str, str, int | None]] = []
    for i, s in enumerate(series):
        color = s.color or COLORS[i % len(COLORS)]
        placed = []
        for p in s.points:
            if not (math.isfinite(p.x) and math.isfinite(p.y)):
                dropped += 1
                continue
            fx, fy = (x.log and p.x <= 0), (y.log and p.y <= 0)
            floored += fx or fy
            placed.append((sx.p0 if fx else sx(p.x), sy.p0 if fy else sy(p.y), p))
        body = []
        if s.line and len(placed) > 1:
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                        f'points="{" ".join(f"{a:.1f},{b:.1f}" for a, b, _ in placed)}"/>')
        for px, py, p in placed:
            body.append(_marker(p.marker, px, py, color, p.title))
            if p.label:
                body.append(f'<text x="{px + 7:.1f}" y="{py - 6:.1f}">{_esc(p.label)}</text>')
        parts.append(f'<g class="series" data-series="{i}">{"".join(body)}</g>')
        entries.append((s.label, color, "line" if s.line else "box" if markers or not s.points else s.points[0].marker, i))
    if markers:
        entries.append((f"{markers_title}:", "", "none", None))
        entries += [(label, "#555", kind, None) for label, kind in markers]
    parts += _legend(right + 10, entries)
    notes = [f"{floored} point(s) at 0 drawn on the log axis's floor" if floored else "",
             f"{dropped} point(s) NaN or infinite, not drawn" if dropped else ""]
    note = "; ".join(n for n in notes if n)
    if note:
        parts.append(f'<text class="note" x="{LEFT}" y="{height - 6}">{_esc(note)}</text>')
    return _svg(name, width, height, parts)


def bars(rows: Sequence[Bar], value: Axis, *, name: str, colors: dict[str, str], width: int = 760) -> str:
    """Horizontal stacked bars, one row per :class:`Bar`; ``colors``: segment key -> colour (the
    legend, in this order). The value axis is linear from 0."""
    label_w = min(220, 8 + 7 * max((len(r.label) for r in rows), default=4))
    height = TOP + ROW * max(len(rows), len(colors)) + BOTTOM + 6
    right = width - LEGEND
    totals = [sum(v for _, v in r.segments if math.isfinite(v)) for r in rows]
    ticks = linear_ticks(0.0, max(totals, default=0.0) or 1.0)
    sx = _Scale(0.0, ticks[-1], False, label_w, right - RIGHT - 90, ticks)
    sy = _Scale(0.0, 1.0, False, height - BOTTOM, TOP, [])
    parts = _axes(sx, sy, value, Axis(""))
    keys = list(colors)
    series: dict[str, list[str]] = {k: [] for k in keys}
    for k, (row, total) in enumerate(zip(rows, totals, strict=True)):
        y, at = TOP + 3 + ROW * k, 0.0
        for key, v in row.segments:
            if not (math.isfinite(v) and v > 0):
                continue
            x0, x1 = sx(at), sx(at + v)
            at += v
            series.setdefault(key, []).append(
                f'<rect class="mark" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="{ROW - 6}" '
                f'fill="{colors.get(key, "#999")}"><title>{_esc(row.label)}: {_esc(key)} {number(v)}</title></rect>')
        parts.append(f'<text x="{label_w - 6}" y="{y + ROW - 9}" text-anchor="end">{_esc(row.label)}'
                     + (f"<title>{_esc(row.title)}</title>" if row.title else "") + "</text>"
                     f'<text x="{sx(total) + 5:.1f}" y="{y + ROW - 9}">{_esc(row.note)}</text>')
    names = list(dict.fromkeys([*keys, *series]))
    parts += [f'<g class="series" data-series="{i}">{"".join(series.get(key, []))}</g>' for i, key in enumerate(names)]
    parts += _legend(right + 10, [(key, colors.get(key, "#999"), "box", i) for i, key in enumerate(names)])
    return _svg(name, width, height, parts)


def _svg(name: str, width: int, height: int, parts: list[str]) -> str:
    # Inline in HTML: the parser gives <svg> its namespace, so no xmlns (and no URL in the page).
    return (f'<svg class="chart" data-chart="{_esc(name)}" width="{width}" '
            f'height="{height}" role="img" aria-label="{_esc(name)}">{"".join(parts)}</svg>')


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
