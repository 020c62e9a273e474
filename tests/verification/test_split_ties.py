"""A batch that a graph cuts into towers (multi-GPU TF1 training code): ``Split`` on axis 0 into N parts,
``SplitV`` of constant sizes, ``Unpack``; each tower's result concatenated back. Generated: N in {2, 3, 4},
one or two inputs split alike, frozen to a GraphDef with an unknown batch. The made-up batch (2, or 1 for
the artifacts) is no multiple of N: the shape search finds the tie by structure, with no flag."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.targets import target

FEATURES = 5
ATOL = 1e-5  # float32 dense layers over a few terms, any runtime


def _towers(t, *, towers: int, cut: str, mask: bool, rows: int = 0, width: int = FEATURES):
    """``x [?, width]`` (and ``mask [?]``) cut into ``towers`` slices on axis 0, one shared dense layer a
    tower, the towers' results concatenated back: ``y``. ``rows``: SplitV's constant rows a tower."""
    v1 = t.compat.v1
    rng = np.random.default_rng(towers)
    x = v1.placeholder(t.float32, [None, width], name="x")
    m = v1.placeholder(t.float32, [None], name="mask") if mask else None
    w = t.constant(rng.normal(size=[width, 3]).astype(np.float32))

    def cut_(v):
        if cut == "split":
            return t.split(v, towers, axis=0)
        if cut == "splitv":
            return t.split(v, [rows] * towers, axis=0)
        return [p[None] for p in t.unstack(v, towers, axis=0)]

    xs = cut_(x)
    ms = cut_(m) if mask else [None] * towers
    outs = [t.nn.relu(t.matmul(a, w)) * (b[:, None] if b is not None else 1.0) for a, b in zip(xs, ms)]
    t.identity(t.concat(outs, axis=0), name="y")


CASES = [(n, c, m) for n, c, m in itertools.product((2, 3, 4), ("split", "splitv", "unpack"), (False, True))
         if not (m and c == "unpack")]


def _feeds(batch: int, mask: bool, width: int = FEATURES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    feeds = {"x": rng.normal(size=[batch, width]).astype(np.float32)}
    if mask:
        feeds["mask"] = rng.uniform(size=[batch]).astype(np.float32)
    return feeds


@pytest.mark.parametrize(("towers", "cut", "mask"), CASES,
                         ids=[f"{c}-{n}{'-mask' if m else ''}" for n, c, m in CASES])
def test_the_search_finds_the_batch_a_graph_splits_into_towers(tmp_path, towers, cut, mask):
    pb = graph_pb(tmp_path / "towers.pb", lambda t: _towers(t, towers=towers, cut=cut, mask=mask, rows=3))
    frozen, report = tfopt.freeze(pb, outputs=["y"])
    at = report.verified_at.shapes()
    batch = {"split": 2 * towers, "splitv": 3 * towers, "unpack": towers}[cut]  # a multiple of N, or fixed
    assert at["x"] == [batch, FEATURES] and at.get("mask", [batch]) == [batch]
    assert all(d.max_abs_err <= ATOL for d in report.verification)
    one = report.verified_at.with_batch(frozen.inputs, 1).shapes()  # an artifact's batch 1: one unit of N rows
    assert one["x"][0] == (towers if cut == "split" else batch)
    assert report.verified_at.ties.sample_rows() == (towers if cut == "split" else 1)


@pytest.mark.parametrize("towers", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_towers_convert_and_verify_with_no_flags(tmp_path, towers):
    pb = graph_pb(tmp_path / "towers.pb", lambda t: _towers(t, towers=towers, cut="split", mask=True))
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(pb, str(tmp_path / "out"), to=targets, outputs=["y"], report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert result.verified_at.shapes()["x"] == [towers, FEATURES]  # batch 1 of the artifacts: one row a tower
    assert result.report["samples"] == 8  # the report's batch 8: 8 x N rows, cut into samples of N rows
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])
    frozen, _ = tfopt.freeze(pb, outputs=["y"], verify=False)
    feeds = _feeds(5 * towers, mask=True)
    expected = GraphRunner(tfopt.load(pb, outputs=["y"]))(feeds)["y"]
    for artifact in result.artifacts:
        runner = target(artifact.format).call("runner", os.path.join(result.outdir, artifact.path), frozen, 1)
        np.testing.assert_allclose(runner(feeds)["y"], expected, atol=ATOL, rtol=ATOL, err_msg=artifact.format)


def _hidden_towers(t):
    """Three towers over a batch whose static size is lost on the way (a boolean mask that keeps every
    row) and too wide for a probe: neither probe nor shape inference sees the split; the made-up run does."""
    v1 = t.compat.v1
    x = v1.placeholder(t.float32, [None, WIDE], name="x")
    parts = t.split(t.boolean_mask(x, t.equal(t.reduce_sum(x * 0.0, axis=1), 0.0)), 3, axis=0)
    t.identity(t.concat([p * float(i + 1) for i, p in enumerate(parts)], 0), name="y")


WIDE = 120_000  # x 11 (the first probe) is past the probe budget; x 2 is not past the search's


def test_giving_up_names_the_split_and_a_verify_shape_that_keeps_its_tie(tmp_path):
    pb = graph_pb(tmp_path / "hidden.pb", _hidden_towers)
    with pytest.raises(tfopt.VerificationError, match=rf"node 'split'.* num_split 3.*--verify-shape x:6x{WIDE},"):
        tfopt.freeze(pb, outputs=["y"])
    _, report = tfopt.freeze(pb, outputs=["y"], verify_shape={"x": [6, WIDE]})  # the suggestion works
    assert all(d.max_abs_err == 0 for d in report.verification)


def test_split_ties_learned_from_tensorflow_messages(tmp_path):
    from tfopt.graph import TensorSpec
    from tfopt.verification.shapes import DimTies
    from tfopt.verification.split_ties import split_tie

    pb = graph_pb(tmp_path / "t.pb", lambda t: _towers(t, towers=3, cut="split", mask=False))
    graph_def = tfopt.load(pb, outputs=["y"]).graph_def
    specs = [TensorSpec("x", "x:0", "float32", (None, None)), TensorSpec("n", "n:0", "int32", (None,))]
    ties = DimTies(specs)
    symbols = {11: ("x", 0), 13: ("x", 1), 17: ("n", 0)}
    runtime = ("Detected at node 'split' ... Number of ways to split should evenly divide the split dimension, "
               "but got split_dim 0 (size = 22) and num_split 3")  # the axis holds 2 x the batch
    assert ties.learn_split(split_tie(runtime, graph_def), symbols)
    assert ties.multiples == {("x", 0): 3}
    again = runtime.replace("size = 22", "size = 66")  # the next probe: 2 x 33, a multiple of 3 already
    assert not ties.learn_split(split_tie(again, graph_def), {33: ("x", 0), 13: ("x", 1), 17: ("n", 0)})
    assert ties.union(("x", 0), ("n", 0)) and ties.shapes(2, 8) == {"x": (6, 8), "n": (6,)}
    assert ties.sample_rows() == 3 and ties.example(1) == "x:3xN n:3"
    assert split_tie(runtime.replace("'split'", "'y'"), graph_def) is None  # not a split: no tie
    static = "Dimension size must be evenly divisible by 3 but is 13 for '{{node split}} = Split[...]'"
    assert split_tie(static, graph_def).multiple == 3 and split_tie(static, graph_def).size == 13
    assert not ties.learn_split(split_tie(static.replace("13", "143"), graph_def), {11: ("x", 0), 13: ("x", 1)})
