"""The report (json/md/html), `tfopt verify`, and CI gates with JUnit output."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tfopt import cli
from tfopt.converting import convert
from tfopt.errors import GateFailure


@pytest.fixture(scope="module")
def reported(digits_model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report") / "out")
    convert(digits_model["path"], out, to=["pb", "tflite", "onnx"], quantize=["none", "int8"],
            calibration=digits_model["calib"], eval_data=digits_model["eval"], report_runs=5)
    return out


def test_report_schema(reported):
    with open(os.path.join(reported, "report.json")) as f:
        report = json.load(f)
    assert {"reference", "artifacts", "passes", "tools", "stage_seconds", "gates", "samples"} <= set(report)
    assert report["reference"]["accuracy"]["top1"] > 0.85 and report["reference"]["latency_ms"]["median"] > 0
    assert len(report["artifacts"]) == 5
    for a in report["artifacts"]:
        assert {"format", "precision", "path", "bytes", "gzip_bytes", "fidelity", "accuracy", "accuracy_drop",
                "latency_ms"} <= set(a)
        assert {"max_abs_err", "mean_abs_err", "rel_err", "cosine", "top1_agreement"} <= set(a["fidelity"])
        assert {"median", "p90", "runs", "threads"} <= set(a["latency_ms"]) and a["latency_ms"]["runs"] == 5
        assert a["latency_ms"]["p90"] >= a["latency_ms"]["median"] > 0
        assert 0 <= a["fidelity"]["top1_agreement"] <= 1 and a["accuracy"]["top5"] >= a["accuracy"]["top1"]
        if a["precision"] == "none":
            assert a["fidelity"]["max_abs_err"] < 1e-4 and abs(a["accuracy_drop"]) < 1e-9
    assert any(p["name"] == "fold_mul_into_weights" for p in report["passes"])
    texts = {}
    for name in ("report.md", "report.html"):
        with open(os.path.join(reported, name)) as f:
            texts[name] = f.read()
        assert "tflite" in texts[name] and "int8" in texts[name]
    assert "<svg" in texts["report.html"]


def _perturb_onnx(path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    weights = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    array = numpy_helper.to_array(weights).copy()
    array.flat[: max(1, array.size // 10)] += 0.5  # a tampered or mis-converted artifact
    weights.CopyFrom(numpy_helper.from_array(array, weights.name))
    onnx.save(model, path)


def test_verify_catches_a_perturbed_artifact(reported, digits_model, tmp_path, capsys):
    out = str(tmp_path / "copy")
    shutil.copytree(reported, out)
    _perturb_onnx(os.path.join(out, "model.fp32.onnx"))
    junit = str(tmp_path / "junit.xml")
    code = cli.main(["verify", out, "--reference", digits_model["path"], "--report-runs", "3",
                     "--fail-if", "fp32:max_abs_err>1e-4", "--junit", junit])
    captured = capsys.readouterr()
    assert code == 10, captured.err
    assert "onnx/none: fp32:max_abs_err>1e-4" in captured.err
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "1"  # pb, tflite, onnx fp32; onnx fails
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["onnx/none: fail-if fp32:max_abs_err>1e-4"]


def test_gates_pass_and_fail(reported, digits_model):
    from tfopt.report.build import verify_outdir

    report = verify_outdir(reported, digits_model["path"], runs=3, fail_if=["int8:accuracy_drop>5", "cosine<0.99"],
                           eval_data=digits_model["eval"])
    assert report["gates"] and not any(g["failed"] for g in report["gates"])
    with pytest.raises(GateFailure, match=r"tflite/int8: int8:max_abs_err>1e-6"):
        verify_outdir(reported, digits_model["path"], runs=3, fail_if=["int8:max_abs_err>1e-6"])


@pytest.mark.parametrize(("gate", "message"), [
    ("max_abs_err>>1", "expected \\[FORMAT\\[/PRECISION\\]:\\]METRIC OP VALUE"),
    ("latency>5", "unknown metric 'latency'"),
], ids=["syntax", "unknown-metric"])
def test_bad_gate_is_an_option_error(reported, digits_model, capsys, gate, message):
    import re

    code = cli.main(["verify", reported, "--reference", digits_model["path"], "--report-runs", "1", "--fail-if", gate])
    assert code == 2 and re.search(message, capsys.readouterr().err)
