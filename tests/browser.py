"""Render a tfopt HTML page in headless Chromium (Debian's ``chromium``) and read back its charts.

``--dump-dom`` prints the DOM after the page's scripts ran; ``--enable-logging=stderr --v=0``
prints every console message, uncaught exceptions included (``"Uncaught ReferenceError: ..."``),
to stderr as ``...:CONSOLE:N] "message", source: URL (line)``. The page is opened from a
``file://`` URL with networking features off; the page itself must need no network (checked on
its source: no ``src``/``href`` to anything, no URL but the SVG namespace).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0")
_CONSOLE = re.compile(r"(\w+):CONSOLE(?:\(\d+\)|:\d+)\] \"(.*)\", source: (.*)$")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s\"'<>]+")


@dataclass
class Chart:
    name: str
    ready: bool
    ticks: list[str] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    marks: int = 0


@dataclass
class Page:
    dom: str
    charts: list[Chart]
    errors: list[str]  # uncaught exceptions and console.error messages


def need_chromium() -> None:
    """Skip (saying why) only where Chromium is not installed; CI installs it (.ci/run)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("headless Chromium is not installed (apt-get install chromium; .ci/run installs it)")


def render(path: str, profile: str) -> Page:
    """Open ``path`` in headless Chromium (profile directory ``profile``): its DOM after the scripts
    ran, its charts, and its JavaScript errors."""
    need_chromium()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    offline = [u for u in _URL.findall(source) if u != "http://www.w3.org/2000/svg"]
    assert not offline and not re.search(r"\b(?:src|href)\s*=", source), f"{path} reaches out: {offline[:3]}"
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"file://{path}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    errors = [f"{m.group(2)} ({m.group(3)})" for m in map(_CONSOLE.search, done.stderr.splitlines())
              if m and (m.group(1) == "ERROR" or m.group(2).startswith("Uncaught"))]
    parser = _Charts()
    parser.feed(done.stdout)
    return Page(done.stdout, parser.charts, errors)


def check_charts(page: Page, *, ticks: int = 4, legend: int = 1) -> None:
    """Every chart ran its script, has more than ``ticks`` labelled ticks, ``legend`` legend
    entries or more and at least one mark; the page raised no JavaScript error."""
    assert not page.errors, page.errors
    assert page.charts, "no chart in the page"
    for chart in page.charts:
        assert chart.ready, f"chart {chart.name!r}: its script did not run"
        assert len([t for t in chart.ticks if t.strip()]) > ticks, (chart.name, chart.ticks)
        assert len([e for e in chart.legend if e.strip()]) >= legend, (chart.name, chart.legend)
        assert chart.marks > 0, f"chart {chart.name!r} is empty"


class _Charts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: list[Chart] = []
        self._text: list[str] | None = None  # where the current <text>'s characters go
        self._depth = 0  # open elements inside the current chart

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "svg" and "chart" in classes:
            self.charts.append(Chart(a.get("data-chart") or "", a.get("data-ready") == "1"))
            self._depth = 1
            return
        if tag in ("br", "img", "input", "meta", "hr"):  # void elements: no end tag
            return
        if not self._depth:
            return
        self._depth += 1
        chart = self.charts[-1]
        if "mark" in classes:
            chart.marks += 1
        for name, texts in (("tick", chart.ticks), ("legend-label", chart.legend)):
            if tag == "text" and name in classes:
                texts.append("")
                self._text = texts

    def handle_endtag(self, tag: str) -> None:
        if self._depth:
            self._depth -= 1
        if tag == "text":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text[-1] += data
