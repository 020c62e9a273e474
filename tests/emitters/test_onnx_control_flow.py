"""Loop bodies and If branches through the ONNX emitter, from real TensorFlow control flow: TF1
``dynamic_rnn`` (GRU and LSTM, time- and batch-major) and ``tf.compat.v1.while_loop``, TF2
``tf.function`` loops and conds that survive freezing. Their bodies read tensors of the graph
around them that tf2onnx names itself (a shape cast to int64, an argmax, a sliced state): the
written file passes ONNX's full checker, loads in ONNX Runtime, matches TensorFlow within
:data:`TOL`, and is byte-identical whatever the converting process's ``PYTHONHASHSEED``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import tfopt
from tests.helpers import graph_model, keras2_builds
from tfopt.emitters.onnx import emit_onnx
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

TOL = 1e-5  # fp32 end to end: the same float ops, a few steps of recurrence
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RNN_BUILDER = os.path.join(os.path.dirname(__file__), "tf1_rnn_graph.py")
SUBGRAPH_OPS = {"Loop", "Scan", "If"}


def _valid(path: str) -> onnx.ModelProto:
    """The file passes ONNX's full checker and loads in ONNX Runtime; it holds a subgraph."""
    onnx.checker.check_model(path, full_check=True)
    ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    proto = onnx.load(path)
    assert SUBGRAPH_OPS & {n.op_type for n in proto.graph.node}, [n.op_type for n in proto.graph.node]
    return proto


FAST_RNNS = [("gru", "time"), ("lstm", "batch")]  # the fast lane's (cell, major), written by one process


@pytest.fixture(scope="module")
def tf1_rnn_paths(tmp_path_factory):
    return keras2_builds(RNN_BUILDER, tmp_path_factory.mktemp("tf1_rnn"), FAST_RNNS,
                         lambda spec, path: [path + ".pb", *spec, "context"])


@pytest.fixture(scope="module", params=[
    pytest.param(("gru", "time"), id="gru-time-major"),
    pytest.param(("lstm", "batch"), id="lstm-batch-major"),
    pytest.param(("gru", "batch"), id="gru-batch-major", marks=pytest.mark.slow),
    pytest.param(("lstm", "time"), id="lstm-time-major", marks=pytest.mark.slow),
])
def tf1_rnn(request, tf1_rnn_paths):
    path = tf1_rnn_paths(request.param) + ".pb"
    return path, dict(np.load(path + ".npz"))


def test_tf1_dynamic_rnn_reading_outer_tensors(tf1_rnn, tmp_path):
    path, data = tf1_rnn
    model = tfopt.load(path)
    written = emit_onnx(model, str(tmp_path / "model.onnx"))
    _valid(written)
    got = runner_for("onnx", written, model)({k: data[k] for k in ("x", "lens", "state")})["y"]
    np.testing.assert_allclose(got, data["y"], rtol=0, atol=TOL)


def _v1_while(features: int, reads: str):
    """``tf.compat.v1.while_loop`` whose body reads an outer shape (``reshape``) or an outer
    argmax, and runs a data-dependent number of times."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, features], name="x")
        w = t.constant(np.random.default_rng(features).standard_normal((features, features)).astype(np.float32) * 0.3)
        shape, k = t.shape(x), t.cast(t.argmax(x, 1), t.float32)[:, None]
        n = t.cast(t.reduce_sum(t.abs(x)), t.int32) % 3 + 1

        def body(i, acc):
            step = t.tanh(t.matmul(acc, w))
            return i + 1, (t.reshape(step, shape) if "shape" in reads else step) + (k if "argmax" in reads else 0.0)

        _, acc = t.compat.v1.while_loop(lambda i, acc: i < n, body, [t.constant(0), x])
        t.identity(acc, name="y")
    return graph_model(build, {"x": (None, features)}, ["y"], v1_control_flow=True)


@pytest.mark.parametrize("features,reads", [(6, "shape+argmax"), (3, "shape"), (5, "argmax")])
def test_tf1_while_loop_reading_outer_tensors(features, reads, tmp_path):
    model = _v1_while(features, reads)
    written = emit_onnx(model, str(tmp_path / "model.onnx"))
    _valid(written)
    x = np.random.default_rng(0).standard_normal((3, features)).astype(np.float32)
    got = runner_for("onnx", written, model)({"x": x})["y"]
    np.testing.assert_allclose(got, GraphRunner(model)({"x": x})["y"], rtol=0, atol=TOL)


def _tf2_module(kind: str, features: int):
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(features)
            self.w = tf.Variable(rng.standard_normal((features, features)).astype(np.float32) * 0.3)

        @tf.function(input_signature=[tf.TensorSpec([None, features], tf.float32, name="x")])
        def serve(self, x):
            shape, k = tf.shape(x), tf.cast(tf.argmax(x, 1), tf.float32)[:, None]
            if kind == "cond":  # data-dependent: the branch is chosen at run time
                y = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.reshape(tf.tanh(tf.matmul(x, self.w)), shape) + k,
                            lambda: tf.reshape(x * 2.0, shape) - k)
                return {"y": y}
            acc, i = x, tf.constant(0)
            while i < tf.cast(tf.reduce_sum(tf.abs(x)), tf.int32) % 3 + 1:  # autograph: a While op
                acc = tf.reshape(tf.tanh(tf.matmul(acc, self.w)), shape) + k
                i += 1
            return {"y": acc}

    return Module()


@pytest.fixture(scope="module", params=[("cond", 6), ("while", 4)], ids=["tf.cond", "tf.while_loop"])
def tf2_control_flow(request, tmp_path_factory):
    import tensorflow as tf

    kind, features = request.param
    module = _tf2_module(kind, features)
    path = str(tmp_path_factory.mktemp(kind) / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path, module, features


def test_tf2_control_flow_survives_freezing_and_runs(tf2_control_flow, tmp_path):
    from tfopt.conversion.convert import convert
    from tfopt.conversion.manifest import manifest_model

    path, module, features = tf2_control_flow
    out = str(tmp_path / "out")
    result = convert(path, out, to=["onnx"])
    written = os.path.join(out, result.artifacts[0].path)
    _valid(written)
    runner = runner_for("onnx", written, manifest_model(out))
    for sign in (1.0, -1.0):  # both branches; 1 to 3 loop iterations
        x = sign * np.abs(np.random.default_rng(1).standard_normal((1, features)).astype(np.float32))
        np.testing.assert_allclose(runner({"x": x})["y"], module.serve(x)["y"].numpy(), rtol=0, atol=TOL)


@pytest.mark.slow
def test_subgraph_names_identical_across_hash_seeds(tmp_path):
    """``tfopt convert`` in two processes with different string-hash salts: the same bytes."""
    import tensorflow as tf

    module = _tf2_module("cond", 6)
    model = str(tmp_path / "model")
    tf.saved_model.save(module, model, signatures={"serving_default": module.serve})
    files = []
    for seed in ("0", "1"):
        out = str(tmp_path / f"out{seed}")
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([sys.executable, "-m", "tfopt", "convert", model, "-o", out, "--to", "onnx", "--no-verify"],
                       env=env, check=True, capture_output=True, cwd=ROOT)
        with open(os.path.join(out, "model.fp32.onnx"), "rb") as f:
            files.append(f.read())
    assert files[0] == files[1]
    assert "If" in {n.op_type for n in onnx.load_from_string(files[0]).graph.node}
