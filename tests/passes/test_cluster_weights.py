"""cluster_weights: TFMOT-clustered kernels snapped to N values after BatchNorm folding; where it
must not fire; and end to end on a tf_keras digits CNN with BatchNorm, read back from the artifact."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import const_value
from tfopt.graph import node_map
from tfopt.passes._kmeans1d import kmeans_1d
from tfopt.passes.optimizing import optimize
from tfopt.runtimes.tensorflow import GraphRunner

RNG = np.random.default_rng(0)
N = 4
C = 6


def _clustered(*shape, n=N):
    """A kernel as TFMOT leaves it: every value one of ``n`` centroids."""
    return RNG.choice(np.linspace(-1.0, 1.0, n).astype(np.float32), size=shape)


def _bn(t, y):
    c = y.shape[-1]
    gamma, var = RNG.uniform(0.2, 3.0, c).astype(np.float32), RNG.uniform(0.2, 3.0, c).astype(np.float32)
    beta, mean = RNG.normal(0, 1, c).astype(np.float32), RNG.normal(0, 1, c).astype(np.float32)
    if len(y.shape) == 2:  # FusedBatchNorm is 4-D only; Keras 3's decomposed form folds the same way
        return t.nn.batch_normalization(y, mean, var, beta, gamma, 1e-3)
    return t.raw_ops.FusedBatchNormV3(x=y, scale=gamma, offset=beta, mean=mean, variance=var, epsilon=1e-3,
                                      is_training=False)[0]


# op -> (input shape, kernel shape, fn(t, x, w))
OPS = {
    "conv2d": ((1, 8, 8, 3), (3, 3, 3, C), lambda t, x, w: t.nn.conv2d(x, w, 1, "SAME")),
    "depthwise": ((1, 8, 8, 3), (3, 3, 3, 2), lambda t, x, w: t.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME")),
    "matmul": ((2, 5), (5, C), lambda t, x, w: t.matmul(x, w)),
}


def _compression(*, actions=("clustered",), left_alone=None, shapes=None, layer="conv1", init="kmeans++"):
    entry = {"layer": layer, "actions": list(actions), "left_alone": left_alone}
    if shapes is not None:
        entry["clustered_shapes"] = shapes
    return {"compression": {"cluster": N, "cluster_init": init, "prune": None, "layers": [entry]}}


def _model(op, provenance, kernel=None):
    x_shape, w_shape, make = OPS[op]
    w = _clustered(*w_shape) if kernel is None else kernel

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, *x_shape[1:]), name="x")
        with t.name_scope("model/conv1"):
            y = _bn(t, make(t, x, w))
        t.nn.relu(y, name="out")
    return graph_model(build, {"x": x_shape}, ["out"]).replace(provenance=provenance), x_shape


def _kernel(model, op_type):
    nodes = node_map(model.graph_def)
    op = next(n for n in model.graph_def.node if n.op == op_type)
    return const_value(nodes[op.input[1]])


OP_TYPES = {"conv2d": "Conv2D", "depthwise": "DepthwiseConv2dNative", "matmul": "MatMul"}


@pytest.mark.parametrize("op", sorted(OPS))
def test_snaps_the_folded_kernel_to_n_values(op):
    model, x_shape = _model(op, _compression())
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    snapped, _, report = optimize(model, skip=["fuse_activation"])  # the exact folds are verified first
    folded = _kernel(plain, OP_TYPES[op])
    assert len(np.unique(folded)) > N  # what plain TFMOT deploys: N values scaled per channel
    kernel = _kernel(snapped, OP_TYPES[op])
    assert len(np.unique(kernel)) <= N and kernel.shape == folded.shape
    # a k-means fixed point: each shared value is the mean of the folded values it replaced
    for value in np.unique(kernel):
        np.testing.assert_allclose(value, folded[kernel == value].mean(), rtol=1e-5, atol=1e-6)
    done = snapped.provenance["compression"]["snapped_after_fold"]
    assert [d["layer"] for d in done] == ["conv1"] and done[0]["unique_after"] <= N
    assert "cluster_weights" in [p.name for p in report.passes]
    assert [s for _, s in report.skips()] == [f"{done[0]['node']}: bias of 1 snapped kernel(s) not corrected: no "
                                              "--eval-data or --calibration (made-up inputs have the wrong mean); "
                                              "pass one"]
    assert snapped.reference is None  # artifacts are verified against the snapped graph
    # numerically: k-means does at least as well as N evenly spaced values (nearest), and the layer's
    # output moves (relative RMS, on normal inputs) by no more than 1.5x the kernel's relative change
    grid = np.linspace(folded.min(), folded.max(), N)
    on_grid = grid[np.abs(folded[..., None] - grid).argmin(-1)]
    change = np.linalg.norm(kernel - folded) / np.linalg.norm(folded)
    assert change <= np.linalg.norm(on_grid - folded) / np.linalg.norm(folded)
    x = RNG.normal(0, 1, (64, *x_shape[1:])).astype(np.float32)
    want, got = GraphRunner(plain)({"x": x})["out"], GraphRunner(snapped)({"x": x})["out"]
    assert np.linalg.norm(got - want) <= 1.5 * change * np.linalg.norm(want)


# --- bias correction: the snap's per-channel mean output error, put back into the bias --------------

def _skewed_model(op, channels):
    """x -> ReLU -> op -> BatchNorm: the op's input has a positive mean, so the snap's per-channel
    error has one too."""
    x_shape, w_shape, make = OPS[op]
    w = _clustered(*w_shape[:-1], channels if op != "depthwise" else w_shape[-1])

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, *x_shape[1:]), name="x")
        with t.name_scope("model/conv1"):
            y = _bn(t, make(t, t.nn.relu(x), w))
        t.identity(y, name="out")
    return graph_model(build, {"x": x_shape}, ["out"]).replace(provenance=_compression())


def _skewed_inputs(x_shape, rows, seed, mean=1.0):
    return np.random.default_rng(seed).normal(mean, 0.5, (rows, *x_shape[1:])).astype(np.float32)


@pytest.mark.parametrize("mean", [0.5, 2.0])
@pytest.mark.parametrize("channels", [4, 12])
@pytest.mark.parametrize("op", sorted(OPS))
def test_bias_correction_removes_the_mean_error(op, channels, mean):
    from tfopt.verification.verify_inputs import VerifyInputs

    model = _skewed_model(op, channels)
    x_shape = OPS[op][0]
    rows = 8 if op != "matmul" else 128  # a matmul sees one position per row (64 left a sampling error of 0.27 on one case)
    calibration = VerifyInputs({"x": _skewed_inputs(x_shape, rows, 1, mean)}, "calibration")
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    uncorrected, _, report = optimize(model, skip=["fuse_activation"], verify=False)
    assert any("not corrected: no --eval-data or --calibration" in s for _, s in report.skips())
    corrected, _, report = optimize(model, skip=["fuse_activation"], verify=False, verified_at=calibration)
    assert report.skips() == []
    assert "bias" in corrected.provenance["compression"]["snapped_after_fold"][0]["bias_corrected"]
    # at most N values: clusters re-assigned through the inputs (tfopt.passes._snap_assign), their values
    # fitted to the output (tfopt.passes._snap_fit)
    assert len(np.unique(_kernel(corrected, OP_TYPES[op]))) <= N
    held_out = {"x": _skewed_inputs(x_shape, 256, 2, mean)}
    want = GraphRunner(plain)(held_out)["out"]
    errors = {name: GraphRunner(m)(held_out)["out"] - want for name, m in
              (("uncorrected", uncorrected), ("corrected", corrected))}
    shift = {k: np.linalg.norm(e.reshape(-1, e.shape[-1]).mean(0)) for k, e in errors.items()}
    rms = {k: np.sqrt(np.mean(e ** 2)) for k, e in errors.items()}
    assert shift["uncorrected"] > 0.01 * np.sqrt(np.mean(want ** 2))  # by construction, the snap shifts channels
    # per-channel mean error on held-out data: at most a quarter of the uncorrected (what is left is the
    # calibration rows' sampling error); the outputs closer to the unclustered model's
    assert shift["corrected"] <= 0.25 * shift["uncorrected"]
    assert rms["corrected"] < rms["uncorrected"]


def test_bias_correction_adds_a_bias_where_there_is_none():
    from tfopt.verification.verify_inputs import VerifyInputs

    x_shape, w_shape, make = OPS["conv2d"]
    w = RNG.normal(0, 1, w_shape).astype(np.float32)

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, *x_shape[1:]), name="x")
        with t.name_scope("model/conv1"):
            t.identity(make(t, t.nn.relu(x), w), name="out")  # the conv takes its name: a model output
    model = graph_model(build, {"x": x_shape}, ["model/conv1/out"]).replace(provenance=_compression())
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    calibration = VerifyInputs({"x": _skewed_inputs(x_shape, 8, 1)}, "calibration")
    corrected, _, report = optimize(model, skip=["fuse_activation"], verify=False, verified_at=calibration)
    assert report.skips() == []
    entry = corrected.provenance["compression"]["snapped_after_fold"][0]
    assert entry["bias_corrected"].startswith("new BiasAdd")
    held_out = {"x": _skewed_inputs(x_shape, 64, 2)}
    out = "model/conv1/out"
    uncorrected, _, _ = optimize(model, skip=["fuse_activation"], verify=False)
    shift = {name: np.abs((GraphRunner(m)(held_out)[out] - GraphRunner(plain)(held_out)[out]).reshape(-1, C).mean(0)).max()
             for name, m in (("uncorrected", uncorrected), ("corrected", corrected))}
    assert shift["corrected"] <= 0.25 * shift["uncorrected"]


@pytest.mark.parametrize(("op", "shape"), [("Conv2D", (3, 3, 4, 6)), ("Conv2D", (1, 1, 8, 5)),
                                           ("DepthwiseConv2dNative", (3, 3, 4, 2)), ("MatMul", (7, 3))])
def test_float_target_is_the_original_kernel_folded_as_deployed(op, shape):
    from tensorflow.core.framework import node_def_pb2

    from tfopt.passes.cluster_weights import _float_target

    node = node_def_pb2.NodeDef(name="op", op=op)
    original = RNG.normal(0, 1, shape).astype(np.float32)
    clustered = kmeans_1d(original, N).astype(np.float32)  # TFMOT's kernel: N values, its own error
    channels = shape[-1] * (shape[-2] if op == "DepthwiseConv2dNative" else 1)
    scale = RNG.uniform(0.1, 5.0, channels)
    fold = lambda w: (w.reshape(-1, channels) * scale).reshape(shape).astype(np.float32)  # noqa: E731
    deployed = fold(clustered)
    target = _float_target(node, deployed, [(original[..., :1], clustered[..., :1]), (original, clustered)])
    np.testing.assert_allclose(target, fold(original), rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(target - fold(original)) < 1e-3 * np.linalg.norm(deployed - fold(original))
    # not derivable: another fold changed the kernel beyond a per-channel scale, or no original
    changed = deployed.copy()
    changed.reshape(-1)[0] += 1.0
    assert _float_target(node, changed, [(original, clustered)]) is changed
    assert _float_target(node, deployed, []) is deployed


def _reasons(model):
    portable, _, report = optimize(model, skip=["fuse_activation"], verify=False)
    return portable, " | ".join(s for p, s in report.skips() if p == "cluster_weights")


@pytest.mark.parametrize(("provenance", "reason"), [
    (_compression(actions=(), left_alone="excluded (--exclude)"), "layer 'conv1' was not clustered (excluded (--exclude))"),
    (_compression(shapes=[[9, 9]]), "TFMOT did not cluster this kernel of layer 'conv1'"),
    (_compression(layer="other"), "not in a Keras layer TFMOT saw"),
], ids=["excluded", "kernel-not-clustered", "unknown-layer"])
def test_not_snapped_with_reason(provenance, reason):
    model, _ = _model("conv2d", provenance)
    portable, reasons = _reasons(model)
    assert reason in reasons
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    np.testing.assert_array_equal(_kernel(portable, "Conv2D"), _kernel(plain, "Conv2D"))  # bit for bit


def test_kernel_shared_by_two_convs_not_snapped():
    w = _clustered(3, 3, 3, C)

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 8, 8, 3), name="x")
        with t.name_scope("model/conv1"):
            kernel = t.constant(w)
            a = _bn(t, t.nn.conv2d(x, kernel, 1, "SAME"))
            b = t.nn.conv2d(x, kernel, 1, "SAME")
        t.identity(a + b, name="out")
    model = graph_model(build, {"x": (1, 8, 8, 3)}, ["out"]).replace(provenance=_compression())
    portable, reasons = _reasons(model)
    assert "is shared by 2 ops; snapping it for one would change the others" in reasons
    np.testing.assert_array_equal(_kernel(portable, "Conv2D"), w)


def test_graph_input_kernel_not_snapped():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 8, 8, 3), name="x")
        w = t.compat.v1.placeholder(t.float32, (3, 3, 3, C), name="w")
        with t.name_scope("model/conv1"):
            t.identity(_bn(t, t.nn.conv2d(x, w, 1, "SAME")), name="out")
    model = graph_model(build, {"x": (1, 8, 8, 3), "w": (3, 3, 3, C)}, ["model/conv1/out"])
    _, reasons = _reasons(model.replace(provenance=_compression()))
    assert "its kernel is not a constant (a graph input)" in reasons


def test_without_cluster_it_does_nothing():
    model, _ = _model("conv2d", {})
    portable, _, report = optimize(model, skip=["fuse_activation"], verify=False)
    plain, _, _ = optimize(model, skip=["fuse_activation", "cluster_weights"], verify=False)
    np.testing.assert_array_equal(_kernel(portable, "Conv2D"), _kernel(plain, "Conv2D"))
    assert report.skips() == [] and "snapped_after_fold" not in (portable.provenance.get("compression") or {})


@pytest.mark.parametrize("init", ["kmeans++", "linear", "density", "random"])
def test_kmeans_1d_keeps_zeros_and_at_most_n_values(init):
    values = RNG.normal(0, 1, 500) * (RNG.uniform(size=500) > 0.5)
    out = kmeans_1d(values, 8, init, keep_zero=True)
    assert len(np.unique(out)) <= 8 and np.array_equal(out == 0, values == 0)
    assert np.mean((out - values) ** 2) < np.var(values)  # better than one shared value


# --- end to end: the session's tf_keras digits CNN with BatchNorm (tests/conftest.py), TFMOT, convert,
# the artifact read back -------------------------------------------------------------------------

def _artifact_kernels(path):
    from tfopt.targets import TABLE

    # the clustered conv kernels (conv1's 144 values, BatchNorm folded into them; the 1x1 conv2's 512, no
    # BatchNorm; the biases have 16 and 32), read flat from the flatbuffer
    return {layer: w for name, w in TABLE["tflite"].call("weights", path) for layer in ("conv1", "conv2")
            if f"/{layer}/" in name and w.size >= 100}


def _gzip(kernels) -> int:
    import gzip

    return len(gzip.compress(b"".join(np.ascontiguousarray(kernels[k], np.float32).tobytes() for k in sorted(kernels))))


def test_artifact_holds_n_values_per_kernel(keras2_digits, tmp_path):
    from tfopt.conversion.convert import convert
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    n = 16
    convert(keras2_digits["path"], str(tmp_path / "plain"), to=["tflite"], cluster=n, exclude=["probs"],
                    skip=["cluster_weights"], report_runs=1)  # the same but for the snapping
    out = str(tmp_path / "folded")
    result = convert(keras2_digits["path"], out, to=["tflite"], cluster=n, exclude=["probs"],
                     eval_data=keras2_digits["eval"], report_runs=1)
    path = os.path.join(out, "model.fp32.tflite")
    kernels = _artifact_kernels(path)
    plain_kernels = _artifact_kernels(os.path.join(str(tmp_path / "plain"), "model.fp32.tflite"))
    assert len(kernels) == 2 and all(len(np.unique(w)) <= n for w in kernels.values())
    assert any(len(np.unique(w)) > n for w in plain_kernels.values())
    # the folded kernels compress (the whole file also holds every other layer, whose centroids the fit
    # moves too: its gzip size is within a few dozen bytes either way on this small model)
    assert _gzip(kernels) < _gzip(plain_kernels)
    skips = {s for p in result.optimize_report.passes if p.name == "cluster_weights" for s in map(str, p.skips)}
    assert any("layer 'probs' was not clustered (excluded (--exclude))" in s for s in skips)
    snapped = result.report["compression"]["snapped_after_fold"]
    # with real inputs every clustered kernel is snapped from the original (conv2, dense: no BatchNorm)
    assert [d["layer"] for d in snapped] == ["conv1", "conv2", "dense"]
    layers = {r["layer"]: r for r in result.report["compression"]["layers"]}
    assert layers["dw"]["actions"] == [] and layers["dw"]["left_alone"]  # not clustered, and why
    # numerically, against the float Keras model on the 360 held-out digits: top-1 agreement >= 90%
    # and the probabilities within 0.25 (mean absolute difference <= 0.03)
    x = keras2_digits["x"]
    want = keras2_digits["model"].predict(x, verbose=0)
    spec = manifest_model(out)
    runner = runner_for("tflite", path, spec)
    got = np.concatenate([runner({"images": x[i:i + 1]})[spec.outputs[0].name] for i in range(len(x))])
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.90
    assert np.abs(got - want).max() <= 0.25 and np.abs(got - want).mean() <= 0.03
