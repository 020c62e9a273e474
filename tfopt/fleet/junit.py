"""One JUnit XML file for the whole fleet, in the shape CI systems read (Jenkins, GitLab, GitHub
test reporters): ``<testsuites>`` > one ``<testsuite>`` per model > one ``<testcase>`` per target x
precision, plus one per failed prepare/finish task. A failed or timed-out task, or a tripped gate, is a
``<failure>`` whose ``message`` is the one-line error and whose text is the task's log tail;
cancelled and skipped tasks are ``<skipped>``. Counts: ``tests`` = test cases, ``failures`` =
``<failure>`` elements, ``errors`` = 0 (a converter crash is the fleet's failure to report, not the
report's), ``skipped`` = ``<skipped>`` elements, ``time`` = task seconds.

ElementTree escapes ``&<>"``; characters XML 1.0 cannot hold at all (NUL, other C0 controls, the
ANSI escapes of a coloured log) are removed first (:func:`tfopt.fleet.rows.clean`), so a crash's log
can never make the file unreadable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tfopt.fleet.result import FleetResult
from tfopt.fleet.rows import FAILED, Row, clean, rows


def junit_xml(result: FleetResult) -> str:
    """The fleet as JUnit XML text (UTF-8 declaration included); suites and cases in row order by model name."""
    by_model: dict[str, list[Row]] = {}
    for row in rows(result):
        by_model.setdefault(row.model, []).append(row)
    sources = {m.name: m for m in result.models}
    root = ET.Element("testsuites", name=f"tfopt fleet ({result.executor})")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for name in sorted(by_model):
        model_rows = sorted(by_model[name], key=lambda r: (r.kind != "prepare", r.kind == "finish",
                                                           r.target or "", r.precision or ""))
        suite = ET.SubElement(root, "testsuite", name=clean(name))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        model = sources.get(name)
        if model is not None:
            props = ET.SubElement(suite, "properties")
            for key, value in (("source", model.source), ("outdir", model.outdir), ("status", model.status)):
                ET.SubElement(props, "property", name=key, value=clean(str(value)))
        seconds = 0.0
        for row in model_rows:
            case = ET.SubElement(suite, "testcase", classname=clean(f"tfopt.fleet.{name}"), name=clean(row.name),
                                 time=f"{row.seconds:.3f}")
            counts["tests"] += 1
            seconds += row.seconds
            if row.status in FAILED or row.status == "gate-failed":
                kind = "gate" if row.status == "gate-failed" else row.status
                failure = ET.SubElement(case, "failure", message=clean(row.message or row.status), type=kind)
                failure.text = clean("\n".join(row.log_tail)) if row.log_tail else None
                counts["failures"] += 1
            elif row.status in ("cancelled", "skipped"):
                ET.SubElement(case, "skipped", message=clean(row.message or row.status))
                counts["skipped"] += 1
            if row.cache_hits:
                ET.SubElement(case, "system-out").text = clean(f"cache hits: {', '.join(row.cache_hits)}; "
                                                               f"retries: {row.retries}")
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", "0")
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", f"{seconds:.3f}")
        for key in totals:
            totals[key] += counts[key]
    for key, total in totals.items():
        root.set(key, str(total))
    root.set("errors", "0")
    root.set("time", f"{result.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
