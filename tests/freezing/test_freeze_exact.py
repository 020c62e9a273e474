"""The freezing check compares what freezing did, exactly (``verify_against_reference(as_written=True)``).

Freezing turns variables into the same values as constants; a session's grappler then rewrites the
constant graph (BatchNorm scales folded into conv weights, fusions), which changes float32 rounding
that grows with depth: on deep residual conv+BatchNorm stacks it exceeds the freezing bound
``1e-5·(1 + max|y|)`` although the frozen graph, run as written, is the model bit for bit. The check
runs both sides as written and keeps its bound; a frozen constant that is really wrong still fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.errors import VerificationError
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL
from tfopt.verification.verify import verify_against_reference

# (keras, depth, width, dilations, input channels, BatchNorm gain): deep enough that grappler's
# rewriting of the frozen graph changes the output beyond the freezing bound on x86-64 CPUs.
_SLOW = pytest.mark.slow  # the cheapest stack proves the class in the fast lane; the others in `make test-all`
STACKS = [
    pytest.param("tf_keras", 32, 64, (1, 2, 4, 8), 441, 60.0, marks=_SLOW),
    pytest.param("keras3", 32, 64, (1, 2, 4, 8), 441, 60.0, marks=_SLOW),
    pytest.param("tf_keras", 24, 96, (1, 2, 4), 441, 60.0, marks=_SLOW),
    ("keras3", 24, 96, (1, 3), 320, 60.0),
]
SIZE = 32


def _keras(which: str):
    if which == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _residual_stack(path: str, which: str, depth: int, width: int, dilations: tuple[int, ...], channels: int,
                    gain: float, seed: int = 0) -> str:
    """Save ``x → conv → depth × (x + relu(BN(dilated conv(x)))) → conv → BN → sigmoid`` with trained-looking
    BatchNorm statistics (each layer's mean/variance of its own input on data, scale ``gain``: a sharp
    map, as a deep segmentation net's last layers are)."""
    k = _keras(which)
    k.backend.clear_session()
    k.utils.set_random_seed(seed)
    x = inp = k.Input((SIZE, SIZE, channels), name="x")
    x = k.layers.Conv2D(width, 3, padding="same")(x)
    for i in range(depth):
        y = k.layers.Conv2D(width, 3, padding="same", dilation_rate=dilations[i % len(dilations)])(x)
        y = k.layers.Activation("relu")(k.layers.BatchNormalization()(y))
        x = k.layers.Add()([x, y])
    y = k.layers.BatchNormalization()(k.layers.Conv2D(1, 3, padding="same")(x))
    model = k.Model(inp, k.layers.Activation("sigmoid", name="map")(y))
    data = np.random.default_rng(seed + 1).standard_normal((4, SIZE, SIZE, channels)).astype("float32")
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            seen = np.asarray(k.Model(inp, layer.input)(data, training=False))
            g, b, _, _ = layer.get_weights()
            layer.set_weights([g * gain, b, seen.mean((0, 1, 2)), seen.var((0, 1, 2))])
    model.save(path)
    return path


def _scaled(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got.astype("float64") - ref).max()) / (1.0 + float(np.abs(ref).max()))


@pytest.mark.parametrize("which,depth,width,dilations,channels,gain", STACKS)
def test_a_deep_conv_bn_stack_freezes_with_the_exact_bound(tmp_path, which, depth, width, dilations, channels, gain):
    path = _residual_stack(str(tmp_path / ("m.h5" if which == "tf_keras" else "m.keras")), which, depth, width,
                           dilations, channels, gain)
    original = tfopt.load(path)
    frozen, report = tfopt.freeze(original)  # the default check: 1e-5/1e-5, no flags
    at = report.verified_at.feeds
    reference = original.reference(at)["map"]
    as_written = GraphRunner(frozen, rewrites=False)(at)["map"]
    rewritten = GraphRunner(frozen)(at)["map"]
    scaled = _scaled(as_written, reference)
    print(f"{which} {depth}x{width}: as written {scaled:.3g}, grappler {_scaled(rewritten, reference):.3g}")
    assert scaled <= FREEZE_ATOL  # what freezing did: within the freezing bound (here: exact)
    assert max(d.max_abs_err for d in report.verification) <= FREEZE_ATOL * (1 + float(np.abs(reference).max()))


def _corrupted(model, factor: float):
    """``model`` with its last conv kernel (the ``[3, 3, C, 1]`` constant) scaled by ``factor``."""
    from tensorflow.core.framework import graph_pb2

    from tfopt._tf import const_value

    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(model.graph_def)
    kernels = [n for n in graph_def.node if n.op == "Const" and np.ndim(const_value(n)) == 4
               and np.shape(const_value(n))[-1] == 1]
    assert kernels, "no head kernel among the frozen constants"
    node = kernels[-1]
    value = np.asarray(const_value(node)) * np.float32(factor)
    node.attr["value"].tensor.CopyFrom(tf().make_tensor_proto(value.astype("float32")))
    return model.replace(graph_def=graph_def)


@pytest.mark.parametrize("which", ["keras3", "tf_keras"])
def test_a_wrong_frozen_constant_still_fails_the_check(tmp_path, which):
    path = _residual_stack(str(tmp_path / ("m.h5" if which == "tf_keras" else "m.keras")), which, 4, 16, (1, 2), 8,
                           4.0)
    original = tfopt.load(path)
    frozen, report = tfopt.freeze(original)
    verify_against_reference(original, frozen, {}, atol=FREEZE_ATOL, rtol=FREEZE_RTOL, inputs=report.verified_at,
                             as_written=True)  # the untouched frozen model passes
    with pytest.raises(VerificationError, match="freezing"):
        verify_against_reference(original, _corrupted(frozen, 1.001), {}, atol=FREEZE_ATOL, rtol=FREEZE_RTOL,
                                 inputs=report.verified_at, as_written=True)
