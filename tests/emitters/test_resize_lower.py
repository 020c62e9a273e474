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


def test_data_sized_legacy_bicubic_gets_tensorflows_coefficient_in_onnx(tmp_path):
    """An output size the data decides (twice the image's): the node stays tf2onnx's ``Resize``, with
    ``a = -0.75`` and edges clamped (exact where the sample offsets are multiples of 1/1024, as at 2x)."""
    def twice(t, x, _size):
        return t.raw_ops.ResizeBicubic(images=x, size=t.shape(x)[1:3] * 2, align_corners=False, half_pixel_centers=False)

    model = _model(twice, None, image=(None, None, None, 2))
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


# Inside control flow: resizes in tf.cond branches, tf.while_loop bodies and a loop inside a branch
# (TF2 control flow: StatelessIf/While bodies in the library), lowered in the bodies too.
FLOWS = ("cond", "while", "loop-in-cond")
BODY_CASES = [  # (flow, resize) x every target; the first of each target is in the fast lane
    ("cond", "ResizeBicubic_ac0_hp0"), ("while", "ResizeBicubic_ac0_hp1"), ("loop-in-cond", "ResizeBicubic_ac1_hp0"),
    ("cond", "tf2_lanczos3"), ("while", "tf2_area"), ("loop-in-cond", "tf2_mitchellcubic")]
FAST_BODY = {("cond", "ResizeBicubic_ac0_hp0", "onnx"), ("while", "ResizeBicubic_ac0_hp1", "tflite"),
             ("loop-in-cond", "ResizeBicubic_ac1_hp0", "openvino")}


def _control_flow_model(flow, resize, image=(2, 4, 5, 3)):
    """``y``: a resize up to 7x9 in a cond's true branch (area down to 3x2 in the false one); or a
    loop of two steps ``h + ¼·area(resize(h, 9x11), 4x5)``; or that loop inside a cond's branch.
    Both branches are taken across ``x`` and ``-x``."""

    def build(t):
        x = t.compat.v1.placeholder(t.float32, image, name="x")

        def loop(start):
            def body(i, h):
                return i + 1, h + 0.25 * t.image.resize(RESIZES[resize](t, h, [9, 11]), [4, 5], "area")

            return t.while_loop(lambda i, h: i < 2, body, [t.constant(0), start])[1]

        if flow == "while":
            y = loop(x)
        elif flow == "cond":
            y = t.cond(t.reduce_sum(x) > 0, lambda: RESIZES[resize](t, x, [7, 9]),
                       lambda: t.image.resize(x, [7, 9], "area"))
        else:
            y = t.cond(t.reduce_sum(x) > 0, lambda: loop(x), lambda: x * 3.0)
        t.identity(y * 2.0, name="y")

    return graph_model(build, {"x": image}, ["y"])


@pytest.mark.parametrize(("flow", "resize", "target"), [
    pytest.param(*case, target, marks=[] if (*case, target) in FAST_BODY else [pytest.mark.slow])
    for case in BODY_CASES for target in EMIT])
def test_resizes_in_control_flow_bodies_match_tensorflow(tmp_path, flow, resize, target):
    """Every target: the lowering reaches cond branches and loop bodies (before, TFLite refused the
    bicubic and tf2onnx wrote its own kernel there: 0.4 off on the legacy one)."""
    from tfopt.emitters.resize_lower import lower_resizes

    model = _control_flow_model(flow, resize)
    _, lowered, skips = lower_resizes(model.graph_def)
    assert not skips and lowered and all("/" in line.split(" ")[0] for line in lowered)  # in bodies
    emit, name = EMIT[target]
    written = emit(model, str(tmp_path / name))
    run = runner_for(target, written, model)
    for sign in (1.0, -1.0):  # both branches
        got, want = run({"x": X * sign})["y"], GraphRunner(model)({"x": X * sign})["y"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_a_dynamic_image_in_a_body_is_left_with_the_reason(tmp_path):
    """A body whose image has no static height and width keeps its op: a skip naming the body and
    the node; ONNX refuses such a ResizeArea (tf2onnx would write nearest) as in the main graph."""
    from tfopt.emitters.resize_lower import lower_resizes
    from tfopt.errors import ConversionError

    model = _control_flow_model("cond", "tf2_area", image=(None, None, None, 3))
    _, lowered, skips = lower_resizes(model.graph_def)
    assert not lowered and len(skips) == 2
    assert all(s.node.startswith("cond_") and "height and width must be static" in s.reason for s in skips)
    with pytest.raises(ConversionError, match=r"ResizeArea 'cond_\w+/.*height and width must be static"):
        emit_onnx(model, str(tmp_path / "m.onnx"))
