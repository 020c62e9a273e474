"""A reverse over several axes (``tf.reverse(x, axis=[1, 2])``; Keras 2's ``K.reverse(x, axes=(1, 2))``,
the reverse complement of one-hot DNA in deepac's nets), which OpenVINO's frontend cannot translate
("unconverted ops: ReverseV2"), is written as one reverse per axis (``tfopt.emitters.reverse_axes``).
Generated graphs reverse two or three axes, in any order, with int32 and int64 axes, negative axes,
a single-axis reverse beside them and a consumer of the reversed tensor; each is converted to every
target and verified by tfopt (within 1e-6: a reverse moves values, computes none)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import converted_everywhere, graph_model

CASES = {
    "two-axes": ([1, 2], "int32"),
    "two-axes-reversed-order-int64": ([2, 1], "int64"),
    "three-axes-negative": ([-1, 1, 0], "int32"),
}


@pytest.mark.parametrize(("axes", "index"), CASES.values(), ids=CASES.keys())
def test_a_reverse_over_several_axes_converts_to_every_target(tmp_path, axes, index):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 7, 4], name="x")
        both = t.reverse(x, axis=t.constant(axes, dtype=index), name="reverse_complement")
        single = t.reverse(x, axis=[1], name="reverse_time")
        t.identity(t.nn.relu(both * 2.0 - single), name="out")
        t.identity(both, name="rc")

    model = graph_model(build, {"x": (None, 7, 4)}, ["out", "rc"])
    converted_everywhere(model, str(tmp_path / "out"), 1e-6)


def test_the_split_graph_computes_the_same_reverse(tmp_path):
    from tfopt.emitters.reverse_axes import split_reverses

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 5, 3, 2], name="x")
        t.identity(t.reverse(x, axis=[3, 1, 2]), name="y")

    model = graph_model(build, {"x": (None, 5, 3, 2)}, ["y"])
    split = split_reverses(model.graph_def)
    assert [len(n.input) for n in split.node if n.op == "ReverseV2"] == [2, 2, 2]
    x = np.random.default_rng(0).standard_normal((2, 5, 3, 2)).astype(np.float32)
    got = _run(split, "y:0", {"x:0": x})
    np.testing.assert_array_equal(got, x[:, ::-1, ::-1, ::-1])


def _reverses_in_bodies(t):
    """A multi-axis reverse in a ``tf.while_loop`` body, in both branches of a ``tf.cond`` (one of them
    a loop again) and in the main graph: order-sensitive, so a missing or doubled reverse shows."""
    x = t.compat.v1.placeholder(t.float32, [None, 5, 4, 3], name="x")
    k = t.cast(t.reduce_sum(t.abs(x)), t.int32) % 4

    def loop(v, axes):
        def body(i, acc):
            return i + 1, t.reverse(acc, axis=axes) * 0.5 + v

        return t.while_loop(lambda i, _: i < k + 1, body, [t.constant(0), v])[1]

    branched = t.cond(k > 1, lambda: loop(x, [2, 1]), lambda: t.reverse(x, axis=t.constant([-1, 1, 2], t.int64)))
    t.identity(branched, name="branched")
    t.identity(loop(t.reverse(x, axis=[1, 3]), [1, 2, 3]), name="looped")


def test_a_reverse_over_several_axes_in_loop_and_cond_bodies_converts_to_openvino(tmp_path):
    from tfopt.emitters.openvino import emit_openvino
    from tfopt.runtimes import runner_for
    from tfopt.runtimes.tensorflow import GraphRunner

    model = graph_model(_reverses_in_bodies, {"x": (None, 5, 4, 3)}, ["branched", "looped"])
    bodies = [n for f in model.graph_def.library.function for n in f.node_def if n.op == "ReverseV2"]
    assert len(bodies) >= 3  # the reverses are in the bodies, not in the main graph only
    runner = runner_for("openvino", emit_openvino(model, str(tmp_path / "ov")), model)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(6):  # k from 0 to 3: both branches, one to four loop steps
        x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
        seen.add(int(np.abs(x).sum()) % 4)
        got, want = runner({"x": x}), GraphRunner(model)({"x": x})
        for name in ("branched", "looped"):
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
    assert len(seen) > 1


def test_axes_from_static_shapes_are_split_and_axes_from_data_are_left(tmp_path):
    """The axes reach the lowering as values (``Lowering.constants``) when the graph's constants and
    static shapes decide them (``range(1, rank(x))``); axes fed at run time are left to the converter."""
    from tfopt.emitters.reverse_axes import split_reverses

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 5, 3, 2], name="x")
        axes = t.compat.v1.placeholder(t.int32, [2], name="axes")
        t.identity(t.reverse(x, axis=t.range(1, t.rank(x))), name="static")
        t.identity(t.reverse(x, axis=axes), name="fed")

    model = graph_model(build, {"x": (None, 5, 3, 2)}, ["static", "fed"])
    split = split_reverses(model.graph_def)
    single = [n for n in split.node if n.op == "ReverseV2" and n.name.startswith("ReverseV2/lowered")]
    assert len(single) == 3  # the static reverse, one per axis; the fed one is untouched
    assert [n.input for n in split.node if n.name == "ReverseV2_1"] == [n.input for n in model.graph_def.node
                                                                        if n.name == "ReverseV2_1"]
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 2)).astype(np.float32)
    got, fed = _run(split, ["static:0", "fed:0"], {"x:0": x, "axes:0": np.array([1, 3], np.int32)})
    np.testing.assert_array_equal(got, x[:, ::-1, ::-1, ::-1])
    np.testing.assert_array_equal(fed, x[:, ::-1, :, ::-1])


AXES_FROM_DIMS = {  # axes TensorFlow's own evaluation leaves open (the batch is), the static dimensions decide
    "dims-minus-constant": ((None, 5, 3, 2), lambda t, x: t.shape(x)[1:3] - t.constant([4, 1]), (1, 2)),
    "dims-over-dims-times-axes": ((None, 4, 6, 3), lambda t, x: t.shape(x)[1:4] // t.shape(x)[1:4] * [3, 1, 2],
                                  (3, 1, 2)),
}


@pytest.mark.parametrize(("shape", "axes_of", "axes"), AXES_FROM_DIMS.values(), ids=AXES_FROM_DIMS.keys())
def test_axes_computed_from_static_dimensions_beside_an_open_batch_are_split(tmp_path, shape, axes_of, axes):
    """``Lowering.constants`` in the main graph: axes computed from ``Shape(x)`` of an input whose batch is open
    are decided by its static dimensions (:mod:`tfopt.emitters.static_values`; TensorFlow's own evaluation leaves
    them undecided): split, and OpenVINO computes the reverse (exact: 0 difference)."""
    from tfopt.emitters.openvino import emit_openvino
    from tfopt.emitters.reverse_axes import split_reverses
    from tfopt.runtimes import runner_for

    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        t.identity(t.reverse(x, axis=axes_of(t, x)), name="y")

    model = graph_model(build, {"x": shape}, ["y"])
    split = split_reverses(model.graph_def)
    assert len([n for n in split.node if n.op == "ReverseV2"]) == len(axes)
    x = np.random.default_rng(len(axes)).standard_normal((3, *shape[1:])).astype(np.float32)
    want = np.flip(x, axis=axes)
    np.testing.assert_array_equal(_run(split, "y:0", {"x:0": x}), want)
    runner = runner_for("openvino", emit_openvino(model, str(tmp_path / "ov")), model)
    np.testing.assert_array_equal(runner({"x": x})["y"], want)


def _run(graph_def, fetches, feeds):
    """``graph_def`` run once in a TF1 session: the values of ``fetches``."""
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(graph_def, name="")
    with t.compat.v1.Session(graph=graph) as sess:
        return sess.run(fetches, feeds)
