"""Integration: keras.applications models (weights=None) frozen and optimized, checked against Keras."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt.graph import op_histogram
from tfopt.runtimes.tensorflow import GraphRunner

SIZE = 64  # small inputs keep CI fast; the graphs are the full architectures
BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "Rsqrt"}


def _build(name):
    import keras

    model = getattr(keras.applications, name)(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking statistics, so a wrong fold cannot hide
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


# The activation after each conv: whether it fuses is asked of this TensorFlow (see remapper_fuses).
ACTIVATION = {"MobileNetV2": "relu6", "ResNet50": "relu", "EfficientNetB0": "swish", "DenseNet121": "relu"}
# How each is saved, so that both loaders see a full architecture: a SavedModel (``model.export``) or a
# .keras file (its loader traces the same ``call(training=False)``). EfficientNetB0's export alone costs
# ~16 s of CPU tracing its 16 blocks, its .keras file 1 s.
SAVED_AS = {"MobileNetV2": "savedmodel", "ResNet50": "savedmodel", "EfficientNetB0": "keras",
            "DenseNet121": "savedmodel"}


# The slow lane (this file runs three times in .ci/run): ResNet50 (32 s): its residual Add + fully
# folded BatchNorms are MobileNetV2's; DenseNet121 (45 s, 430 layers): its BatchNorms after a Concat or
# a MaxPool, reported and lowered, are tests/passes/test_fold_batchnorm.py's
# test_batchnorm_after_concat_reported; their ReLU fusion is tests/passes/test_fuse_activation.py's.
SLOW = {"ResNet50", "DenseNet121"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ACTIVATION])
def test_optimized_application_matches_keras(name, tmp_path):
    from tfopt.passes.fuse_activation import remapper_fuses

    model = _build(name)
    if SAVED_AS[name] == "keras":
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
    else:
        path = str(tmp_path / name)
        model.export(path, verbose=False)

    portable, runtime, _, report = tfopt.optimize(path)  # verification on: raises on mismatch

    x = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    expected = model(x, training=False).numpy()
    for result in (portable, runtime):
        got = next(iter(GraphRunner(result)({result.inputs[0].name: x}).values()))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        ops = op_histogram(result.graph_def)
        assert not BN_OPS & set(ops), {k: ops[k] for k in BN_OPS & set(ops)}
        assert "Identity" not in ops
    fused = len(runtime.graph_def.node) < len(portable.graph_def.node)
    assert fused == remapper_fuses(ACTIVATION[name])  # fusion happened wherever this TensorFlow can fuse

    # Every BatchNorm multiply still in the graph is reported, with its reason.
    left = [n.name for n in portable.graph_def.node if n.op == "Mul" and "batchnorm" in n.name]
    reported = {s.node for p in report.passes for s in p.skips}
    assert set(left) <= reported, set(left) - reported
    if name == "DenseNet121":  # pre-activation blocks: BN after Concat/MaxPool cannot fold
        reasons = " ".join(str(s) for p in report.passes for s in p.skips)
        assert left and "is ConcatV2, not a conv/matmul" in reasons
    else:
        assert not left, left
