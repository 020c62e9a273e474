"""The table of targets: every record resolves, nothing else in the package names a target,
register_target() refuses a record it could not use, and a sixth target is one registered record
(fp32 and int8: planned, emitted, kernels counted, verified, reported, debugged; see ARCHITECTURE.md)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import re

import pytest

from tfopt import targets
from tfopt.conversion.checks import check_options, plan
from tfopt.errors import OptionError, TargetError
from tfopt.targets import (
    NAMES,
    PRECISIONS,
    ROLES,
    TABLE,
    Precision,
    Target,
    precision_name,
    register_target,
    target,
    target_of_file,
    unregister_target,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", NAMES)
def test_every_record_names_functions_that_exist(name):
    record = TABLE[name]
    for role in ROLES:
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


# Naming a target: switching on it (== / != / in "onnx"), keying a dict by it, listing two or
# more, or pairing one with a precision (("openvino", "int8")). A call's argument is not listed
# (a target's own module labels what it returns), nor text in a message.
_NAMES = "|".join(NAMES)
GUARD = re.compile(rf"""(==|!=|\bin)\s*[(\[{{]?\s*["']({_NAMES})["']"""
                   rf"""|["']({_NAMES})["']\s*:"""
                   rf"""|["']({_NAMES})["']\s*,\s*["']({_NAMES})["']"""
                   rf"""|\(\s*["']({_NAMES})["']\s*,\s*["']({"|".join(PRECISIONS)})["']\s*\)""")
# Data, not code: the corpus measures the targets it lists (and the authors' own files per target), and
# its baseline runs each backend's own converter, as its documentation shows, without tfopt (corpus_plain).
CORPUS = {"coverage/corpus.py", "coverage/corpus_entries.py", "coverage/matrix.py", "coverage/corpus_plain.py"}


def test_no_module_outside_the_table_names_a_target():
    """Every module of the package, every folder: only targets.py (and the corpus's lists) name one."""
    package = os.path.join(ROOT, "tfopt")
    offenders = []
    for folder, _, files in os.walk(package):
        for name in sorted(f for f in files if f.endswith(".py")):
            rel = os.path.relpath(os.path.join(folder, name), package).replace(os.sep, "/")
            if rel == "targets.py" or rel in CORPUS:
                continue
            with open(os.path.join(folder, name)) as f:
                offenders += [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(f, 1) if GUARD.search(line)]
    assert offenders == []


@pytest.mark.parametrize(("line", "names"), [
    ('if target == "tflite":', True), ('    if record.name not in ("tflite", "onnx", "openvino"):', True),
    ('OPENERS = {"onnx": "tfopt.debug.run_onnx:open_intermediates"}', True), ('X = ("pb", "savedmodel")', True),
    ('if ("openvino", "int8") not in pairs:', True), ('return target != \'savedmodel\'', True),
    ('    Intermediates("openvino", path, tensors)', False), ('raise OptionError("runs tflite artifacts")', False),
    ('return "pb"', False), ('SAVE_FORMATS = ("pb", "pbtxt", "savedmodel")', False), ('path = os.path.join(directory, "savedmodel")', False),
])
def test_the_guard_tells_naming_from_labelling(line, names):
    assert bool(GUARD.search(line)) is names


def test_target_of_file(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "model.xml").write_text("<net/>")
    assert target_of_file(str(tmp_path / "m.tflite")).name == "tflite"
    assert target_of_file(str(tmp_path / "ir")).name == "openvino"
    assert target_of_file(str(tmp_path / "m.txt")) is None


def emit_pbtxt(job):
    """A float-only target's own emitter (here, in the test): the runtime graph as text."""
    from tfopt.emitters.frozen_graph import emit_frozen_graph

    return emit_frozen_graph(job.runtime, job.path, text=True)


def _record(name: str, **change) -> Target:
    """A second ONNX target under ``name``: ONNX's own functions for every role, files ``.<name>``."""
    record = dataclasses.replace(TABLE["onnx"], name=name, precisions=("fp32", "int8"),
                                 file=f"model.{{precision}}.{name}", suffixes=(f".{name}",), keep_float=("int8",), large_precisions=("fp32",))
    return dataclasses.replace(record, **change)


@pytest.fixture
def registered():
    """Register records for one test; unregister them after."""
    added = []

    def add(record: Target) -> Target:
        added.append(register_target(record).name)
        return record
    yield add
    for name in added:
        if name in TABLE:  # a test may have unregistered it itself
            unregister_target(name)


@pytest.mark.parametrize(("change", "fault"), [
    ({"name": "onnx"}, "a target named onnx exists"),
    ({"name": "tflite", "suffixes": (".tflite",)}, "a target named tflite exists"),
    ({"int8_ops": None}, "int8 needs int8_ops="),
    ({"layer_quantizer": None}, "keep_float needs layer_quantizer="),
    ({"keep_float": ("int16x8",)}, "keep_float int16x8: it builds only fp32, int8"),
    ({"accuracy_control": ("fp16",)}, "accuracy_control fp16: it builds only"),
    ({"precisions": ("fp32", "int4")}, "not int4"),
    ({"emit": "tfopt.emitters.onnx.emit"}, "emit='tfopt.emitters.onnx.emit' is not 'module:function'"),
    ({"repro": ":onnx_repro"}, "repro=':onnx_repro' is not 'module:function'"),
    ({"suffixes": (".onnx",)}, ".onnx already identifies onnx's files"),
    ({"file": "model.onnx3", "suffixes": (".onnx3",)}, "must hold {precision}"),
    ({"name": "my target"}, "the name must be"),
])
@pytest.mark.parametrize("name", ["onnx2", "ort_b"])
def test_register_target_refuses_a_record_it_could_not_use(name, change, fault):
    record = _record(**{"name": name, **change})
    with pytest.raises(TargetError, match=re.escape(fault)) as caught:
        register_target(record)
    assert f"register_target({record.name!r})" in str(caught.value) and isinstance(caught.value, OptionError)
    assert [t.name for t in TABLE.values()] == list(NAMES)  # nothing added
    with pytest.raises(TypeError):
        TABLE[name] = record  # type: ignore[index]  # read-only: register_target is the way in


def test_register_and_unregister(registered):
    registered(_record("onnx2"))
    assert target("onnx2").file == "model.{precision}.onnx2" and "onnx2" in targets.names()
    unregister_target("onnx2")
    with pytest.raises(TargetError, match="onnx2 is not registered"):
        unregister_target("onnx2")
    with pytest.raises(TargetError, match="tflite is built in"):
        unregister_target("tflite")
    with pytest.raises(OptionError, match="--to onnx2: choose from"):
        target("onnx2")


def test_a_float_only_target_is_one_record(digits_model, tmp_path, registered):
    """Registering a record is all `tfopt convert` needs: planned, emitted, verified, recorded, reported."""
    import tfopt

    registered(Target("pbtxt", precisions=("fp32",), file="model.pbtxt", emit=f"{__name__}:emit_pbtxt",
                      runner="tfopt.runtimes.tensorflow:open_artifact", weights="tfopt.runtimes.tensorflow:read_weights",
                      suffixes=(".pbtxt",), graph="runtime", float_only=True))
    result = tfopt.convert(digits_model["path"], str(tmp_path / "out"), to=["pbtxt"], report_runs=2)
    (artifact,) = result.artifacts
    assert (artifact.format, artifact.path) == ("pbtxt", "model.pbtxt")
    assert artifact.max_abs_err is not None and artifact.max_abs_err < 1e-4  # verified through its runner
    with open(tmp_path / "out" / "report.json") as f:
        rows = json.load(f)["artifacts"]
    assert [r["format"] for r in rows] == ["pbtxt"] and rows[0]["fidelity"]["max_abs_err"] < 1e-4


def test_a_sixth_target_with_int8_is_one_record(digits_model, tmp_path, registered):
    """A second ONNX record under another name: planned at fp32 and int8, emitted by the int8 engine
    byte for byte as the onnx target's, its kernels counted, verified in ONNX Runtime, reported, opened
    by tfopt debug compare, offered to tfopt debug reduce and timed by the latency harness."""
    import numpy as np

    import tfopt
    from tfopt.cli.debug_reduce import reduce_targets
    from tfopt.conversion.manifest import manifest_model
    from tfopt.coverage.latency import interleaved_latency
    from tfopt.debug.intermediates import open_intermediates

    registered(_record("onnx2"))
    assert plan(["onnx2"], ["fp32", "int8"]) == ([("onnx2", "fp32"), ("onnx2", "int8")], [])
    assert "onnx2" in reduce_targets()
    out = str(tmp_path / "out")
    result = tfopt.convert(digits_model["path"], out, to=["onnx", "onnx2"], quantize=["fp32", "int8"],
                           calibration=digits_model["calib"], report_runs=2)
    assert result.failed == [] and result.skipped == []
    got = {(a.format, a.precision): a for a in result.artifacts}
    assert got[("onnx2", "int8")].path == "model.int8.onnx2" and got[("onnx2", "int8")].quantizer == "tfopt"
    for precision in ("fp32", "int8"):
        ours, onnx = got[("onnx2", precision)], got[("onnx", precision)]
        assert ours.sha256 == onnx.sha256  # the same emitter on the same graph: the same bytes
        assert ours.max_abs_err is not None and ours.max_abs_err == onnx.max_abs_err  # verified in ONNX Runtime
    counts = got[("onnx2", "int8")].int8_ops
    assert counts is not None and counts["int8"] >= 1 and counts == got[("onnx", "int8")].int8_ops
    assert got[("onnx2", "fp32")].max_abs_err < 1e-4
    with open(os.path.join(out, "report.json")) as f:
        rows = {(r["format"], r["precision"]): r for r in json.load(f)["artifacts"]}
    assert rows[("onnx2", "int8")]["int8_ops"] == rows[("onnx", "int8")]["int8_ops"]
    path = os.path.join(out, "model.int8.onnx2")
    assert target_of_file(path).name == "onnx2"
    opened = open_intermediates("onnx2", path, manifest_model(out))
    assert opened.target == "onnx2" and opened.quantized and opened.tensors
    timed = interleaved_latency("onnx2", path, os.path.join(out, "model.int8.onnx"), runs=3, min_seconds=0)
    assert timed["rounds"] >= 3 and np.isfinite(timed["ratio"])


def test_accuracy_control_is_a_role(tmp_path, registered):
    """--accuracy-control goes to the records that name the precision in ``accuracy_control``: the
    option check accepts them, and tfopt's int8 engine leaves their int8 to their converter."""
    import numpy as np

    from tfopt.options import QuantizeOptions
    from tfopt.quantizing.engine.plan import engine_builds

    (tmp_path / "model.pb").write_bytes(b"\x0a\x05float graph bytes")  # never read as a model here
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 3), np.float32))
    data = str(tmp_path / "data.npz")
    flags = {"quantize": ["int8"], "calibration": data, "accuracy_control": 0.01, "eval_data": data}
    q = QuantizeOptions(accuracy_control=0.01)
    assert engine_builds(q, "onnx", "int8", False) and not engine_builds(q, "openvino", "int8", False)
    with pytest.raises(OptionError, match="is openvino int8's: add openvino to --to and int8 to --quantize"):
        check_options(str(tmp_path / "model.pb"), str(tmp_path / "out"), to=["onnx"], **flags)
    registered(_record("onnx2", accuracy_control=("int8",)))
    assert not engine_builds(q, "onnx2", "int8", False) and engine_builds(QuantizeOptions(), "onnx2", "int8", False)
    pairs, _ = check_options(str(tmp_path / "model.pb"), str(tmp_path / "out"), to=["onnx2"], **flags)
    assert pairs == [("onnx2", "int8")]
    with pytest.raises(OptionError, match="is openvino int8 or onnx2 int8's: add openvino or onnx2 to --to"):
        check_options(str(tmp_path / "model.pb"), str(tmp_path / "out"), to=["onnx"], **flags)
