"""Activation statistics: streaming equals one big batch, re-binning is exact, and collect() on a real
frozen graph sees exactly the activations TensorFlow computes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tfopt.errors import OptionError
from tfopt.quantizing.engine.ranges import compute_range
from tfopt.quantizing.engine.statistics import TensorStats, collect


def _growing_stream(seed: int = 0) -> np.ndarray:
    """Gaussian plus a heavy tail, ordered so that every chunk widens the range (forcing re-binning)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0.3, 1.0, 60_000), rng.standard_t(3, 4_000) * 3]).astype(np.float32)
    return x[np.argsort(np.abs(x), kind="stable")]


def _stream(chunks) -> TensorStats:
    stats = TensorStats.empty("t:0")
    for chunk in chunks:
        stats = stats.add(chunk)
    return stats


@pytest.fixture(scope="module")
def grown():
    """The same values streamed in 40 chunks of growing range, and as one batch."""
    x = _growing_stream()
    return _stream(np.array_split(x, 40)), TensorStats.empty("t:0").add(x), x


def test_streaming_growing_range_keeps_exact_extremes(grown):
    streamed, whole, x = grown
    assert (streamed.count, streamed.min, streamed.max) == (whole.count, whole.min, whole.max)
    assert streamed.hist.sum() == whole.hist.sum() == x.size
    assert whole.amax / whole.bins <= streamed.width < 2 * whole.amax / whole.bins
    assert streamed.width > whole.width  # it did re-bin: the case under test


@pytest.mark.parametrize("method", ["minmax", "percentile", "percentile:99.9"])
def test_streamed_histogram_reads_within_a_bin(grown, method):
    streamed, whole, _ = grown
    np.testing.assert_allclose(compute_range(streamed, method), compute_range(whole, method),
                               atol=streamed.width, rtol=0)


@pytest.mark.parametrize("method", ["entropy", "mse"])
def test_streamed_histogram_searches_land_close(grown, method):
    """The searches minimise an objective that is flat over a sparse tail, so another grid can move the
    optimum by more than a bin; it stays within a tenth of the range."""
    streamed, whole, _ = grown
    lo, hi = compute_range(whole, method)
    np.testing.assert_allclose(compute_range(streamed, method), (lo, hi), atol=0.1 * (hi - lo), rtol=0)


def test_streaming_without_growth_is_identical_to_one_batch():
    x = _growing_stream()[::-1].copy()  # largest |x| first: the first chunk fixes the grid
    whole = TensorStats.empty("t:0").add(x)
    streamed = _stream(np.array_split(x, 7))
    assert streamed.width == whole.width
    np.testing.assert_array_equal(streamed.hist, whole.hist)


def test_rebinning_equals_binning_at_the_final_width():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0, 0.01, 5_000), rng.normal(0, 5.0, 5_000)
    grown = TensorStats.empty("t:0", bins=256).add(small).add(large)
    direct = replace(TensorStats.empty("t:0", bins=256), width=grown.width).add(np.concatenate([small, large]))
    growth = np.log2(grown.width / TensorStats.empty("t:0", bins=256).add(small).width)
    assert growth >= 1 and growth.is_integer()  # re-binned by a power of two
    np.testing.assert_array_equal(grown.hist, direct.hist)


def test_histogram_counts_match_numpy():
    x = np.random.default_rng(2).normal(1.0, 2.0, (16, 9, 7)).astype(np.float64)
    stats = TensorStats.empty("t:0", bins=512).add(x)
    counts, edges = stats.histogram()
    # Every value lies in its bin: [edge_i, edge_i+1), the top edge closed.
    want = np.histogram(x, bins=edges)[0]
    np.testing.assert_array_equal(counts, want)
    abs_counts, abs_edges = stats.abs_histogram()
    np.testing.assert_array_equal(abs_counts, np.histogram(np.abs(x), bins=abs_edges)[0])


def test_a_huge_range_jump_restarts_the_grid():
    stats = TensorStats.empty("t:0", bins=256).add(np.array([1e-30, -2e-30])).add(np.array([3.0, -1.0]))
    assert stats.width == pytest.approx(3.0 / 256)
    counts, _ = stats.histogram()
    assert counts[256] == 1 and counts[255] == 1  # the tiny values: the bins just above and below 0
    assert counts[511] == 1 and counts.sum() == 4


