"""The batch axis through matrix products (held-out set 23: lanceotron's shape head, a Keras 3 ``Dense``
on a 3-D tensor then ``Flatten``, and odachi's graph convolutions ``A @ (X @ W)`` got no output batch axis
in ``manifest.json``, and lanceotron's deep input no axis from its structure): ``tf.tensordot`` (Keras 3's
``Dense`` on 3-D: ``gather(shape(x), free)``), ``BatchMatMulV2`` with a 2-D or batched constant on either
side, a ``Flatten`` after a product (the units' size from shape inference), ``x @ x^T``, a graph convolution
over two inputs, ``Einsum``, ``MatMul`` with ``transpose_a``, and a time-major input whose only trail to
the outputs' batch goes through a product (fact 2 of :mod:`tfopt.graphdef.batch_axis`).

Each case is a tiny ``tf.function`` written as a SavedModel. Asserted: the inputs' and outputs' batch
axes the structure names; and one conversion to every target whose manifest records them, every artifact
verified against TensorFlow on made-up inputs at the report's batch of 8. Before the fix the walk
ended at every one of these products: no output had an axis, and the time-major input was axis 0."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import tf
from tfopt.graphdef.batch_axis import output_batch_axes

T, N, K = 6, 4, 3
ATOL = 1e-5  # float32 products of <= 6 x 4 terms and an elu, any runtime
_rng = np.random.default_rng(23)
W = _rng.normal(size=[N, K]).astype(np.float32)
W1 = _rng.normal(size=[1, N, N]).astype(np.float32)  # a batched weight (odachi's GraphConv)
B1 = _rng.normal(size=[1, T, N]).astype(np.float32)


def _spec(t, shape, name):
    return t.TensorSpec(shape, t.float32, name=name)


def _flatten_head(t, h):
    return {"y": t.nn.softmax(t.matmul(t.reshape(h, [-1, T * K]), np.ones([T * K, 2], np.float32)))}


def _dense_flatten(t):  # Keras 3's Dense on [b, t, n] (tf.tensordot), Flatten, a softmax head: lanceotron
    return (lambda x: _flatten_head(t, t.tensordot(x, W, axes=1))), [_spec(t, [None, T, N], "x")]


def _matmul_flatten(t):  # the same with x @ W (BatchMatMulV2): Flatten needs the units' size
    return (lambda x: _flatten_head(t, t.matmul(x, W))), [_spec(t, [None, T, N], "x")]


def _graph_conv(t):  # odachi: elu(A @ (X @ W) + b), batched weights of batch 1
    def fn(a, x):
        return {"y": t.nn.elu(t.matmul(a, t.matmul(x, W1)) + B1)}
    return fn, [_spec(t, [None, T, T], "a"), _spec(t, [None, T, N], "x")]


def _attention(t):  # softmax(x x^T) x, the weight on the left of a product too
    def fn(x):
        scores = t.nn.softmax(t.matmul(x, x, transpose_b=True))
        return {"y": t.matmul(np.eye(T, dtype=np.float32), t.matmul(scores, x))}
    return fn, [_spec(t, [None, T, N], "x")]


def _einsum(t):
    def fn(x):
        return {"y": t.reduce_sum(t.einsum("btn,nk->btk", x, W), axis=1)}
    return fn, [_spec(t, [None, T, N], "x")]


def _transposed(t):  # x [N, batch] used as x^T: its samples are axis 1
    def fn(x):
        return {"y": t.tanh(t.matmul(x, W, transpose_a=True))}
    return fn, [_spec(t, [N, None], "x")]


def _time_major(t):  # x [time, batch, n] to batch-major, a Dense on 3-D, the mean over time
    def fn(x):
        return {"y": t.reduce_mean(t.matmul(t.transpose(x, [1, 0, 2]), W), axis=1)}
    return fn, [_spec(t, [None, None, N], "x")]


CASES = {  # case -> (build, the inputs' batch axes, the outputs')
    "dense_flatten": (_dense_flatten, {"x": 0}, {"y": 0}),
    "matmul_flatten": (_matmul_flatten, {"x": 0}, {"y": 0}),
    "graph_conv": (_graph_conv, {"a": 0, "x": 0}, {"y": 0}),
    "attention": (_attention, {"x": 0}, {"y": 0}),
    "einsum": (_einsum, {"x": 0}, {"y": 0}),
    "transposed": (_transposed, {"x": 1}, {"y": 0}),
    "time_major": (_time_major, {"x": 1}, {"y": 0}),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    t = tf()
    root = tmp_path_factory.mktemp("products")
    out = {}
    for name, (build, _, _) in CASES.items():
        fn, signature = build(t)
        module = t.Module()
        module.serve = t.function(fn, input_signature=signature)
        t.saved_model.save(module, str(root / name), signatures=module.serve.get_concrete_function())
        out[name] = str(root / name)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_a_matrix_product_keeps_the_axes_it_does_not_contract(built, case):
    model = tfopt.load(built[case])
    assert {"MatMul", "BatchMatMulV2", "Einsum"} & {n.op for n in model.graph_def.node}  # what is walked
    assert {s.name: s.batch_axis for s in model.inputs} == CASES[case][1]
    assert output_batch_axes(model.graph_def, model.inputs, model.outputs) == CASES[case][2]


@pytest.mark.usefixtures("one_tf2onnx_child")
def test_the_manifest_records_the_axes_and_every_target_verifies_at_batch_8(built, tmp_path):
    result = tfopt.convert(built["graph_conv"], str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], report_runs=1)
    with open(os.path.join(tmp_path, "out", "manifest.json")) as f:
        manifest = json.load(f)
    recorded = {s["name"]: (s["batch_axis"], s["batch_axis_source"]) for s in manifest["inputs"] + manifest["outputs"]}
    assert recorded == {"a": (0, "graph"), "x": (0, "graph"), "y": (0, "graph")}
    assert result.report["samples"] == 8
    assert {a["format"] for a in result.report["artifacts"]} == {"tflite", "onnx", "openvino"}, result.failed
    for row in result.report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row


def test_a_graph_too_large_to_import_ends_the_trail_at_the_flatten_and_nothing_fails(built, monkeypatch):
    """Over the import limit (a second copy of the weights) the Flatten's sizes are unknown: no output axis."""
    from tfopt.graphdef import axis_products

    monkeypatch.setattr(axis_products, "_IMPORT_BYTES", 0)
    model = tfopt.load(built["matmul_flatten"])
    assert output_batch_axes(model.graph_def, model.inputs, model.outputs) == {}
