"""A model whose ops TensorFlow cannot run on this CPU as configured (channels-first convolutions,
built for a GPU) fails whatever the inputs: the error names the node and the channels-last way
out, and no longer says "this is about the inputs ... pass real inputs". Generated over the
convolution ops that refuse NCHW/NCDHW on CPU, at several sizes."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.errors import VerificationError


def _conv(op: str, channels: int, size: int):
    import tensorflow as tf

    rng = np.random.default_rng(channels * 100 + size)
    if op == "conv3d":
        w = tf.constant(rng.normal(size=(2, 2, 2, channels, 3)).astype("float32"))
        spec = [None, channels, size, size, size]
        return spec, lambda x: tf.nn.conv3d(x, w, [1, 1, 1, 1, 1], "VALID", data_format="NCDHW")
    spec = [None, channels, size, size]
    if op == "depthwise":
        w = tf.constant(rng.normal(size=(2, 2, channels, 2)).astype("float32"))
        return spec, lambda x: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "VALID", data_format="NCHW")
    if op == "conv2d_transpose":
        w = tf.constant(rng.normal(size=(2, 2, 3, channels)).astype("float32"))
        return spec, lambda x: tf.nn.conv2d_transpose(x, w, tf.stack([tf.shape(x)[0], 3, size + 1, size + 1]),
                                                      [1, 1, 1, 1], "VALID", data_format="NCHW")
    w = tf.constant(rng.normal(size=(3, 3, channels, 4)).astype("float32"))
    return spec, lambda x: tf.nn.conv2d(x, w, 1, "SAME", data_format="NCHW")


@pytest.mark.parametrize("op,channels,size", [("conv2d", 3, 8), ("conv2d", 5, 6), ("depthwise", 2, 7),
                                              ("conv2d_transpose", 4, 5), ("conv3d", 2, 4)])
def test_channels_first_model_is_named_as_such_not_blamed_on_inputs(tmp_path, op, channels, size):
    import tensorflow as tf

    import tfopt

    spec, fn = _conv(op, channels, size)
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec(spec, tf.float32, name="x")])
    path = str(tmp_path / "savedmodel")
    tf.saved_model.save(module, path, signatures=module.f)
    with pytest.raises(VerificationError) as info:
        tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], quantize=["fp32"])
    message = str(info.value)
    assert "channels_first" in message and "channels_last" in message and "node '" in message, message
    assert "about the inputs" not in message and "--calibration" not in message, message