def test_zeros_then_values():
    stats = TensorStats.empty("t:0", bins=256).add(np.zeros(5))
    assert stats.width == 0 and stats.hist[256] == 5 and stats.unsigned
    stats = stats.add(np.array([2.0, 4.0]))
    assert stats.width == 4.0 / 256 and stats.hist[256] == 5 and stats.hist.sum() == 7


def test_integer_values_are_counted():
    stats = TensorStats.empty("t:0").add(np.arange(-3, 10, dtype=np.int32))
    assert (stats.count, stats.min, stats.max) == (13, -3.0, 9.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_values_are_refused(bad):
    values = np.array([1.0, bad, 2.0, bad])
    with pytest.raises(OptionError, match=r"tensor 't:0' holds 2 NaN/Inf value\(s\) on samples 4-7"):
        TensorStats.empty("t:0").add(values, where=" on samples 4-7")


def test_bins_must_be_large_enough():
    with pytest.raises(OptionError, match="bins 64: must be an integer >= 256"):
        TensorStats.empty("t:0", bins=64)


# --- collect() on a real frozen graph --------------------------------------------------------------

W1 = np.random.default_rng(3).normal(size=(6, 5)).astype(np.float32)
B1 = np.linspace(-1, 1, 5).astype(np.float32)
W2 = np.random.default_rng(4).normal(size=(5, 3)).astype(np.float32)


def _mlp(t):
    x = t.compat.v1.placeholder(t.float32, [None, 6], name="x")
    pre = t.nn.bias_add(t.matmul(x, t.constant(W1)), t.constant(B1), name="pre")
    h = t.nn.relu(pre, name="relu")
    t.identity(t.matmul(h, t.constant(W2)), name="out")


@pytest.fixture(scope="module")
def mlp():
    from tests.helpers import graph_model

    return graph_model(_mlp, {"x": (None, 6)}, ["out"])


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(5).normal(size=(37, 6)).astype(np.float32)


TENSORS = ["x:0", "pre:0", "relu", "out:0"]


def test_collect_matches_numpy_activations(mlp, data):
    steps = []
    stats = collect(mlp, {"x": data}, TENSORS, batch_size=8, progress=steps.append)
    assert set(stats) == set(TENSORS)
    pre = data @ W1 + B1
    expected = {"x:0": data, "pre:0": pre, "relu": np.maximum(pre, 0), "out:0": np.maximum(pre, 0) @ W2}
    for name, value in expected.items():
        s = stats[name]
        assert s.count == value.size, name
        np.testing.assert_allclose([s.min, s.max], [value.min(), value.max()], rtol=1e-5, atol=1e-6, err_msg=name)
        counts, edges = s.histogram()  # re-binned along the way, yet every value sits in its final bin
        misplaced = np.abs(counts - np.histogram(value, edges)[0]).sum()
        assert misplaced <= (0 if name == "x:0" else 2), (name, misplaced)  # matmul rounding may cross an edge
        # Two-sided when signed, of |x| = x when unsigned; the quantile's own value, rounded out to its bin's edge.
        lo, hi = compute_range(s, "percentile:99")
        want = np.percentile(value, [0, 99] if s.unsigned else [0.5, 99.5], method="inverted_cdf")
        eps = 1e-5 * s.amax  # numpy's matmul rounds differently from TensorFlow's
        assert want[0] - s.width - eps <= lo <= want[0] + eps, (name, lo, want)
        assert want[1] - eps <= hi <= want[1] + s.width + eps, (name, hi, want)
    assert all(s.width > 1.01 * s.amax / s.bins for s in stats.values())  # later batches widened every grid
    assert stats["x:0"].min == data.min() and stats["x:0"].max == data.max()  # the input: bit-exact
    assert stats["relu"].unsigned and not stats["pre:0"].unsigned
    assert [(s.done, s.total) for s in steps] == [(i, 5) for i in range(1, 6)]


def test_collect_batches_equal_one_batch(mlp, data):
    """Batch-1 samples (what load_calibration returns) gathered 8 at a time == one batch of all 37."""
    batched = collect(mlp, [{"x": data[i:i + 1]} for i in range(len(data))], TENSORS, batch_size=8)
    whole = collect(mlp, {"x": data}, TENSORS, batch_size=len(data))
    for name in TENSORS:
        a, b = batched[name], whole[name]
        assert (a.count, a.min, a.max) == (b.count, b.min, b.max), name
        np.testing.assert_allclose(compute_range(a, "percentile:99.9"), compute_range(b, "percentile:99.9"),
                                   atol=a.width, rtol=0, err_msg=name)


def test_collect_refuses_a_tensor_that_goes_nan(data):
    from tests.helpers import graph_model

    model = graph_model(lambda t: t.math.log(t.compat.v1.placeholder(t.float32, [None, 6], name="x"), name="log"),
                        {"x": (None, 6)}, ["log"])
    positive = np.abs(data) + 0.1
    assert collect(model, {"x": positive}, ["log:0"], batch_size=8)["log:0"].count == positive.size
    positive[10, 2] = -1.0  # log(-1) = NaN, on sample 10: the batch of samples 8-15
    with pytest.raises(OptionError, match=r"tensor 'log:0' holds 1 NaN/Inf value\(s\) on calibration samples 8-15"):
        collect(model, {"x": positive}, ["log:0"], batch_size=8)


@pytest.mark.parametrize(("tensors", "samples", "message"), [
    (["rleu:0"], None, r"tensor 'rleu:0' is not in the graph\. Did you mean: relu"),
    (["relu:3"], None, r"tensor 'relu:3' is not in the graph\. Node 'relu' has 1 output"),
    ([], None, "no tensors to calibrate"),
    (["relu:0"], {"y": np.zeros((2, 6), np.float32)}, "'y' is not a model input"),
    (["relu:0"], [{"x": np.zeros((2, 6), np.float32)}, {}], r"--calibration: missing x \(it holds nothing\)"),
    (["relu:0"], {"x": np.zeros((0, 6), np.float32)}, "input 'x' has no samples"),
    (["relu:0"], {"x": np.zeros((2, 5), np.float32)}, r"input 'x' expects \?x6, the data has shape \(2, 5\)"),
    (["relu:0"], {"x": np.float32(1.0)}, r"input 'x' has rank 2 \?x6, the data has shape \(\)"),
], ids=["typo", "port", "none", "unknown-input", "missing-input", "empty", "shape", "scalar"])
def test_collect_errors(mlp, tensors, samples, message):
    with pytest.raises(OptionError, match=message):
        collect(mlp, samples if samples is not None else {"x": np.zeros((2, 6), np.float32)}, tensors)


def test_collect_refuses_non_numeric_tensors():
    from tests.helpers import graph_model

    def graph(t):
        x = t.compat.v1.placeholder(t.float32, [None, 2], name="x")
        t.math.greater(x, 0.0, name="positive")

    model = graph_model(graph, {"x": (None, 2)}, ["positive"])
    with pytest.raises(OptionError, match="'positive:0' is bool, not a number"):
        collect(model, {"x": np.ones((1, 2), np.float32)}, ["positive:0"])


def test_collect_names_the_samples_the_model_fails_on():
    from tests.helpers import graph_model

    model = graph_model(lambda t: t.reshape(t.compat.v1.placeholder(t.float32, [None, 6], name="x"), [-1, 4],
                                            name="r"), {"x": (None, 6)}, ["r"])
    assert collect(model, {"x": np.zeros((4, 6), np.float32)}, ["r:0"], batch_size=2)["r:0"].count == 24
    with pytest.raises(OptionError, match="the model fails on calibration samples 2-2: Input to reshape is a "
                                          "tensor with 6 values"):
        collect(model, {"x": np.zeros((3, 6), np.float32)}, ["r:0"], batch_size=2)
    loose = model.replace(inputs=[replace(model.inputs[0], shape=None)])  # the graph's placeholder still says ?x6
    with pytest.raises(OptionError, match=r"fails on calibration samples 0-1: Cannot feed value of shape \(2, 5\)"):
        collect(loose, {"x": np.zeros((2, 5), np.float32)}, ["r:0"])
