"""The table of targets: every record resolves, nothing else names a target, and a sixth target
is one record plus its own module (see ARCHITECTURE.md)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re

import pytest

from tfopt.conversion.checks import plan
from tfopt.errors import OptionError
from tfopt.targets import NAMES, TABLE, Precision, Target, precision_name, target, target_of_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", NAMES)
def test_every_record_names_functions_that_exist(name):
    record = TABLE[name]
    for role in ("emit", "runner", "weights", "layer_quantizer", "quantization_settings"):
        spec = getattr(record, role)
        if spec is None:
            continue
        module, _, function = spec.partition(":")
        if record.extra and importlib.util.find_spec(record.extra) is None:
            continue
        assert callable(getattr(importlib.import_module(module), function)), spec
    assert set(record.keep_float) <= set(record.precisions)


def test_precision_parse_and_display():
    assert Precision.parse("none") is Precision.FP32 and str(Precision.INT8) == "int8"
    assert precision_name("none") == "fp32" and Precision.INT16X8.needs_calibration
    with pytest.raises(OptionError, match=r"--quantize int9: choose from .*Did you mean: int8"):
        Precision.parse("int9")
    with pytest.raises(OptionError, match=r"--to tflte: choose from .*Did you mean: tflite"):
        target("tflte")


def test_plan_reads_the_table():
    pairs, skipped = plan(["pb", "onnx"], ["fp32", "int16x8"])
    assert pairs == [("pb", "fp32"), ("onnx", "fp32"), ("onnx", "int16x8")]  # float-only: fp32 once
    assert skipped == []
    with pytest.raises(OptionError, match="openvino has no int16x8 mode"):
        plan(["openvino"], ["int16x8"])


def test_no_module_outside_the_table_switches_on_a_target_name():
    """converting, verify, runtimes and report ask tfopt.targets; a target's own modules may name it."""
    names = "|".join(NAMES)
    pattern = re.compile(rf"""(==|!=|\bin)\s*\(?["']({names})["']""")
    offenders = []
    for folder in ("conversion/convert.py", "verification/verify.py", "conversion/pipeline.py", "conversion/checks.py",
                   "runtimes", "report"):
        path = os.path.join(ROOT, "tfopt", folder)
        files = [path] if path.endswith(".py") else [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")]
        for file in files:
            with open(file) as f:
                offenders += [f"{file}: {line.strip()}" for line in f if pattern.search(line)]
    assert offenders == []


def test_target_of_file(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "model.xml").write_text("<net/>")
    assert target_of_file(str(tmp_path / "m.tflite")).name == "tflite"
    assert target_of_file(str(tmp_path / "ir")).name == "openvino"
    assert target_of_file(str(tmp_path / "m.txt")) is None


def emit_pbtxt(job):
    """The sixth target's own emitter (here, in the test): the runtime graph as text."""
    from tfopt.emitters.frozen_graph import emit_frozen_graph

    return emit_frozen_graph(job.runtime, job.path, text=True)


def test_a_sixth_target_is_one_record(digits_model, tmp_path, monkeypatch):
    """Registering a record is all `tfopt convert` needs: planned, emitted, verified, recorded, reported."""
    import tfopt

    record = Target("pbtxt", precisions=("fp32",), file="model.pbtxt", emit=f"{__name__}:emit_pbtxt",
                    runner="tfopt.runtimes.tensorflow:open_artifact", weights="tfopt.runtimes.tensorflow:read_weights",
                    suffixes=(".pbtxt",), graph="runtime", float_only=True)
    monkeypatch.setitem(TABLE, "pbtxt", record)  # type: ignore[index]
    result = tfopt.convert(digits_model["path"], str(tmp_path / "out"), to=["pbtxt"], report_runs=2)
    (artifact,) = result.artifacts
    assert (artifact.format, artifact.path) == ("pbtxt", "model.pbtxt")
    assert artifact.max_abs_err is not None and artifact.max_abs_err < 1e-4  # verified through its runner
    with open(tmp_path / "out" / "report.json") as f:
        rows = json.load(f)["artifacts"]
    assert [r["format"] for r in rows] == ["pbtxt"] and rows[0]["fidelity"]["max_abs_err"] < 1e-4
