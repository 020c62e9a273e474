"""A second input whose length is a *computed* size of another: ResMiCo's ``mask [?, M]`` weights a
``GlobalAveragePooling1D`` over the feature map that convolutions (a VALID kernel, a stride) made of
``input [?, L, 14]``, so ``M = f(L)`` and no made-up size with ``M = L`` (or ``M`` = the batch) runs.
Generated: a VALID convolution of kernel k and a SAME one of stride s over ``x [?, ?, 3]``, a bool
``mask [?, ?]`` averaging the result as Keras' masked pooling does, frozen to a GraphDef. The shape
search reads the tie from TensorFlow's refusal and sizes the mask by shape inference, with no flag; the
bool mask is made up as padding leaves it (a prefix of ones), not all False (0/0 in the mean). With three
VALID layers of kernel 9 the first probe (13 positions) is too short for the net, as ResMiCo's crops are:
the probe is tried again at sizes past the batch > 1000. A VALID kernel of 3 (or two of 2) turns the probe's
13 positions into 11, the batch's probe prime: the refusal names two probes, which is no equality tie here
(taken as one, the mask was tied to the batch and made up as [1, 1], broadcast over the feature map)."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb

ATOL = 1e-5  # float32 convolutions over a few terms and a mean, any runtime


def _masked_pool(t, *, kernel: int, stride: int, depth: int = 1):
    v1 = t.compat.v1
    rng = np.random.default_rng(kernel * 10 + stride)
    x = v1.placeholder(t.float32, [None, None, 3], name="x")
    mask = v1.placeholder(t.bool, [None, None], name="mask")
    w1 = t.constant(rng.normal(size=[kernel, 3, 4]).astype(np.float32))
    w2 = t.constant(rng.normal(size=[3, 4, 4]).astype(np.float32))
    h = t.nn.relu(t.nn.conv1d(x, w1, stride=1, padding="VALID"))
    for _ in range(depth - 1):  # more VALID layers: a probe of 13 positions is too short for them
        h = t.nn.relu(t.nn.conv1d(h, t.constant(rng.normal(size=[kernel, 4, 4]).astype(np.float32)) / kernel,
                                  stride=1, padding="VALID"))
    h = t.nn.conv1d(h, w2, stride=stride, padding="SAME")
    m = t.expand_dims(t.cast(mask, t.float32), 2)  # Keras 2's GlobalAveragePooling1D(mask=...)
    pooled = t.reduce_sum(h * m, axis=1) / t.reduce_sum(m, axis=1)
    t.identity(t.nn.softmax(pooled), name="y")


def _mask_size(length: int, kernel: int, stride: int, depth: int = 1) -> int:
    return -(-(length - depth * (kernel - 1)) // stride)


@pytest.mark.parametrize(("kernel", "stride", "depth"), [(5, 2, 1), (4, 1, 1), (9, 2, 3), (3, 1, 1), (2, 1, 2)])
def test_a_mask_sized_by_the_graphs_convolutions_verifies_with_no_flags(tmp_path, kernel, stride, depth):
    pb = graph_pb(tmp_path / "masked.pb", lambda t: _masked_pool(t, kernel=kernel, stride=stride, depth=depth))
    _, report = tfopt.freeze(pb, outputs=["y"])
    at = report.verified_at.shapes()
    assert at["mask"] == [at["x"][0], _mask_size(at["x"][1], kernel, stride, depth)]
    assert all(d.max_abs_err <= ATOL for d in report.verification)
    # the fleet's cache stores the report as data (no GraphDef object), and the ties still size the mask
    from tfopt.conversion import store_format

    store_format.save(report.verified_at, str(tmp_path), "verified_at")
    ties = store_format.load(str(tmp_path), "verified_at").ties
    assert ties.derived and ties.shapes(2, 61)["mask"] == (2, _mask_size(61, kernel, stride, depth))


@pytest.mark.slow  # the class's fast case is the freeze above; this one writes and verifies all three targets
def test_the_masked_pool_converts_to_every_target_within_the_bound(tmp_path):
    pb = graph_pb(tmp_path / "masked.pb", lambda t: _masked_pool(t, kernel=5, stride=2))
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(pb, str(tmp_path / "out"), to=targets, outputs=["y"], report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    at = result.verified_at.shapes()
    assert at["mask"][1] == _mask_size(at["x"][1], 5, 2)
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])
