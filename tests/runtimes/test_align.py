"""Artifact tensors aligned with TF nodes: fused TFLite names, tf2onnx names, OpenVINO's structure."""

from __future__ import annotations

import pytest

from tfopt.runtimes.align import ArtifactTensor, align, boundaries, kind, tf_names


@pytest.mark.parametrize(("name", "nodes"), [
    ("m/c1/Relu;m/c1/BiasAdd;m/c1/convolution", ["m/c1/Relu", "m/c1/BiasAdd", "m/c1/convolution"]),
    ("x:0", ["x"]),
    ("m/c1/Relu/act_quant;m/c1/Relu/act_quant/min", ["m/c1/Relu", "m/c1/Relu/act_quant/min"]),
    ("output_0/float", ["output_0"]),
    ("m/c1/BiasAdd__n0", []),  # a tf2onnx helper (the Transpose feeding it), not its value
    ("m/c1/Relu/act_quant_DequantizeLinear__n5:0", []),
], ids=["tflite-fused", "port", "engine-fake-quant", "engine-output", "tf2onnx-helper", "tf2onnx-qdq"])
def test_tf_names(name, nodes):
    assert tf_names(name) == nodes


def test_kinds_match_across_formats():
    assert kind("Conv2D") == kind("CONV_2D") == kind("Conv") == kind("Convolution") == "conv"
    assert kind("BiasAdd") == kind("Add") == "add" and kind("FULLY_CONNECTED") == kind("MatMul")


def _graph():
    from tests.helpers import graph_model

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 6, 6, 2), name="x")
        c = t.nn.conv2d(x, t.ones((3, 3, 2, 4)), 1, "VALID", name="conv")
        b = t.nn.bias_add(c, t.ones((4,)), name="bias")
        r = t.nn.relu(b, name="relu")
        t.reduce_mean(r, axis=[1, 2], name="out")

    return graph_model(build, {"x": (1, 6, 6, 2)}, ["out"]).graph_def


def test_fused_name_is_compared_at_its_boundary():
    """TFLite's ``relu;bias;conv`` tensor stands for the relu, never the conv."""
    tensors = [ArtifactTensor("0", ("serving_default_x:0",), "Input"),
               ArtifactTensor("1", ("relu;bias;conv",), "CONV_2D", ("0",)),
               ArtifactTensor("2", ("PartitionedCall:0",), "MEAN", ("1",))]
    result = align(_graph(), tensors, {"0": "x", "2": "out"})
    assert result.tensors["1"].node == "relu" and set(result.tensors["1"].fused) == {"relu", "bias", "conv"}
    assert boundaries(result) == {"x": "0", "relu": "1", "out": "2"}


def test_unnamed_ops_align_by_structure_past_a_dropped_bias_and_a_relu_clipping_quantizer():
    """OpenVINO-like: no names; a Transpose passes through, Convolution and the quantizer that replaced
    the ReLU are found by kind from their aligned inputs."""
    tensors = [ArtifactTensor("p", ("x:0",), "Input"), ArtifactTensor("t", ("Transpose_2",), "Transpose", ("p",)),
               ArtifactTensor("w", ("Constant_3",), "Const"), ArtifactTensor("c", ("Convolution_4",), "Convolution",
                                                                               ("t", "w")),
               ArtifactTensor("a", ("Add_5",), "Add", ("c", "w")),
               ArtifactTensor("q", ("FakeQuantize_6",), "FakeQuantize", ("a", "w")),
               ArtifactTensor("m", ("Softmax_7",), "Softmax", ("q",))]
    result = align(_graph(), tensors, {"p": "x"})
    assert {k: (a.node, a.how) for k, a in result.tensors.items()} == {
        "p": ("x", "anchor"), "t": ("x", "through"), "c": ("conv", "structure"), "a": ("bias", "structure"),
        "q": ("relu", "through")}
    assert result.unaligned == [("m", "Softmax_7", "Softmax: no TF name, and no TF consumer of relu is a softmax op")]
