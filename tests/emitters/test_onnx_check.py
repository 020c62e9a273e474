"""`check_onnx_file`: a file ONNX's full checker or ONNX Runtime rejects is a typed error naming it;
`sort_topologically` restores ONNX's node order (ONNX Runtime's float16 converter appends casts last)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tfopt.emitters.onnx_check import check_onnx_file
from tfopt.emitters.onnx_scopes import sort_topologically
from tfopt.errors import ConversionError


def _chain(length: int, *, reverse: bool, dangling: bool = False):
    """x -> Relu -> ... -> y, ``length`` nodes, listed backwards when ``reverse``."""
    names = ["x", *[f"t{i}" for i in range(length - 1)], "y"]
    nodes = [helper.make_node("Relu", [names[i] if not (dangling and i == 1) else "nowhere"], [names[i + 1]])
             for i in range(length)]
    graph = helper.make_graph(nodes[::-1] if reverse else nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("length", [2, 3, 6])
def test_unsorted_file_is_a_typed_error_and_sorting_fixes_it(length, tmp_path):
    model = _chain(length, reverse=True)
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    with pytest.raises(ConversionError, match=r"onnx fp16: the written model fails ONNX's checker \(full_check\)"):
        check_onnx_file(path, label="onnx fp16")
    assert sort_topologically(model.graph) == 1
    assert sort_topologically(model.graph) == 0  # a sorted graph keeps its order
    onnx.save(model, path)
    check_onnx_file(path, label="onnx fp16")


def test_a_dangling_read_is_a_typed_error(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(_chain(3, reverse=False, dangling=True), path)
    with pytest.raises(ConversionError, match="nowhere"):
        check_onnx_file(path, label="onnx fp32")


@pytest.mark.parametrize("shapeless", [["x"], ["x", "y"]])
def test_an_input_of_unknown_rank_is_named_with_the_fix(shapeless, tmp_path):
    """An input without a shape (ONNX requires one on the interface, and the user can give it): the
    error names the tensor and the way out."""
    model = _chain(2, reverse=False)
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in shapeless:
            value.type.tensor_type.ClearField("shape")
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    with pytest.raises(ConversionError, match=r"of unknown rank in the graph: " + ", ".join(shapeless) + ";.*--inputs"):
        check_onnx_file(path, label="onnx fp32")


def test_an_output_of_unknown_rank_passes_with_every_node_checked(tmp_path, caplog):
    """An output whose rank depends on the data has no shape in the file: ONNX's checker requires one,
    ONNX Runtime does not. The file passes (with a warning naming it), and its nodes are still checked."""
    model = _chain(2, reverse=False)
    model.graph.output[0].type.tensor_type.ClearField("shape")
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    with caplog.at_level("WARNING", logger="tfopt"):
        check_onnx_file(path, label="onnx fp32")
    assert "has no rank" in caplog.text and model.graph.output[0].name in caplog.text
    broken = _chain(3, reverse=False, dangling=True)
    broken.graph.output[0].type.tensor_type.ClearField("shape")
    onnx.save(broken, path)
    with pytest.raises(ConversionError, match="nowhere"):
        check_onnx_file(path, label="onnx fp32")


@pytest.mark.parametrize("ranks", [(2, 1), (1, 3), (2, 0)])
def test_a_data_dependent_rank_converts_and_verifies(tmp_path, ranks):
    """tf.cond branches of different ranks (the output's rank depends on the input's values), end to
    end: the ONNX file is written, and verified by value against TensorFlow on both branches."""
    import tensorflow as tf

    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    def of_rank(x, rank):
        if rank == 0:
            return tf.reduce_sum(x)
        flat = tf.reshape(x * 2.0 + 1.0, [-1])
        return tf.reshape(flat, tf.concat([tf.shape(flat), tf.ones([rank - 1], tf.int32)], 0))

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.cond(tf.reduce_sum(x) > 0, lambda: of_rank(x, ranks[0]), lambda: of_rank(x, ranks[1]))}

    module = M()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    out = str(tmp_path / "out")
    result = tfopt.convert(str(tmp_path / "sm"), out, to=["onnx"], report_runs=1)
    (artifact,) = result.artifacts
    assert artifact.max_abs_err is not None and artifact.max_abs_err <= 1e-5
    runner = runner_for("onnx", os.path.join(out, artifact.path), manifest_model(out))
    for sign in (1.0, -1.0):  # both branches, both ranks
        x = sign * (np.arange(6, dtype=np.float32).reshape(2, 3) + 1.0)
        expected = module.serve(tf.constant(x))["y"].numpy()
        got = runner({"x": x})["y"]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)
