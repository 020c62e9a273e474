"""``DivNoNan``/``MulNoNan`` lowered for TFLite (:mod:`tfopt.emitters.tflite_lower_no_nan`): the converter's
own form of them (a select whose operands it broadcasts itself) is refused by LiteRT with a dynamic
batch at rank 5 ("BROADCAST_TO: Output shape must be broadcastable"), which is what Keras 2's
``GroupNormalization`` computes its moments with.

Generated: ``GroupNormalization`` models (several group counts, instance- and layer-norm-like ends,
after a conv and a ReLU) from tf_keras (Keras 2) and Keras 3, saved as ``.h5`` and converted by
``tfopt.convert`` (verified there), then run in LiteRT at two batch sizes against the Keras model:
within 1e-5·max|y| (fp32; a group norm's sums). And the two ops alone at rank 5 with zeros in the
divisor beside infs and NaNs: exact (integer sums), zeros, infs and NaNs where TensorFlow gives them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model
from tfopt.emitters.tflite import emit_tflite
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.runtimes.tflite import open_runner

RTOL = 1e-5
CASES = {  # id: (Keras, channels, groups of the first norm, groups of the second)
    "keras2-g3-g4": ("keras2", 12, 3, 4),
    "keras2-instance-layer": ("keras2", 6, -1, 1),
    "keras3-g2-instance": ("keras3", 8, 2, -1),
}


def _group_norm_h5(path: str, flavour: str, channels: int, first: int, second: int):
    if flavour == "keras2":
        import tf_keras as keras
    else:
        import keras
    rng = np.random.default_rng(channels)
    inputs = keras.Input((6, 5, 3), name="image")
    h = keras.layers.Conv2D(channels, 3, padding="same")(inputs)
    h = keras.layers.GroupNormalization(groups=first, name="norm_1")(h)
    h = keras.layers.GroupNormalization(groups=second, name="norm_2")(keras.layers.ReLU()(h))
    model = keras.Model(inputs, h)
    for layer in model.layers:  # gamma and beta away from 1 and 0: their broadcast is checked too
        if layer.name.startswith("norm"):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) for w in layer.get_weights()])
    model.save(path)
    return model


@pytest.mark.parametrize(("flavour", "channels", "first", "second"), CASES.values(), ids=CASES.keys())
def test_group_normalization_from_h5_runs_in_litert(tmp_path, flavour, channels, first, second):
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    path = str(tmp_path / "gn.h5")
    model = _group_norm_h5(path, flavour, channels, first, second)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite"], quantize=["fp32"], report_runs=1)
    assert [a.format for a in result.artifacts] == ["tflite"], [f.reason for f in result.failed]
    assert not result.artifacts[0].fixed_shapes  # the batch stays dynamic
    runner = runner_for("tflite", os.path.join(out, result.artifacts[0].path), manifest_model(out))
    rng = np.random.default_rng(7)
    for batch in (1, 3):
        x = (rng.standard_normal((batch, 6, 5, 3)) * 2 + 0.5).astype(np.float32)
        want = np.asarray(model(x))
        got = next(iter(runner({"image": x}).values()))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * np.abs(want).max())


def _guarded_ops(t):
    x = t.compat.v1.placeholder(t.float32, [None, 4, 3, 2, 5], name="x")
    d = t.compat.v1.placeholder(t.float32, [None, 1, 1, 2, 1], name="d")
    sums = t.reduce_sum(x, [1, 2, 4], keepdims=True)
    t.identity(t.math.divide_no_nan(sums, d), name="div")
    t.identity(t.math.divide_no_nan(x, d), name="div_broadcast")
    t.identity(t.math.multiply_no_nan(x, d), name="mul")


def test_div_no_nan_and_mul_no_nan_are_exact_in_litert(tmp_path):
    from tfopt.emitters.tflite_lower import lower_for_builtins

    names = ["div", "div_broadcast", "mul"]
    model = graph_model(_guarded_ops, {"x": (None, 4, 3, 2, 5), "d": (None, 1, 1, 2, 1)}, names)
    lowered = lower_for_builtins(model)
    ops = [line.split("(")[1].split(":")[0] for line in lowered.model.provenance["lowered_for_builtins"]]
    assert sorted(ops) == ["DivNoNan", "DivNoNan", "MulNoNan"]
    runner = open_runner(emit_tflite(model, str(tmp_path / "m.tflite")), model)
    rng = np.random.default_rng(0)
    try:
        for batch in (2, 3):
            x = rng.integers(-4, 5, (batch, 4, 3, 2, 5)).astype(np.float32)  # sums exact in any order
            x[0, 0, 0, :, 0] = np.inf  # inf and NaN where d is 0 (kept at 0) and where it is not
            x[1, 1, 0, :, 1] = np.nan
            d = rng.standard_normal((batch, 1, 1, 2, 1)).astype(np.float32)
            d[0, ..., 0, :] = 0.0  # zeros in the divisor / factor
            got, want = runner({"x": x, "d": d}), GraphRunner(model)({"x": x, "d": d})
            for name in names:
                assert (want[name] == 0).any()
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    finally:
        runner.close()
