"""Shape vectors whose sizes TensorFlow's shape inference loses, though the open batch does not decide them:
the TFLite file keeps its batch open (:mod:`tfopt.emitters.shape_values`) and matches TensorFlow at batch 1,
3, 5 and 101; an element the same at the small sizes only (``maximum(batch, 3)``), or up to the larger probe
(``maximum(batch, 100)``, ``batch // 100``: the far probe), is not taken for a constant."""

from __future__ import annotations

import numpy as np
import pytest

from tests.emitters.tflite_graphs import tensorflow
from tests.helpers import graph_model
from tfopt.emitters.shape_values import materialize_shapes
from tfopt.emitters.tflite import emit_tflite, fixed_shapes
from tfopt.graph import Model

ATOL = 1e-5  # float32 convolutions of <= 54 products, LiteRT's kernels vs TensorFlow's


def _kernel(t, channels: int, out: int):
    rng = np.random.default_rng(channels * out)
    return t.constant(rng.normal(size=(3, 3, channels, out)).astype(np.float32))


def _rot90(k: int, axes: tuple[int, int]):
    def build(t, x):
        import keras  # Keras 3: ops.rot90 reshapes by concat(Shape(t)[:-2], [w, h])

        return t.nn.conv2d(keras.ops.rot90(x, k=k, axes=axes), _kernel(t, 3, 4), 1, "VALID")

    return build


def _scaled_reshape(t, x):  # [b, 4, 6, 2] -> [b, 8, 3, 2] by arithmetic on tf.shape: every dimension unknown
    return t.nn.conv2d(t.reshape(x, t.shape(x) * [1, 2, 1, 1] // [1, 1, 2, 1]), _kernel(t, 2, 4), 1, "VALID")


def _masked_reshape(t, x):  # a shape vector of data-dependent length: the rank is unknown
    shape = t.shape(x)
    return t.nn.conv2d(t.reshape(x, t.boolean_mask(shape, shape > 0)), _kernel(t, 2, 4), 1, "VALID")


def _batch_and_minus_one(t, x):  # a target with -1 and the batch: the static elements packed as constants
    scaled = t.shape(x) * [1, 2, 1, 1] // [1, 1, 2, 1]  # one vector with the batch: nothing folds it element-wise
    target = t.concat([scaled[:1], [-1], scaled[2:]], 0)
    return t.nn.conv2d(t.reshape(x, target), _kernel(t, 2, 4), 1, "VALID")


def _thresholded(t, x):  # a slice end the same at batch 1, 2 and 3 (3), the batch beyond: not a constant
    return _scaled_reshape(t, x)[:t.maximum(t.shape(x)[0], 3)]


def _past_the_probes(kind: str):  # the same at 1, 2, 3 and the larger probe, 61; another past 100 rows
    def build(t, x):
        rows = t.shape(x)[0]
        end = t.maximum(rows, 100) if kind == "maximum" else rows // 100 + 3
        return _scaled_reshape(t, x)[:end]

    return build


CASES = {"rot90_k1": (_rot90(1, (1, 2)), (6, 8, 3)), "rot90_k3": (_rot90(3, (1, 2)), (5, 7, 3)),
         "rot90_k1_square": (_rot90(1, (1, 2)), (4, 4, 3)),
         "scaled_reshape": (_scaled_reshape, (4, 6, 2)), "masked_reshape": (_masked_reshape, (4, 6, 2)),
         "batch_and_minus_one": (_batch_and_minus_one, (4, 6, 2)), "thresholded": (_thresholded, (4, 6, 2)),
         "maximum_past_the_probes": (_past_the_probes("maximum"), (4, 6, 2)),
         "floor_division_past_the_probes": (_past_the_probes("floor_division"), (4, 6, 2))}


def _model(name: str) -> Model:
    build, shape = CASES[name]

    def graph(t):
        x = t.compat.v1.placeholder(t.float32, (None, *shape), name="x")
        t.identity(build(t, x), name="y")

    return graph_model(graph, {"x": (None, *shape)}, ["y"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_tflite_file_keeps_the_batch_open(tmp_path, name):
    from tfopt.runtimes.tflite import open_runner

    model = _model(name)
    path = emit_tflite(model, str(tmp_path / "m.tflite"))
    assert fixed_shapes(path, model) is None  # shape_signature -1 at axis 0, not the pinned batch-1 file
    runner = open_runner(path, model)
    try:
        for batch in (1, 3, 5, 101):  # 5: beyond the small sizes the shape vectors are evaluated at; 101: the probes
            x = np.random.default_rng(batch).normal(size=(batch, *CASES[name][1])).astype(np.float32)
            got, want = runner({"x": x})["y"], tensorflow(model, x)["y"]
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    finally:
        runner.close()


@pytest.mark.parametrize(("name", "form", "inferred"), [("scaled_reshape", "Const", (None, 6, 1, 4)),
                                                        ("batch_and_minus_one", "Pack", (None, None, 1, 4))])
def test_a_reshape_target_gets_its_static_elements_as_constants(name, form, inferred):
    """One element decided by the batch and no -1: a constant with -1 there. Else the static elements packed
    as constants beside the batch's, sliced from the original vector."""
    from tfopt._tf import GraphFacts

    model = _model(name)
    out = materialize_shapes(model)
    assert out is not None
    by_name = {n.name: n for n in out.graph_def.node}
    reshape = next(n for n in out.graph_def.node if n.op == "Reshape")
    assert by_name[reshape.input[1].split(":")[0]].op == form
    assert GraphFacts(model.graph_def).shape("y") == (None, None, None, 4)  # what TensorFlow inferred before
    assert GraphFacts(out.graph_def).shape("y") == inferred  # the -1 beside an open batch stays open
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(tensorflow(out, x)["y"], tensorflow(model, x)["y"])


def test_a_graph_without_shape_vectors_is_left_alone():
    def graph(t):
        x = t.compat.v1.placeholder(t.float32, (None, 4, 4, 3), name="x")
        t.identity(t.nn.conv2d(x, _kernel(t, 3, 2), 1, "SAME"), name="y")

    assert materialize_shapes(graph_model(graph, {"x": (None, 4, 4, 3)}, ["y"])) is None


@pytest.mark.parametrize("name", ["scaled_reshape", pytest.param("batch_and_minus_one", marks=pytest.mark.slow)])
def test_select_tf_ops_are_kept_only_where_no_builtin_lowers(tmp_path, name):
    """With --allow-tf-ops the first conversion succeeds by keeping the refused Conv2D as a Select TF op
    (FlexConv2D); the build from the materialized shape vectors lowers it as a builtin, batch still open."""
    from tfopt.emitters.tflite import select_tf_ops
    from tfopt.runtimes.tflite import open_runner

    model = _model(name)
    path = emit_tflite(model, str(tmp_path / "m.tflite"), allow_tf_ops=True)
    with open(path, "rb") as f:
        assert select_tf_ops(f.read()) == 0
    assert fixed_shapes(path, model) is None
    runner = open_runner(path, model)
    try:
        for batch in (1, 3):
            x = np.random.default_rng(batch).normal(size=(batch, *CASES[name][1])).astype(np.float32)
            np.testing.assert_allclose(runner({"x": x})["y"], tensorflow(model, x)["y"], atol=ATOL, rtol=0)
    finally:
        runner.close()
