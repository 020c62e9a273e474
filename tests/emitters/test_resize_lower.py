"""Every TensorFlow image resize into every target, checked by value against TensorFlow.

Generated graphs: one resize of a batch-2 NHWC ``4×5×3`` image (up to ``7×9``, a ratio that is
no multiple of 1/1024, and down to ``3×2``), by the TF1 raw ops with each ``align_corners`` /
``half_pixel_centers`` setting and by ``tf.image.resize``'s other methods. Each artifact must
match TensorFlow within 1e-5 (fp32): bicubic, area and scale-and-translate through
:mod:`tfopt.emitters.resize_lower` (TensorFlow's weights as matrix products), bilinear and
nearest through the converters' own ops (tf2onnx's scales fixed by
:mod:`tfopt.emitters.onnx_resize`). The fast cases are one proof per fix; the sweep is slow.
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
EMIT = {"tflite": (emit_tflite, "m.tflite"), "onnx": (emit_onnx, "m.onnx"), "openvino": (emit_openvino, "ov")}
X = np.random.default_rng(3).standard_normal((2, 4, 5, 3)).astype(np.float32)


def _raw(op, ac, hp):
    return lambda t, x, size: getattr(t.raw_ops, op)(images=x, size=size, align_corners=ac, half_pixel_centers=hp)


def _tf2(method, antialias=False):
    return lambda t, x, size: t.image.resize(x, size, method, antialias=antialias)


RESIZES = {f"{op}_ac{int(ac)}_hp{int(hp)}": _raw(op, ac, hp)
           for op in ("ResizeBicubic", "ResizeBilinear", "ResizeNearestNeighbor")
           for ac, hp in ((False, False), (True, False), (False, True))}
RESIZES.update({f"tf2_{m}{'_aa' if aa else ''}": _tf2(m, aa) for m, aa in (
    ("area", False), ("lanczos3", False), ("lanczos5", False), ("gaussian", False), ("mitchellcubic", False),
    ("bilinear", True), ("bicubic", True))})
SIZES = {"up": [7, 9], "down": [3, 2]}
FAST = [  # one proof per fix
    ("ResizeBicubic_ac0_hp0", "up", "onnx"),  # tf2onnx's a = -0.5 (0.4 off) and short scales
    ("ResizeBicubic_ac1_hp0", "down", "tflite"),  # no TFLite builtin
    ("tf2_lanczos3", "up", "openvino"),  # ScaleAndTranslate
    ("ResizeBilinear_ac0_hp1", "up", "onnx"),  # float32(9/5) * 5 floors to 8 columns
]


def _model(resize, size, image=(None, 4, 5, 3)):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, image, name="x")
        t.identity(resize(t, x, size) * 2.0, name="y")

    return graph_model(build, {"x": image}, ["y"])


def _check(tmp_path, model, target, x=X):
    emit, name = EMIT[target]
    written = emit(model, str(tmp_path / name))
    got = runner_for(target, written, model)({"x": x})["y"]
    want = GraphRunner(model)({"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(("resize", "size", "target"), FAST)
def test_resize_matches_tensorflow(tmp_path, resize, size, target):
    _check(tmp_path, _model(RESIZES[resize], SIZES[size]), target)


@pytest.mark.slow
@pytest.mark.parametrize("target", list(EMIT))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("resize", list(RESIZES))
def test_every_resize_in_every_target(tmp_path, resize, size, target):
    _check(tmp_path, _model(RESIZES[resize], SIZES[size]), target)


def test_dynamic_size_legacy_bicubic_gets_tensorflows_coefficient_in_onnx(tmp_path):
    """Height and width unknown: the node stays tf2onnx's ``Resize``, with ``a = -0.75`` and edges
    clamped (exact where the sample offsets are multiples of 1/1024, as at 2x)."""
    model = _model(_raw("ResizeBicubic", False, False), [12, 12], image=(None, None, None, 2))
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 2)).astype(np.float32)
    _check(tmp_path, model, "onnx", x)


def test_the_matrices_are_tensorflows_kernel():
    """The separable form reproduces the op on a random image, for every kernel, and a dynamic
    image is left to the converter with the reason."""
    from tfopt.emitters.resize_lower import lower_resizes

    for name, resize in RESIZES.items():
        for size in SIZES.values():
            model = _model(resize, size, image=(1, 4, 5, 3))
            _, lowered, skips = lower_resizes(model.graph_def)
            wanted = "Bicubic" in name or name.startswith("tf2_")
            assert (len(lowered), skips) == ((1, []) if wanted else (0, [])), name
    _, lowered, skips = lower_resizes(_model(RESIZES["tf2_area"], [7, 9], image=(1, None, None, 3)).graph_def)
    assert not lowered and "height and width must be static" in skips[0].reason


def test_dynamic_size_area_resize_is_a_typed_refusal_in_onnx(tmp_path):
    """tf2onnx writes ResizeArea as a nearest resize; without static sizes there are no weights to write."""
    from tfopt.errors import ConversionError

    model = _model(RESIZES["tf2_area"], [7, 9], image=(None, None, None, 3))
    with pytest.raises(ConversionError, match=r"ResizeArea 'resize/ResizeArea'.*height and width must be static"):
        emit_onnx(model, str(tmp_path / "m.onnx"))
