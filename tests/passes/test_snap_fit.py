"""The cluster snap with real inputs: centroids fitted to each layer's output, then the sequential
bias correction shared with the int8 engine. Generated chains of conv/matmul layers with BatchNorm
(depths, widths, ops), and the tf_keras digits CNN end to end in TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.passes.optimizing import optimize
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.verify_inputs import VerifyInputs

N = 4


def _bn(t, y, rng):
    c = y.shape[-1]
    gamma, var = rng.uniform(0.2, 3.0, c).astype(np.float32), rng.uniform(0.2, 3.0, c).astype(np.float32)
    beta, mean = rng.normal(0, 1, c).astype(np.float32), rng.normal(0, 1, c).astype(np.float32)
    if len(y.shape) == 2:
        return t.nn.batch_normalization(y, mean, var, beta, gamma, 1e-3)
    return t.raw_ops.FusedBatchNormV3(x=y, scale=gamma, offset=beta, mean=mean, variance=var, epsilon=1e-3,
                                      is_training=False)[0]


def _chain(op, depth, width, seed):
    """x -> ReLU -> [op -> BatchNorm -> ReLU] x depth -> out, each kernel TFMOT-clustered to N values
    (layers ``layer0``...); the inputs have a positive mean, so every snap shifts its channels."""
    rng = np.random.default_rng(seed)
    x_shape = (None, 6, 6, 3) if op == "conv2d" else (None, 5)
    channels = [x_shape[-1], *[width + 2 * i for i in range(depth)]]

    def build(t):
        h = t.nn.relu(t.compat.v1.placeholder(t.float32, x_shape, name="x"))
        for i in range(depth):
            shape = (3, 3, channels[i], channels[i + 1]) if op == "conv2d" else (channels[i], channels[i + 1])
            w = rng.choice(np.linspace(-1.0, 1.0, N).astype(np.float32), size=shape)
            with t.name_scope(f"model/layer{i}"):
                y = t.nn.conv2d(h, w, 1, "SAME") if op == "conv2d" else t.matmul(h, w)
                h = t.nn.relu(_bn(t, y, rng))
        t.identity(h, name="out")
    layers = [{"layer": f"layer{i}", "actions": ["clustered"], "left_alone": None} for i in range(depth)]
    provenance = {"compression": {"cluster": N, "cluster_init": "kmeans++", "prune": None, "layers": layers}}
    model = graph_model(build, {"x": x_shape}, ["out"]).replace(provenance=provenance)
    rows = 8 if op == "conv2d" else 64  # a matmul sees one position per row
    return model, lambda n, s: np.random.default_rng(s).normal(1.0, 0.5, (n * rows, *x_shape[1:])).astype(np.float32)


CHAINS = [("conv2d", 2, 4, 0), ("conv2d", 3, 6, 1), ("matmul", 2, 8, 2), ("matmul", 4, 5, 3)]


@pytest.mark.parametrize(("op", "depth", "width", "seed"), CHAINS, ids=[f"{o}-{d}deep-{w}wide" for o, d, w, _ in CHAINS])
def test_fitted_and_corrected_snap_follows_the_float_chain(op, depth, width, seed):
    model, inputs = _chain(op, depth, width, seed)
    rows = inputs(1, 1)
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    uncorrected, _, _ = optimize(model, skip=["fuse_activation"], verify=False)
    corrected, _, report = optimize(model, skip=["fuse_activation"], verify=False,
                                    verified_at=VerifyInputs({"x": rows}, "calibration"))
    assert report.skips() == []
    snapped = corrected.provenance["compression"]["snapped_after_fold"]
    assert [d["layer"] for d in snapped] == [f"layer{i}" for i in range(depth)]
    assert all(d["unique_after"] <= N and d["centroids"] == "fitted to the output" for d in snapped)
    # sequential: the last layer's correction absorbs every shift left above it, so on the calibration
    # rows its biased output has the float chain's mean per channel (float32 sums: 1e-4 of its scale)
    last = next(n.name for n in corrected.graph_def.node if n.op in ("BiasAdd", "AddV2", "Add")
                and n.input[0] == snapped[-1]["node"])
    want = GraphRunner(plain.replace(outputs=_spec(last)))({"x": rows})[last]
    got = GraphRunner(corrected.replace(outputs=_spec(last)))({"x": rows})[last]
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.reshape(-1, got.shape[-1]).mean(0), want.reshape(-1, want.shape[-1]).mean(0),
                               atol=1e-4 * scale)
    # held out: the model's output closer to the float chain's than the plain k-means snap's, in mean
    # square and in per-channel mean
    held = {"x": inputs(4, 2)}
    ref = GraphRunner(plain)(held)["out"]
    errors = {k: GraphRunner(m)(held)["out"] - ref for k, m in (("uncorrected", uncorrected), ("corrected", corrected))}
    mse = {k: float(np.mean(e ** 2)) for k, e in errors.items()}
    shift = {k: float(np.abs(e.reshape(-1, e.shape[-1]).mean(0)).mean()) for k, e in errors.items()}
    assert mse["corrected"] < mse["uncorrected"] and shift["corrected"] < shift["uncorrected"], (mse, shift)


def _spec(name):
    from tfopt.graph import TensorSpec

    return [TensorSpec(name, f"{name}:0", "float32", None)]


def test_digits_cnn_agreement_and_mean_error(keras2_digits):
    """16 clusters on the tf_keras digits CNN (every clustered layer, post-training): with the
    calibration rows, top-1 agreement with the float model on the 360 held-out digits is at least the
    uncorrected snap's, and the probabilities' mean error per class is lower."""
    from tfopt.loaders.compressing import compression

    x = keras2_digits["x"]
    want = keras2_digits["model"].predict(x, verbose=0)
    calibration = VerifyInputs({"images": keras2_digits["x_calib"][:8]}, "calibration")
    got = {}
    for label, at in (("uncorrected", None), ("corrected", calibration)):
        portable, _, _ = optimize_digits(keras2_digits["path"], compression(cluster=16), at)
        got[label] = GraphRunner(portable)({"images": x})[portable.outputs[0].name]
    agree = {k: np.mean(v.argmax(-1) == want.argmax(-1)) for k, v in got.items()}
    shift = {k: np.abs((v - want).mean(0)).mean() for k, v in got.items()}
    assert agree["corrected"] >= agree["uncorrected"] and shift["corrected"] < shift["uncorrected"], (agree, shift)


def optimize_digits(path, compress, verified_at):
    from tfopt.conversion.pipeline import run_freeze
    from tfopt.options import FreezeOptions, LoadOptions

    frozen, _ = run_freeze(path, LoadOptions(compress=compress), FreezeOptions(verify=False))
    return optimize(frozen, verify=False, verified_at=verified_at)
