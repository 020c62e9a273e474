"""``LRN`` into OpenVINO through :mod:`tfopt.emitters.lrn_lower`, checked by value against TensorFlow.

Generated graphs: ``tf.nn.local_response_normalization`` of an NHWC image with 3 and 8 channels, each
``beta`` form (0.75, 0.5, 1), radius 1 and 5 (a window wider than the channels), on 3·N(0, 1) inputs
(OpenVINO's own LRN kernel was 0.82 off there). Bound: 1e-5 relative to ``max|y|`` (fp32; the
lowering's error is a few ulp).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.emitters.openvino import emit_openvino
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

RTOL = 1e-5


def _check(tmp_path, channels, radius, beta, bias=1.0, alpha=1e-2):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, 6, 8, channels), name="x")
        t.identity(t.nn.local_response_normalization(x, depth_radius=radius, bias=bias, alpha=alpha, beta=beta),
                   name="y")

    model = graph_model(build, {"x": (None, 6, 8, channels)}, ["y"])
    x = 3 * np.random.default_rng(channels + radius).standard_normal((2, 6, 8, channels)).astype(np.float32)
    got = runner_for("openvino", emit_openvino(model, str(tmp_path / "ov")), model)({"x": x})["y"]
    want = GraphRunner(model)({"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * np.abs(want).max())


@pytest.mark.parametrize(("channels", "radius", "beta"), [(3, 1, 0.75), (8, 5, 0.5), (8, 2, 1.0)])
def test_lrn_matches_tensorflow_in_openvino(tmp_path, channels, radius, beta):
    _check(tmp_path, channels, radius, beta, bias=2.0 if beta == 1.0 else 1.0, alpha=1e-4 if radius == 5 else 1e-2)
