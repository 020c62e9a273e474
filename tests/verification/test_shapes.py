"""Made-up verification shapes that keep the dimensions a graph ties together: TF1 ``dynamic_rnn``
GRUs, time- and batch-major, with and without ``sequence_length`` and an initial-state placeholder,
frozen to a GraphDef with unknown batch and time (the GRU of issue 24 failed at every size)."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf


class _GRU:
    """The GRU step in plain ops (Keras-free: ``tf.compat.v1.nn.rnn_cell`` needs legacy Keras)."""

    def __init__(self, units: int):
        self.units, self.state_size, self.output_size = units, units, units

    def zero_state(self, batch, dtype):
        return tf().zeros([batch, self.units], dtype)

    def __call__(self, x, h, scope=None):
        t = tf()
        v1 = t.compat.v1
        with v1.variable_scope("gru", reuse=v1.AUTO_REUSE):
            n = x.shape[-1] + self.units
            w = v1.get_variable("w", [n, 3 * self.units], initializer=v1.random_normal_initializer(0, 0.3, seed=1))
            z, r, _ = t.split(t.matmul(t.concat([x, h], 1), w), 3, axis=1)
            z, r = t.sigmoid(z), t.sigmoid(r)
            c = t.tanh(t.matmul(t.concat([x, r * h], 1), w[:, 2 * self.units:]))
        h = z * h + (1 - z) * c
        return h, h


def _gru_pb(path, *, time_major: bool, lengths: bool, state: bool, features: int, units: int = 6) -> str:
    from tfopt.demos.examples import control_flow_v1

    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default(), control_flow_v1():
        x = v1.placeholder(t.float32, [None, None, features], name="inputs")
        seq = v1.placeholder(t.int32, [None], name="seq_lengths") if lengths else None
        h0 = v1.placeholder(t.float32, [1, None, units], name="state") if state else None
        out, last = v1.nn.dynamic_rnn(_GRU(units), x, sequence_length=seq, initial_state=h0[0] if state else None,
                                      dtype=t.float32, time_major=time_major)
        t.identity(out, name="out")
        t.identity(last, name="final")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["out", "final"])
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString())
    return str(path)


CASES = [pytest.param(tm, ln, st, feat, id=f"{'time' if tm else 'batch'}-major{'-lengths' if ln else ''}"
                                         f"{'-state' if st else ''}-f{feat}")
         for tm, ln, st, feat in [(True, True, True, 80), (True, True, False, 5), (True, False, True, 12),
                                  (False, True, True, 7), (False, True, False, 80), (True, False, False, 3)]]


@pytest.mark.parametrize(("time_major", "lengths", "state", "features"), CASES)
def test_the_search_keeps_the_batch_the_graph_ties_together(time_major, lengths, state, features, tmp_path):
    pb = _gru_pb(tmp_path / "gru.pb", time_major=time_major, lengths=lengths, state=state, features=features)
    _, _, report, opt_report = tfopt.optimize(pb, outputs=["out", "final"])
    at = report.verified_at
    assert at.source == "made up" and opt_report.verification["portable"]
    shape = at.shapes()
    time, batch = shape["inputs"][:2] if time_major else shape["inputs"][1::-1]
    if not (lengths or state):  # one input, nothing tied to it: any order of batch and time is consistent
        time, batch = max(time, batch), min(time, batch)
    assert batch == 2 and time >= 8 and shape["inputs"][2] == features
    if lengths:
        assert shape["seq_lengths"] == [batch]
        assert at.feeds["seq_lengths"].min() >= 1 and at.feeds["seq_lengths"].max() <= time  # a length: [1, time]
    if state:
        assert shape["state"] == [1, batch, 6]
    assert all(d.max_abs_err <= 1e-5 for d in report.verification)
    # the artifacts' batch-1 inputs keep the ties too
    one = at.with_batch(report_inputs(pb), 1).shapes()
    assert one["inputs"] == [1 if d == batch else d for d in shape["inputs"]] and one.get("seq_lengths", [1]) == [1]


def report_inputs(pb):
    frozen, _ = tfopt.freeze(pb, outputs=["out", "final"], verify=False)
    return frozen.inputs


def test_a_time_major_gru_converts_and_verifies(tmp_path):
    import importlib.util

    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    pb = _gru_pb(tmp_path / "gru.pb", time_major=True, lengths=True, state=True, features=80)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["out", "final"], report_runs=1)
    assert result.verified_at.shapes()["seq_lengths"] == [1]
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts)
    assert result.report["artifacts"][0]["fidelity"]["max_abs_err"] <= 1e-4


def _never(t):
    """A time-major graph whose lengths must match the batch, and that refuses every time size."""
    v1 = t.compat.v1
    x = v1.placeholder(t.float32, [None, None, 4], name="x")
    n = v1.placeholder(t.int32, [None], name="n")
    same = v1.assert_equal(t.shape(n)[0], t.shape(x)[1], message="lengths vs batch")
    with t.control_dependencies([same]):
        never = v1.assert_less(t.shape(x)[0], 0, message="time is never negative")
    with t.control_dependencies([never]):
        t.identity(x * t.cast(t.reduce_sum(n), t.float32), name="y")


def test_giving_up_names_the_assertion_and_a_verify_shape_that_keeps_the_ties(tmp_path):
    from tests.helpers import graph_pb

    pb = graph_pb(tmp_path / "never.pb", _never)
    with pytest.raises(tfopt.VerificationError) as err:
        tfopt.freeze(pb, outputs=["y"])
    message = str(err.value)
    assert "assert_less" in message and "time is never negative" in message
    assert "--verify-shape x:Nx2x4 n:2" in message
    assert "drawn in" not in message and "Integer inputs" not in message  # not the integers' range
    for tried in message.split("--verify-shape ")[1:]:  # never the shape that failed
        assert "x:" not in tried.split(" ")[0] or "N" in tried.split(" ")[0]


def test_ties_learned_from_tensorflow_messages():
    from tfopt.graph import TensorSpec
    from tfopt.verification.shapes import DimTies

    specs = [TensorSpec("a", "a:0", "float32", (None, None, 3)), TensorSpec("b", "b:0", "int32", (None,))]
    ties = DimTies(specs)
    symbols = {37: ("a", 0), 41: ("a", 1), 43: ("b", 0)}
    assert ties.learn("assertion failed: [Expected shape for Tensor s:0 is ] [41] [ but saw shape: ] [43]", symbols)
    assert ties.shapes(2, 8) == {"a": (8, 2, 3), "b": (2,)}  # the batch is where the inputs meet
    assert not ties.learn('File "x.py", line 37, in f\n  dense_41/MatMul: [41] vs [41]', symbols)
    assert ties.learn("Dimensions must be equal, but are 37 and 80 for 'add'", symbols)
    assert ties.shapes(2, 8) == {"a": (80, 2, 3), "b": (2,)}
    assert np.array_equal(sorted(ties.other_sizes(ties.shapes(2, 8))), [])


def _per_word(t, *, tie: str, features: int, word_lens: bool):
    """Per-word lengths of ``x [batch, words, chars, features]`` flattened to ``[batch*words, ...]``
    (a char-level RNN under a word-level one): ``lens`` must hold ``batch x words`` entries."""
    v1 = t.compat.v1
    x = v1.placeholder(t.float32, [None, None, None, features], name="x")
    lens = v1.placeholder(t.int32, [None], name="lens")
    rows = t.reshape(x, [-1, t.shape(x)[2], features])  # [batch*words, chars, features]
    if tie == "reverse_sequence":
        y = t.reverse_sequence(rows, lens, seq_axis=1, batch_axis=0)
    elif tie == "elementwise":
        y = rows * t.cast(t.reshape(lens, [-1, 1, 1]), t.float32)
    else:
        same = v1.assert_equal(t.shape(lens)[0], t.shape(rows)[0], message="one length per word")
        with t.control_dependencies([same]):
            y = t.identity(rows)
    y = t.reduce_sum(y, axis=1)
    if word_lens:  # a second input on the batch: [batch]
        n = v1.placeholder(t.float32, [None], name="word_lens")
        y = t.reshape(y, [t.shape(x)[0], -1, features]) * t.reshape(n, [-1, 1, 1])
    t.identity(y, name="y")


PRODUCT_CASES = [pytest.param(tie, features, word_lens, id=f"{tie}-f{features}{'-word_lens' if word_lens else ''}")
                 for tie, features, word_lens in [("reverse_sequence", 3, True), ("reverse_sequence", 5, False),
                                                  ("elementwise", 4, True), ("assert", 2, True), ("assert", 6, False)]]


@pytest.mark.parametrize(("tie", "features", "word_lens"), PRODUCT_CASES)
def test_a_dimension_that_is_a_product_of_two_others_is_found(tie, features, word_lens, tmp_path):
    """A product tie: TensorFlow names one probe and the product of two others (23 vs. 11 x 13)."""
    from tests.helpers import graph_pb
    from tfopt.verification.shapes import split_samples

    pb = graph_pb(tmp_path / "words.pb", lambda t: _per_word(t, tie=tie, features=features, word_lens=word_lens))
    frozen, report = tfopt.freeze(pb, outputs=["y"])
    at = report.verified_at
    shape = at.shapes()
    batch, words = shape["x"][:2]
    assert batch == 2 and shape["lens"] == [batch * words] and shape["x"][3] == features
    if word_lens:
        assert shape["word_lens"] == [batch]
    assert all(d.max_abs_err <= 1e-5 for d in report.verification)
    one = at.with_batch(frozen.inputs, 1).shapes()  # the artifacts' batch-1 inputs keep the product
    assert one["x"][:2] == [1, words] and one["lens"] == [words]
    from tfopt.runtimes.tensorflow import GraphRunner

    runner = GraphRunner(frozen)
    whole = runner(at.feeds)["y"]
    for i, sample in enumerate(split_samples(frozen.inputs, at.feeds, at.ties)):  # sample i: its own words
        assert sample["lens"].shape == (words,)
        np.testing.assert_allclose(runner(sample)["y"], whole[i:i + 1] if word_lens else whole[i * words:(i + 1) * words],
                                   rtol=1e-5, atol=1e-5)
    runner.close()


def test_product_ties_learned_from_tensorflow_messages():
    from tfopt.graph import TensorSpec
    from tfopt.verification.shapes import DimTies

    specs = [TensorSpec("x", "x:0", "float32", (None, None, 4)), TensorSpec("n", "n:0", "int32", (None,)),
             TensorSpec("lens", "lens:0", "int32", (None,))]
    ties = DimTies(specs)
    symbols = {11: ("x", 0), 13: ("x", 1), 17: ("n", 0), 19: ("lens", 0)}
    assert ties.learn("Incompatible shapes: [11,1] vs. [17,1]", symbols)  # n is the batch
    assert not ties.learn("Length of seq_lengths != input.dims(0), (19 vs. 14)", symbols)  # 14: no product of probes
    assert ties.learn("Length of seq_lengths != input.dims(0), (19 vs. 143)", symbols)  # 143 = 11 x 13
    assert ties.shapes(2, 8) == {"x": (2, 8, 4), "n": (2,), "lens": (16,)}
    assert ties.shapes(1, 5)["lens"] == (5,)
    assert ties.example(2) == "x:2xNx4 n:2 lens:2N"
    assert ties.other_sizes(ties.shapes(2, 8)) == [8]  # the product is no free size of its own
    assert not ties.learn("Dimensions must be equal, but are 13 and 143", symbols)  # never its own factor


def test_a_product_tie_converts_and_its_report_cuts_each_sample(tmp_path):
    """The report runs batch-1 samples: sample i of ``lens [batch*words]`` is its own run of words."""
    import importlib.util

    from tests.helpers import graph_pb

    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    pb = graph_pb(tmp_path / "words.pb", lambda t: _per_word(t, tie="reverse_sequence", features=3, word_lens=True))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], report_runs=1)
    one = result.verified_at.shapes()
    assert one["x"][0] == 1 and one["lens"] == [one["x"][1]]
    assert result.artifacts[0].max_abs_err <= 1e-5
    assert result.report["artifacts"][0]["fidelity"]["max_abs_err"] <= 1e-5


def _fixed(t, *, shape, side):
    """``x`` of a shape the graph fixes (a batch of 3, or of 1), optionally beside ``w [5]``, a
    fixed vector that is no batch of anything, added to an unknown-batch ``z [?, 5]``."""
    v1 = t.compat.v1
    x = v1.placeholder(t.float32, shape, name="x")
    y = t.nn.relu(x * 2.0 + 1.0)
    if side:
        w = v1.placeholder(t.float32, [5], name="w")
        z = v1.placeholder(t.float32, [None, 5], name="z")
        t.identity(z + w, name="s")
    t.identity(y, name="y")


@pytest.mark.parametrize(("shape", "side"), [([3, 4], False), ([1, 6, 2], False), ([3, 4], True)],
                         ids=["batch-3", "batch-1", "batch-3-beside-a-fixed-vector"])
def test_an_input_whose_shape_the_graph_fixes_is_fed_whole_in_the_report(shape, side, tmp_path):
    """The report runs batch-1 samples; an input of fixed shape takes no other batch (a model's
    ``[300, 400]`` input failed with an internal error)."""
    import importlib.util

    from tests.helpers import graph_pb
    from tfopt.verification.shapes import batch_axes

    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    pb = graph_pb(tmp_path / "fixed.pb", lambda t: _fixed(t, shape=shape, side=side))
    outputs = ["y", "s"] if side else ["y"]
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=outputs, report_runs=1)
    assert result.report["artifacts"][0]["fidelity"]["max_abs_err"] <= 1e-6
    frozen, _ = tfopt.freeze(pb, outputs=outputs, verify=False)
    shapes = {s.name: tuple(s.shape) if None not in s.shape else (2, 5) for s in frozen.inputs}
    axes = batch_axes(frozen.inputs, shapes)
    assert axes["x"] is None and (not side or (axes["w"] is None and axes["z"] == 0))


@pytest.mark.parametrize(("shape", "time", "batch"), [((None, None, 4), 5, 3), ((None, None, 2), 3, 3), ((6, None, 4), 6, 2)],
                         ids=["open", "time-equals-batch", "static-time"])
def test_the_structure_s_batch_axis_leads_a_lone_input(shape, time, batch):
    """A lone input whose structure names axis 1 (a time-major ``[time, batch, n]``,
    :attr:`TensorSpec.batch_axis`): made-up shapes put the batch there, and samples are cut there,
    also when the time and the batch have one size."""
    from tfopt.graph import TensorSpec
    from tfopt.verification.shapes import DimTies, batch_axes, split_samples

    spec = TensorSpec("x", "x:0", "float32", shape, batch_axis=1)
    made_up = DimTies([spec]).shapes(batch, time)["x"]
    assert made_up == (time, batch, shape[2])
    assert batch_axes([spec], {"x": made_up})["x"] == 1
    x = np.arange(np.prod(made_up), dtype=np.float32).reshape(made_up)
    samples = split_samples([spec], {"x": x})
    assert len(samples) == batch
    for i, sample in enumerate(samples):
        np.testing.assert_array_equal(sample["x"], x[:, i:i + 1])
