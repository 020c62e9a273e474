"""TF1 SavedModels whose signature TensorFlow 2 cannot lift (class P1, promid): the signature's output
is a placeholder and the real output depends on a ``keep_prob`` and an ``is_training`` placeholder it
does not take. tfopt loads the MetaGraph as a TF1 checkpoint's, from ``saved_model.pb`` and from
``saved_model.pbtxt``, binds the switches, and every target matches a TF1 session run with
keep_prob=1.0 and is_training=False."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import assert_artifacts_match
from tfopt.errors import ModelFormatError

TOLERANCE = 1e-5


def _build(path: str, as_text: bool, with_variables: bool = True, signed: bool = True) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 12, 4], name="x")
        keep = v1.placeholder(tf.float32, [], name="kr")
        training = v1.placeholder(tf.bool, [], name="in_training_mode")
        decoy = v1.placeholder(tf.float32, [None, 2])  # "Placeholder": what the signature names as output
        rng = np.random.default_rng(0)
        value = v1.get_variable if with_variables else (lambda _name, initializer, **_: tf.constant(initializer))
        w = value("w", initializer=rng.normal(size=(4, 6)).astype(np.float32))
        g = value("gamma", initializer=rng.uniform(0.5, 1.5, size=6).astype(np.float32))
        mean = value("moving_mean", initializer=rng.normal(size=6).astype(np.float32), trainable=False)
        d = value("d", initializer=rng.normal(size=(6, 2)).astype(np.float32))
        h = tf.nn.relu(tf.einsum("btc,cf->btf", x, w))
        batch_mean = tf.reduce_mean(h, axis=[0, 1])
        centred = h - v1.cond(training, lambda: batch_mean, lambda: tf.identity(mean))
        pooled = tf.reduce_max(v1.nn.dropout(centred * g, keep_prob=keep), axis=1)
        tf.nn.softmax(tf.matmul(pooled, d), name="output_prom")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(path)
            signature = v1.saved_model.signature_def_utils.predict_signature_def(
                inputs={"input": x}, outputs={"output": decoy})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"model": signature} if signed else None)
            builder.save(as_text=as_text)


def _session_run(path: str, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        return sess.run("output_prom:0", {"x:0": x, "kr:0": 1.0, "in_training_mode:0": False})


@pytest.fixture(scope="module", params=["pb", "pbtxt"])
def saved(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tf1_savedmodel") / "model")
    _build(path, as_text=request.param == "pbtxt")
    assert os.path.isfile(os.path.join(path, f"saved_model.{request.param}"))
    return path


def test_tf2_refuses_it(saved):
    import tensorflow as tf

    with pytest.raises(Exception, match="depends on a placeholder"):  # the premise: TF2 cannot lift it
        tf.saved_model.load(saved)


def test_loads_the_metagraph_with_its_real_output(saved):
    model = tfopt.load(saved)
    assert model.provenance["format"] == "savedmodel-tf1"
    assert model.provenance["signatures"] == ["model"]
    assert [s.name for s in model.outputs] == ["output_prom"]
    assert "x" in {s.name for s in model.inputs}
    frozen, report = tfopt.freeze(saved, atol=1e-6, rtol=0)  # the switches bound, the variables frozen
    assert report.bindings["kr"][0] == 1.0 and not report.bindings["in_training_mode"][0]
    assert [s.name for s in frozen.inputs] == ["x"]
    assert not {n.op for n in frozen.graph_def.node} & {"VariableV2", "VarHandleOp"}


def test_converts_to_every_target_matching_the_session(saved, tmp_path):
    out = str(tmp_path / "out")
    result = tfopt.convert(saved, out, to=["tflite", "onnx", "openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert sorted(a["format"] for a in result.report["artifacts"]) == ["onnx", "openvino", "tflite"]
    x = np.random.default_rng(3).normal(size=(3, 12, 4)).astype(np.float32)
    assert_artifacts_match(out, result, x, _session_run(saved, x), TOLERANCE)


def test_tags_are_read_from_pbtxt_too(saved):
    from tfopt.errors import OptionError

    with pytest.raises(OptionError, match="available tag sets: serve"):
        tfopt.load(saved, tags=["train"])


def test_an_incomplete_directory_is_named(saved, tmp_path):
    import shutil

    broken = str(tmp_path / "broken")
    shutil.copytree(saved, broken)
    shutil.rmtree(os.path.join(broken, "variables"))
    with pytest.raises(ModelFormatError, match="variables"):
        tfopt.load(broken)


def test_a_failing_fallback_says_what_tf2_refused_and_the_flags(saved):
    from tfopt.errors import GraphError

    with pytest.raises(GraphError, match=r"(?s)not a node.*TensorFlow 2 refused.*--outputs NODE.*--set NAME=VALUE"):
        tfopt.load(saved, outputs=["no_such_node"])


def test_a_savedmodel_without_variables_loads(tmp_path):
    path = str(tmp_path / "constants")
    _build(path, as_text=False, with_variables=False)
    frozen, _ = tfopt.freeze(path, atol=1e-6, rtol=0)
    assert frozen.provenance["format"] == "savedmodel-tf1"
    x = np.random.default_rng(4).normal(size=(2, 12, 4)).astype(np.float32)
    from tfopt.runtimes.tensorflow import GraphRunner

    np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["output_prom"], _session_run(path, x), atol=TOLERANCE)


def test_a_savedmodel_without_signatures_loads_its_metagraph(tmp_path):
    path = str(tmp_path / "unsigned")
    _build(path, as_text=False, signed=False)
    model = tfopt.load(path)  # TF2 loads it, with no signature to call
    assert model.provenance["format"] == "savedmodel-tf1" and model.provenance["signatures"] == []
    assert [s.name for s in model.outputs] == ["output_prom"]
