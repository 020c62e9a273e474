"""A model whose ops TensorFlow cannot run on this CPU as configured (channels-first convolutions,
built for a GPU) fails whatever the inputs: the error names the node and the channels-last way
out, and no longer says "this is about the inputs ... pass real inputs". Generated over the
convolution ops that refuse NCHW/NCDHW on CPU, at several sizes.

Whether TensorFlow refuses depends on the CPU: with oneDNN (the default on AVX-512 CPUs,
``TF_ENABLE_ONEDNN_OPTS=1`` elsewhere) the channels-first kernels run. There the same models must
convert and give TensorFlow's numbers; ``.ci/run`` runs this file with oneDNN flipped, so both
branches are checked on every CI machine."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_artifacts_match
from tfopt.errors import VerificationError

TOLERANCE = 1e-4  # fp32 convolutions of a few dozen normal products, TensorFlow vs ONNX Runtime


def _runs_here(fn, spec) -> tuple[np.ndarray | None, np.ndarray]:
    """(TensorFlow's output on a sample, the sample), or (None, sample) when this CPU's kernels refuse the op."""
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=[2, *spec[1:]]).astype("float32")
    try:
        return np.asarray(tf.function(fn)(tf.constant(x))), x
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError):
        return None, x


def _converts_or_is_named(model, tmp_path, expected, x, words: str, *, refused_ok: bool = False) -> None:
    """Where TensorFlow runs the model (``expected`` given), it converts and matches TensorFlow;
    where it does not, the error names ``words``, the node, and not the inputs or a stage.
    ``refused_ok``: ``expected`` came from an eager call that does not tell whether the exported
    graph runs, so either outcome may come, each checked."""
    import tfopt

    out = str(tmp_path / "out")
    if expected is not None:
        try:
            result = tfopt.convert(model, out, to=["onnx"], quantize=["fp32"])
        except VerificationError as refused:
            if not refused_ok:
                raise
            info = refused
        else:
            assert_artifacts_match(out, result, x, expected, TOLERANCE)
            return
    else:
        with pytest.raises(VerificationError) as raised:
            tfopt.convert(model, out, to=["onnx"], quantize=["fp32"])
        info = raised.value
    message = str(info)
    assert words in message and "node '" in message and "report this" not in message, message
    assert "about the inputs" not in message and "--calibration" not in message, message


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

    spec, fn = _conv(op, channels, size)
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec(spec, tf.float32, name="x")])
    path = str(tmp_path / "savedmodel")
    tf.saved_model.save(module, path, signatures=module.f)
    expected, x = _runs_here(fn, spec)
    _converts_or_is_named(path, tmp_path, expected, x, "channels_first")


@pytest.mark.parametrize("config,words", [
    ({"filters": 4, "kernel_size": 2, "groups": 2}, "grouped convolution"),
    ({"filters": 6, "kernel_size": 3, "groups": 3}, "grouped convolution"),
    ({"filters": 3, "kernel_size": 2, "data_format": "channels_first"}, "channels_first"),
], ids=["groups2", "groups3", "channels-first"])
def test_keras3_layer_whose_exported_graph_cannot_run_is_named_not_blamed_on_freezing(tmp_path, config, words):
    """Keras 3 answers when called (it runs these Conv3D another way eagerly), but the graph it
    exports holds a Conv3D the CPU kernel refuses: before, "freezing: the frozen model does not run
    ... report this with the model"."""
    import keras

    keras.utils.set_random_seed(0)
    shape = (6, 5, 5, 4) if config.get("data_format") is None else (4, 5, 5, 6)
    channels = config["groups"] * 2 if "groups" in config else shape[0]
    shape = (*shape[:3], channels) if "groups" in config else shape
    x = keras.Input(shape, name="x")
    path = str(tmp_path / "model.keras")
    model = keras.Model(x, keras.layers.Conv3D(**config)(x))
    model.save(path)
    sample = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    expected = np.asarray(model(sample))  # Keras answers eagerly, another way; the exported graph decides
    _converts_or_is_named(path, tmp_path, expected, sample, words, refused_ok=True)
