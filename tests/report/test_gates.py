"""--fail-if gates read metrics in the units the report table shows (percent for top-1 agreement and accuracy)."""

from __future__ import annotations

import pytest

from tfopt.report.gates import evaluate_gates, parse_gate

ROW = {"format": "tflite", "precision": "fp32", "bytes": 1000, "gzip_bytes": 900,
       "fidelity": {"max_abs_err": 1e-6, "mean_abs_err": 1e-7, "rel_err": 1e-6, "cosine": 1.0, "top1_agreement": 100.0},
       "accuracy": {"top1": 93.75, "top5": 100.0}, "accuracy_drop": 0.0,
       "latency_ms": {"median": 1.0, "p90": 1.2}}


@pytest.mark.parametrize(("gate", "failed"), [
    ("tflite:top1_agreement<90", False), ("top1_agreement<100.5", True), ("accuracy<90", False),
    ("accuracy<95", True), ("tflite/fp32:accuracy_drop>1", False), ("none:max_abs_err>1e-7", True),
], ids=["agreement-90pct", "agreement-above-100", "accuracy-90pct", "accuracy-95pct", "drop-points", "none-is-fp32"])
def test_gate_units(gate, failed):
    (result,) = evaluate_gates({"artifacts": [ROW]}, [parse_gate(gate)])
    assert result["failed"] is failed
