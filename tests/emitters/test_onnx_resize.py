"""A bicubic resize left to tf2onnx (tfopt.emitters.onnx_resize): one whose output size the data
decides (``2·H + 1``), which neither TensorFlow's matrices nor the in-graph weights of
tfopt.emitters.resize_dynamic (a constant size) can write.

ONNX's cubic ``Resize`` weighs each tap at its exact sample offset, TensorFlow's kernel at the offset
rounded to 1/1024: at size ratios off that grid the two differ by ~1e-3, in every ONNX form
(the module docstring). Verification must then say which node and why, not only "differs". Generated
cases: the legacy kernel and the half-pixel one, one file each, verified at several odd image sizes
(bound 1e-4); at a 1 x 1 image (every offset 0) the file matches TensorFlow within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.conversion.parts import Artifact
from tfopt.emitters.onnx import emit_onnx
from tfopt.errors import VerificationError
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.verify import verify_artifact
from tfopt.verification.verify_inputs import VerifyInputs

KERNELS = {"legacy": (False, False), "half-pixel": (False, True)}
ODD = [(5, 7), (9, 4), (7, 10)]  # image sizes whose ratios to 11 x 13 are off the 1/1024 grid
BOUND = 1e-4


@pytest.fixture(scope="module", params=list(KERNELS))
def bicubic_onnx(request, tmp_path_factory):
    """``(model, path of its .onnx)``: ``ResizeBicubic`` of an ``[N, H, W, 2]`` image to ``2H+1 x 2W+1``."""
    ac, hp = KERNELS[request.param]

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, None, None, 2), name="x")
        size = t.shape(x)[1:3] * 2 + 1
        y = t.raw_ops.ResizeBicubic(images=x, size=size, align_corners=ac, half_pixel_centers=hp, name="bicubic")
        t.identity(y, name="y")

    model = graph_model(build, {"x": (None, None, None, 2)}, ["y"])
    return model, emit_onnx(model, str(tmp_path_factory.mktemp("bicubic") / "m.onnx"))


def _verify(model, path, height, width):
    artifact = Artifact("onnx", "fp32", path, 0, 0, "")
    x = np.random.default_rng(height * width).standard_normal((2, height, width, 2)).astype(np.float32)
    verify_artifact(artifact, lambda: runner_for("onnx", path, model), model, VerifyInputs({"x": x}, "made up"),
                    bound=BOUND)
    return artifact


@pytest.mark.parametrize(("height", "width"), ODD, ids=[f"{h}x{w}" for h, w in ODD])
def test_verification_names_the_resize_and_the_cause(bicubic_onnx, height, width):
    model, path = bicubic_onnx
    with pytest.raises(VerificationError) as info:
        _verify(model, path, height, width)
    message = str(info.value)
    assert "ResizeBicubic 'bicubic'" in message and "1/1024" in message and "--inputs" in message
    want = GraphRunner(model)({"x": np.zeros((1, height, width, 2), np.float32)})["y"]
    assert want.shape == (1, 2 * height + 1, 2 * width + 1, 2)


def test_on_the_1024_grid_the_file_is_tensorflows(bicubic_onnx):
    """A 1 x 1 image: every tap is the one pixel, whatever the offsets: the same file is TensorFlow's
    within 1e-5, so what the odd sizes show is the grid, not a broken file."""
    model, path = bicubic_onnx
    assert _verify(model, path, 1, 1).max_abs_err < 1e-5


@pytest.mark.parametrize("image", [(1, 5, 7, 2), (None, None, None, 2)], ids=["static", "dynamic"])
def test_a_constant_size_has_nothing_approximate(image):
    """A constant output size: TensorFlow's matrices (static image) or its weights built in the
    graph (dynamic image) take the node; nothing to name."""
    from tfopt.emitters.onnx_resize import approximate_ops

    def build(t):
        x = t.compat.v1.placeholder(t.float32, image, name="x")
        t.identity(t.raw_ops.ResizeBicubic(images=x, size=[11, 13]), name="y")

    assert approximate_ops(graph_model(build, {"x": image}, ["y"]).graph_def) == []
