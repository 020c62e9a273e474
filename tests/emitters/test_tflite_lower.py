"""The TFLite-only lowering pass (tfopt.emitters.tflite_lower): it fires on every op it has a lowering
for and keeps the node's name, declines with a reason where the lowering would not be exact, and
through tfopt's real pipeline a model holding Asinh, MaxPool3D, AvgPool3D and MaxPoolWithArgmax
converts to TFLite (fp32 and int8, verified by value) while ONNX and OpenVINO keep the original ops.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tfopt
from tests.emitters.tflite_graphs import one_op_model
from tests.helpers import graph_pb, ops
from tfopt.emitters.tflite import emit_tflite
from tfopt.emitters.tflite_lower import lower_for_builtins
from tfopt.errors import ConversionError


def _mixed(t):
    """Asinh -> MaxPool3D -> MaxPoolWithArgmax (both outputs read), and an AvgPool3D head."""
    x = t.compat.v1.placeholder(t.float32, [None, 4, 6, 6, 2], name="x")
    a = t.math.asinh(x * 30.0, name="asinh")
    pooled = t.reshape(t.nn.max_pool3d(a, 2, 2, "SAME"), [-1, 3, 3, 4])
    values, argmax = t.nn.max_pool_with_argmax(pooled, 2, 2, "SAME", include_batch_in_index=True, name="unpool")
    t.identity(t.nn.avg_pool3d(a, (2, 3, 3), (1, 2, 2), "SAME"), name="avg")
    t.identity(values, name="values")
    t.identity(argmax, name="argmax")


def test_lowers_every_op_it_can_and_keeps_names():
    from tests.helpers import graph_model

    model = graph_model(_mixed, {"x": (None, 4, 6, 6, 2)}, ["avg", "values", "argmax"])
    before = ops(model)
    result = lower_for_builtins(model)
    after = ops(result.model)
    assert result.changed and not result.skips
    for op in ("Asinh", "MaxPool3D", "AvgPool3D", "MaxPoolWithArgmax"):
        assert before[op] == 1 and after.get(op, 0) == 0
    names = {n.name: n.op for n in result.model.graph_def.node}
    assert names["asinh"] == names["unpool"] == "Identity"  # consumers of output 0 read the same name
    assert len(result.model.provenance["lowered_for_builtins"]) == 4
    assert model.graph_def.node is not result.model.graph_def.node and ops(model) == before  # input untouched


def test_a_graph_without_such_ops_is_left_as_it_is():
    model = one_op_model(lambda t, x: [t.nn.max_pool2d(t.math.sin(x), 2, 2, "VALID")], (None, 4, 4, 1))
    result = lower_for_builtins(model)
    assert not result.changed and result.model is model and not result.skips


DECLINED = {  # name -> (build, input shape, dtype, words of the reason)
    "float64": (lambda t, x: [t.math.asinh(x)], (None, 3), "float64", "float64"),
    "open-depth": (lambda t, x: [t.nn.max_pool3d(x, 2, 2, "VALID")], (None, None, 4, 4, 1), "float32", "static"),
    "open-width": (lambda t, x: [t.nn.max_pool_with_argmax(x, 2, 2, "VALID")[1]], (None, 4, None, 2), "float32",
                   "static"),
    "int-mod": (lambda t, x: [t.truncatemod(x, 3)], (None, 3), "int32", "floats only"),
}


@pytest.mark.parametrize("case", list(DECLINED))
def test_declines_where_the_lowering_would_not_be_exact_and_says_why(case):
    build, shape, dtype, words = DECLINED[case]
    model = one_op_model(build, shape, dtype=dtype)
    result = lower_for_builtins(model)
    assert not result.changed and len(result.skips) == 1 and words in result.skips[0].reason


def test_the_converter_error_names_why_an_op_was_not_lowered(tmp_path):
    model = one_op_model(lambda t, x: [t.math.asinh(x)], (None, 3), dtype="float64")
    with pytest.raises(ConversionError, match=r"lack Asinh \(Asinh not lowered: Asinh on float64"):
        emit_tflite(model, str(tmp_path / "m.tflite"))


@pytest.fixture(scope="module")
def mixed_pb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.normal(size=(8, 4, 6, 6, 2)).astype(np.float32))
    return graph_pb(folder / "g.pb", _mixed), str(folder / "calib.npz")


def test_tflite_converts_and_verifies_in_fp32_and_int8(mixed_pb, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    pb, calibration = mixed_pb
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["tflite"], quantize=["fp32", "int8"], outputs=[
        "avg", "values", "argmax"], calibration=calibration, report_runs=1)
    assert not result.failed and {a.precision for a in result.artifacts} == {"fp32", "int8"}
    fp32 = next(a for a in result.artifacts if a.precision == "fp32")
    assert fp32.max_abs_err <= 1e-5  # argmax exact, values within float32 rounding of asinh
    details = Interpreter(model_path=str(tmp_path / "out" / "model.int8.tflite")).get_tensor_details()
    assert any(d["dtype"] == np.int8 for d in details)  # the engine's ranges still quantize it


def test_onnx_and_openvino_keep_the_original_ops(mixed_pb, tmp_path):
    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    import onnx

    pb, _ = mixed_pb
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx", "openvino"], outputs=["avg", "values", "argmax"],
                           report_runs=1)
    assert not result.failed and len(result.artifacts) == 2
    graph = onnx.load(str(tmp_path / "out" / "model.fp32.onnx")).graph
    assert "Asinh" in {n.op_type for n in graph.node}
    assert not any("lowered" in n.name for n in graph.node)
    xml = (tmp_path / "out" / "openvino.fp32" / "model.xml").read_text()
    assert 'type="Asinh"' in xml and "lowered" not in xml
