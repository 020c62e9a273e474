"""Evaluation heads are not outputs: generated TF1 graphs (placeholders named as TF 1.x leaves them)
with a time-major sequence model, with or without a prediction sink, and 1-3 heads fed by labels -
a CTC loss and an edit distance of the decoded sequence against sparse labels (issue 24: chiron),
a softmax cross-entropy and an accuracy against dense targets - built in varying orders. The
prediction (or, with none, the logits the heads compare) is the output, the heads are listed, the
labels are no inputs, and freezing verifies by value."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES, CLASSES = 3, 4


def _heads(t, logits, seq_len, labels):
    """Evaluation heads by kind, each on its own time-major transpose of the batch-major logits (as
    chiron builds them); labels are made on first use (sparse or dense)."""
    v1 = t.compat.v1

    def sparse():
        return labels.setdefault("sparse", v1.sparse_placeholder(t.int32))

    def dense():
        return labels.setdefault("dense", v1.placeholder(t.int32, [None, None]))

    def tm():
        return t.transpose(logits, [1, 0, 2])

    return {
        "ctc": lambda: t.reduce_mean(v1.nn.ctc_loss(sparse(), tm(), seq_len, time_major=True)),
        "edit": lambda: t.reduce_mean(t.edit_distance(
            t.cast(v1.nn.ctc_greedy_decoder(tm(), seq_len)[0][0], t.int32), sparse())),
        "xent": lambda: t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(
            labels=t.one_hot(dense(), CLASSES), logits=tm())),
        "accuracy": lambda: t.reduce_mean(t.cast(t.equal(t.cast(t.argmax(tm(), -1), t.int32), dense()), t.float32)),
    }


def _case(seed: int) -> tuple[list[str], bool, bool]:
    """(evaluation heads in build order, a prediction sink?, built before the heads?)."""
    rng = np.random.default_rng(seed)
    kinds = [str(k) for k in rng.permutation(["ctc", "edit", "xent", "accuracy"])[:1 + seed % 3]]
    return kinds, bool(seed % 2 == 0), bool(rng.integers(2))


def _build(seed: int, path):
    kinds, with_prediction, first = _case(seed)
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, None, FEATURES])  # batch-major; each head transposes
        seq_len = v1.placeholder(t.int32, [None])
        w = t.constant(rng.standard_normal((FEATURES, CLASSES)).astype(np.float32))
        logits = t.tanh(t.einsum("btf,fc->btc", x, w)) * 3.0
        heads = _heads(t, logits, seq_len, {})
        built = [t.nn.softmax(logits)] if with_prediction and first else []
        for kind in kinds:
            heads[kind]()
        built += [t.nn.softmax(logits)] if with_prediction and not first else []
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return graph, x.op.name, built[0].op.name if built else None


@pytest.mark.parametrize("seed", range(6), ids=lambda s: "-".join(_case(s)[0]) + ("-prediction" if s % 2 == 0 else ""))
def test_heads_fed_by_labels_are_alternatives_and_labels_no_inputs(seed, tmp_path):
    graph, x, expected = _build(seed, tmp_path / "model.pb")
    model = tfopt.load(str(tmp_path / "model.pb"))
    assert len(model.outputs) == 1  # one head: the heads' identical transposes are one prediction
    assert expected is None or model.outputs[0].name == expected
    assert [s.name for s in model.inputs] == [x]  # no labels, no lengths (only the heads read them)
    alternatives = model.provenance.get("output_alternatives", {})
    if {"ctc", "edit"} & set(_case(seed)[0]):  # (an accuracy alone is a metric the prediction feeds)
        assert any("evaluation head: needs the labels" in why for why in alternatives.values()), alternatives
    frozen, _ = tfopt.freeze(str(tmp_path / "model.pb"))
    name = model.outputs[0].name
    probe = np.random.default_rng(seed).standard_normal((2, 5, FEATURES)).astype(np.float32)
    with tf().compat.v1.Session(graph=graph) as sess:
        want = sess.run(f"{name}:0", {f"{x}:0": probe})
        logits = sess.run(f"{x}:0", {f"{x}:0": probe})  # (the input itself: a shape check below)
    got = GraphRunner(frozen)({x: probe})[name]
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)
    assert got.shape in ((2, 5, CLASSES), (5, 2, CLASSES)) and logits.shape == probe.shape


@pytest.mark.slow  # ~60 s on a shared 2-core machine; the test above proves the choice
def test_an_evaluation_graph_converts_by_value_in_every_target(tmp_path):
    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    _build(1, tmp_path / "model.pb")  # ctc + edit distance, no prediction sink: chiron's shape
    result = tfopt.convert(str(tmp_path / "model.pb"), str(tmp_path / "out"), to=["tflite", "onnx", "openvino"],
                           report_runs=1)
    assert not result.failed and all(a.max_abs_err <= 1e-4 for a in result.artifacts), result
