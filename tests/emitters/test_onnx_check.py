"""`check_onnx_file`: a file ONNX's full checker or ONNX Runtime rejects is a typed error naming it;
`sort_topologically` restores ONNX's node order (ONNX Runtime's float16 converter appends casts last)."""

from __future__ import annotations

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


@pytest.mark.parametrize("shapeless", [["y"], ["x", "y"]])
def test_an_interface_of_unknown_rank_is_named_with_the_fix(shapeless, tmp_path):
    """tf2onnx's own file for ``tf.squeeze`` of a ``[?, 4]`` output has no shape on it (ONNX requires
    one on the interface): the error names the tensor and the way out."""
    model = _chain(2, reverse=False)
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in shapeless:
            value.type.tensor_type.ClearField("shape")
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    with pytest.raises(ConversionError, match=r"of unknown rank in the graph: " + ", ".join(shapeless) + ";.*--inputs"):
        check_onnx_file(path, label="onnx fp32")
