"""A model that runs at freezing's batch (2) but not at batch 1, where every artifact is verified
(one sample at a time): a ``tf.squeeze`` without its axis before a ``MatMul``. TensorFlow's
``InvalidArgumentError`` came through; it is a :class:`MadeUpInputsError` naming the inputs, the node
and the fix. The same model with the squeeze's axis named converts, every target within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt.errors import MadeUpInputsError

TOLERANCE = 1e-5  # fp32: one matmul and a tanh


def _saved(path: str, features: int, axis: int | None) -> str:
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.random.default_rng(features).normal(size=(features, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 1, features], tf.float32)])
        def serve(self, x):
            squeezed = tf.squeeze(x) if axis is None else tf.squeeze(x, axis=axis)
            return {"y": tf.tanh(tf.matmul(squeezed, self.w))}

    model = Model()
    tf.saved_model.save(model, path, signatures={"serving_default": model.serve})
    return path


@pytest.mark.parametrize("features", [4, 7])
def test_a_model_that_refuses_batch_1_is_named(tmp_path, features):
    path = _saved(str(tmp_path / "model"), features, axis=None)
    with pytest.raises(MadeUpInputsError, match=rf"does not run at x:1x1x{features} \(made up inputs\), where every "
                                                r"artifact is verified.*InvalidArgumentError at node '[^']*MatMul': "
                                                r".*tf\.squeeze with its axis"):
        tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], quantize=["fp32"], report_runs=1)


def test_with_the_axis_named_it_converts(tmp_path):
    path = _saved(str(tmp_path / "model"), 4, axis=1)
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], quantize=["fp32"],
                           report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert sorted(a["format"] for a in result.report["artifacts"]) == ["onnx", "openvino", "tflite"]
    for artifact in result.report["artifacts"]:
        assert artifact["fidelity"]["max_abs_err"] <= TOLERANCE, artifact
