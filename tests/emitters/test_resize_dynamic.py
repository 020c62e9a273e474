"""A ``ResizeBicubic`` of an image whose height and width only the data knows
(tfopt.emitters.resize_dynamic): TensorFlow's cubic weights built in the graph, in every target.

Generated cases: each kernel (legacy, align_corners, half-pixel) x each target, one file each,
run at image sizes whose ratios to the 11 x 13 output are off the 1/1024 grid (where tf2onnx's
``Resize`` was ~1e-3 off, and TFLite and OpenVINO had no conversion at all), up and down, a
one-pixel row among them, and an image holding an infinite pixel (non-finite values where
TensorFlow's are, and the same). Bound: 1e-5 absolute on standard normal images (sums of four
fp32 products per axis; measured 7e-7).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.emitters.onnx import emit_onnx
from tfopt.emitters.openvino import emit_openvino
from tfopt.emitters.tflite import emit_tflite
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

ATOL = 1e-5
SIZE = [11, 13]
KERNELS = {"legacy": (False, False), "align-corners": (True, False), "half-pixel": (False, True)}
EMIT = {"tflite": (emit_tflite, "m.tflite"), "onnx": (emit_onnx, "m.onnx"), "openvino": (emit_openvino, "ov")}
IMAGES = [(5, 7), (9, 4), (20, 31), (1, 3)]
FAST = {("legacy", "onnx"), ("half-pixel", "tflite"), ("align-corners", "openvino")}


def bicubic_model(kernel: str):
    ac, hp = KERNELS[kernel]

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, None, None, 2), name="x")
        y = t.raw_ops.ResizeBicubic(images=x, size=SIZE, align_corners=ac, half_pixel_centers=hp, name="bicubic")
        t.identity(y, name="y")

    return graph_model(build, {"x": (None, None, None, 2)}, ["y"])


@pytest.mark.parametrize(("kernel", "target"), [
    pytest.param(k, t, marks=[] if (k, t) in FAST else [pytest.mark.slow]) for k in KERNELS for t in EMIT])
def test_dynamic_bicubic_is_tensorflows_at_odd_sizes(tmp_path, kernel, target):
    from tfopt.emitters.resize_lower import lower_resizes

    model = bicubic_model(kernel)
    assert [line.split(" ")[0] for line in lower_resizes(model.graph_def)[1]] == ["bicubic"]
    emit, name = EMIT[target]
    run = runner_for(target, emit(model, str(tmp_path / name)), model)
    for height, width in IMAGES:
        x = np.random.default_rng(height * width).standard_normal((2, height, width, 2)).astype(np.float32)
        got, want = run({"x": x})["y"], GraphRunner(model)({"x": x})["y"]
        assert got.shape == want.shape == (2, *SIZE, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{height}x{width}")
    x = np.random.default_rng(0).standard_normal((1, 9, 4, 2)).astype(np.float32)
    x[0, 4, 1, 0] = np.inf  # TensorFlow: inf/NaN only where its taps reach the pixel
    got, want = run({"x": x})["y"], GraphRunner(model)({"x": x})["y"]
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, equal_nan=True)


def test_the_table_is_tensorflows():
    """The weights at offsets on the grid (a 2x resize: offsets 0 and 1/2) are the table's entries,
    as TensorFlow's kernel gives them for the identity basis."""
    import tensorflow as tf

    from tfopt.emitters.resize_dynamic import _axis

    for half in (False, True):
        taps, weights = _axis(tf, tf.constant(6), 12, align=False, half=half)
        built = sum(tf.one_hot(k, 6) * w[:, None] for k, w in zip(taps, weights)).numpy()
        eye = np.eye(6, dtype=np.float32).reshape(1, 6, 1, 6)
        want = tf.raw_ops.ResizeBicubic(images=eye, size=[12, 1], half_pixel_centers=half).numpy()[0, :, 0, :]
        np.testing.assert_array_equal(built, want)
