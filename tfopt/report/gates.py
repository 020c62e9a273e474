"""CI gates over the report: ``--fail-if "[FORMAT[/PRECISION]:]METRIC OP VALUE"``.

A gate *fails* when some matching artifact satisfies its condition (``max_abs_err>1e-3`` fails
on any artifact further than 1e-3 from the original). Metrics: ``max_abs_err``, ``mean_abs_err``,
``rel_err``, ``cosine``, ``top1_agreement`` (%), ``accuracy`` (top-1, %), ``accuracy_drop`` (points),
``latency_ms``, ``latency_p90_ms``, ``bytes``, ``gzip_bytes``. Each is in the unit report.json and the
table use (:data:`UNITS`): ``top1_agreement<90`` means below 90%. A NaN metric (NaN/Inf in the
outputs) fails every gate that reads it, whatever the operator.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from tfopt.errors import OptionError
from tfopt.targets import ALIASES, PRECISIONS, precision_name
from tfopt.verification.nonfinite import is_nan

OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq, "!=": operator.ne}
_GATE = re.compile(r"^\s*(?:(?P<fmt>\w+)(?:/(?P<prec>\w+))?\s*:)?\s*(?P<metric>\w+)\s*(?P<op><=|>=|==|!=|<|>)\s*"
                   r"(?P<value>[-+0-9.eE]+)\s*$")


def metric(row: dict[str, Any], name: str) -> float | None:
    values: dict[str, Any] = {
        **row["fidelity"], "bytes": row["bytes"], "gzip_bytes": row.get("gzip_bytes"),
        "latency_ms": row["latency_ms"]["median"], "latency_p90_ms": row["latency_ms"]["p90"],
        "accuracy": _accuracy(row.get("accuracy")),
        "accuracy_drop": row.get("accuracy_drop"),
    }
    if name not in values:
        raise OptionError(f"--fail-if: unknown metric '{name}'; choose from {', '.join(sorted(values))}")
    return values[name]


def _accuracy(accuracy: dict[str, float] | None) -> float | None:
    """Top-1 (percent, as stored), or a custom metric's score."""
    if not accuracy:
        return None
    if "score" in accuracy:
        return accuracy["score"]
    return accuracy.get("top1")


@dataclass(frozen=True)
class Gate:
    text: str
    fmt: str | None
    precision: str | None
    metric: str
    op: str
    value: float

    def matches(self, row: dict[str, Any]) -> bool:
        precision = precision_name(row["precision"])
        return (self.fmt is None or self.fmt == row["format"]) and \
            (self.precision is None or self.precision in (precision, row["precision"]))


PRECISION_NAMES = frozenset({*PRECISIONS, *ALIASES})
UNITS = {"max_abs_err": "output units", "mean_abs_err": "output units", "rel_err": "ratio", "cosine": "ratio",
         "top1_agreement": "%", "accuracy": "% (or the --metric score)", "accuracy_drop": "points",
         "latency_ms": "ms", "latency_p90_ms": "ms", "bytes": "bytes", "gzip_bytes": "bytes"}
METRICS = ("max_abs_err", "mean_abs_err", "rel_err", "cosine", "top1_agreement", "bytes", "gzip_bytes",
           "latency_ms", "latency_p90_ms", "accuracy", "accuracy_drop")


def parse_gate(text: str) -> Gate:
    """``[FORMAT[/PRECISION]:]METRIC OP VALUE``; a lone qualifier may name a precision (``int8:...``)."""
    match = _GATE.match(text)
    if not match:
        raise OptionError(f"--fail-if '{text}': expected [FORMAT[/PRECISION]:]METRIC OP VALUE, "
                          "e.g. 'max_abs_err>1e-3' or 'tflite/int8:accuracy_drop>1.0'")
    if match["metric"] not in METRICS:  # checked before any conversion work, not after it
        raise OptionError(f"--fail-if '{text}': unknown metric '{match['metric']}'; choose from {', '.join(METRICS)}")
    fmt, precision = match["fmt"], match["prec"]
    if fmt in PRECISION_NAMES and precision is None:
        fmt, precision = None, fmt
    if precision is not None:
        precision = precision_name(precision)
    return Gate(text, fmt, precision, match["metric"], match["op"], float(match["value"]))


def evaluate_gates(report: dict[str, Any], gates: Sequence[Gate]) -> list[dict[str, Any]]:
    """One result per (gate, matching artifact): ``failed`` when the artifact meets the condition."""
    results = []
    for gate in gates:
        for row in report["artifacts"]:
            if not gate.matches(row):
                continue
            value = metric(row, gate.metric)
            # NaN compares false with everything: it would pass every gate. A metric that could not
            # be measured honestly fails every gate that reads it, whatever the operator.
            failed = value is not None and (is_nan(value) or OPS[gate.op](value, gate.value))
            results.append({"gate": gate.text, "format": row["format"], "precision": row["precision"],
                            "metric": gate.metric, "value": value, "unit": UNITS[gate.metric], "failed": failed})
    return results


def write_junit(path: str, results: list[dict[str, Any]]) -> None:
    """JUnit XML: one test case per gate x artifact, a failure where the gate tripped."""
    from tfopt._io import atomic_path

    failures = sum(r["failed"] for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name="tfopt" tests="{len(results)}" failures="{failures}" errors="0">']
    for r in results:
        name = quoteattr(f"{r['format']}/{r['precision']}: fail-if {r['gate']}")
        lines.append(f'  <testcase classname="tfopt.gates" name={name}>')
        if r["failed"]:
            why = " (NaN fails every gate)" if is_nan(r["value"]) else ""
            message = quoteattr(f"{r['metric']} = {r['value']} ({r.get('unit', '')}){why}")
            lines.append(f"    <failure message={message}/>")
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
