"""The proof: every artifact against the original model, in one report (json, md, html)."""

from tfopt.report.gates import Gate, evaluate_gates, parse_gate, write_junit
from tfopt.report.measure import measure
from tfopt.report.write import write_reports

__all__ = ["Gate", "evaluate_gates", "measure", "parse_gate", "write_junit", "write_reports"]
