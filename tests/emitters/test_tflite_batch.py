"""Recurrent models whose TensorList loops TFLite lowers only with a static batch: the emitter
retries with the batch pinned to 1 (:mod:`tfopt.emitters.tflite_batch`), the file runs in LiteRT
and matches TensorFlow, and :func:`fixed_shapes` reports the fixed batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfopt.emitters.tflite import emit_tflite, fixed_shapes
from tfopt.runtimes.tflite import TFLiteRunner

ATOL = 2e-5  # float32 recurrences of <= 12 steps, LiteRT's kernels vs TensorFlow's


def _frozen(path: str):
    from tfopt.freezing import freeze
    from tfopt.loaders import load

    frozen, _ = freeze(load(path), verify=False)
    return frozen


def _check(frozen, tmp_path, reference, features: int, lengths=(3, 12), extra=None) -> None:
    """Emit, check the file fixes batch 1 of ``x``, and compare every output with ``reference``."""
    path = emit_tflite(frozen, str(tmp_path / "m.tflite"))
    assert fixed_shapes(path, frozen) == {"x": [1, -1, features]}
    runner = TFLiteRunner(path, frozen.inputs, frozen.outputs)
    rng = np.random.default_rng(len(lengths) + features)
    for steps in lengths:
        x = rng.normal(size=(1, steps, features)).astype(np.float32)
        x[0, steps // 2:] = 0.0  # padding steps: masked where the model masks
        feeds = {"x": x, **(extra(steps) if extra else {})}
        got = runner(feeds)
        want = reference(feeds)
        assert set(got) == set(want)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, atol=ATOL, rtol=0)


# Each cell once in the fast lane (masked or not, sequences or the last state, between them); the
# other combination of each cell in the slow lane.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize(("kind", "units", "features", "masking", "sequences"), [
    pytest.param("LSTM", 6, 5, False, True, marks=_SLOW), ("LSTM", 3, 2, True, False), ("GRU", 7, 5, True, True),
    pytest.param("GRU", 4, 3, False, False, marks=_SLOW), pytest.param("SimpleRNN", 5, 4, True, True, marks=_SLOW),
    ("SimpleRNN", 2, 6, False, False)])
def test_keras_recurrent_layers_convert_with_the_batch_pinned(tmp_path, kind, units, features, masking, sequences):
    import keras

    keras.utils.set_random_seed(units * features)
    inputs = keras.Input((None, features), name="x")
    h = keras.layers.Masking()(inputs) if masking else inputs
    h = getattr(keras.layers, kind)(units, return_sequences=sequences)(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    path = str(tmp_path / "m.keras")
    model.save(path)
    frozen = _frozen(path)
    out = frozen.outputs[0].name
    _check(frozen, tmp_path, lambda feeds: {out: model(feeds["x"]).numpy()}, features)


TF1_RNN = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    v1 = tf.compat.v1
    v1.disable_eager_execution()
    v1.enable_control_flow_v2()  # While + TensorList, as TF 1.15+ graphs with control flow v2
    for i in range(1, len(sys.argv), 4):  # PATH CELL FEATURES UNITS, for each graph: each in its own tf.Graph
        path, cell_kind, features, units = sys.argv[i], sys.argv[i + 1], int(sys.argv[i + 2]), int(sys.argv[i + 3])
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(0)
            x = v1.placeholder(tf.float32, [None, None, features], name="x")
            lens = v1.placeholder(tf.int32, [None], name="lens")
            cell = (v1.nn.rnn_cell.GRUCell if cell_kind == "gru" else v1.nn.rnn_cell.LSTMCell)(units)
            outputs, _ = v1.nn.dynamic_rnn(cell, x, sequence_length=lens, dtype=tf.float32)
            tf.identity(outputs, name="y")
            with v1.Session() as sess:
                sess.run(v1.global_variables_initializer())
                frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
                rng = np.random.default_rng(0)
                answers = {}
                for steps in (3, 12):
                    xs = rng.normal(size=(1, steps, features)).astype(np.float32)
                    xs[0, steps // 2:] = 0.0
                    answers[f"x{steps}"] = xs
                    answers[f"y{steps}"] = sess.run("y:0", {x: xs, lens: [steps - 1]})
        with open(path, "wb") as f:
            f.write(frozen.SerializeToString())
        np.savez(path + ".npz", **answers)
""")

TF1_RNNS = [("gru", 4, 6), ("lstm", 3, 5)]


@pytest.fixture(scope="module")
def tf1_rnn_graphs(tmp_path_factory):
    """Every graph of ``TF1_RNNS``, frozen with TensorFlow's answers, written by one process (each graph in a
    tf.Graph of its own; the process because ``tf.compat.v1.nn.rnn_cell`` needs Keras 2): (cell, features,
    units) -> path."""
    root = tmp_path_factory.mktemp("tf1_rnn")
    paths = {spec: str(root / f"{spec[0]}.pb") for spec in TF1_RNNS}
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    subprocess.run([sys.executable, "-c", TF1_RNN, *(str(a) for spec, path in paths.items() for a in (path, *spec))],
                   check=True, env=env, capture_output=True)
    return paths



@pytest.mark.parametrize(("cell", "features", "units"), TF1_RNNS)
def test_tf1_dynamic_rnn_converts_with_the_batch_pinned(tf1_rnn_graphs, tmp_path, cell, features, units):
    path = tf1_rnn_graphs[cell, features, units]
    answers = dict(np.load(path + ".npz"))
    frozen = _frozen(path)
    by_x = {answers[f"x{steps}"].tobytes(): answers[f"y{steps}"] for steps in (3, 12)}

    def reference(feeds):
        return {frozen.outputs[0].name: by_x[feeds["x"].tobytes()]}

    def lens(steps):
        return {"lens": np.array([steps - 1], np.int32)}

    rng_inputs = {steps: answers[f"x{steps}"] for steps in (3, 12)}
    path_tflite = emit_tflite(frozen, str(tmp_path / "m.tflite"))
    assert fixed_shapes(path_tflite, frozen) == {"x": [1, -1, features], "lens": [1]}
    runner = TFLiteRunner(path_tflite, frozen.inputs, frozen.outputs)
    for steps, x in rng_inputs.items():
        got = runner({"x": x, **lens(steps)})
        np.testing.assert_allclose(got[frozen.outputs[0].name], reference({"x": x})[frozen.outputs[0].name],
                                   atol=ATOL, rtol=0)


def test_an_open_batch_that_converts_is_kept_open(tmp_path):
    """No retry when the open-batch conversion works: the file keeps its batch open."""
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.save(str(tmp_path / "d.keras"))
    frozen = _frozen(str(tmp_path / "d.keras"))
    assert fixed_shapes(emit_tflite(frozen, str(tmp_path / "d.tflite")), frozen) is None


def test_an_element_shape_of_unknown_rank_is_left_unknown(tmp_path):
    """A TensorList created without an element shape has the scalar -1 (unknown rank) there, not a
    one-axis ``[-1]``: pinning made it ``[1]``, a wrong rank that TensorFlow's shape inference then
    reported far away (held-out set 13: pfor's fallback loop, "must be evenly divisible by 3 but is 2")."""
    import tensorflow as tf

    from tfopt.emitters.tflite_batch import pin_batch

    class Steps(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            ta = tf.TensorArray(tf.float32, size=3)  # no element_shape: unknown rank
            for i in tf.range(3):
                ta = ta.write(i, x * tf.cast(i + 1, tf.float32))
            return {"y": tf.transpose(ta.stack(), [1, 0, 2])}

    path = str(tmp_path / "steps")
    tf.saved_model.save(Steps(), path)
    frozen = _frozen(path)
    pinned = pin_batch(frozen)
    graph_def = (pinned or frozen).graph_def
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    by_name = {n.name: n for n in nodes}
    shapes = [tf.make_ndarray(by_name[n.input[0].split(":")[0]].attr["value"].tensor)
              for n in nodes if n.op == "TensorListReserve" and by_name.get(n.input[0].split(":")[0]) is not None
              and by_name[n.input[0].split(":")[0]].op == "Const"]
    assert shapes, "the TensorArray's list is not in the frozen graph"
    assert all(s.ndim == 0 and int(s) == -1 for s in shapes), shapes


def test_list_rows_are_inferred_where_the_pinned_graph_knows_them(tmp_path):
    """A Keras 3 ``GRU(return_sequences=True)`` on ``reshape(x [b, 2, 5, 3], [-1, 5, 3])`` runs on ``2 * batch``
    rows: the pinned retry gives its per-step list ``[2, units]`` elements (it gave ``[1, units]``, the batch),
    and the batch-1 file matches TensorFlow."""
    import keras
    import tensorflow as tf

    from tfopt._tf import const_value
    from tfopt.emitters.tflite_batch import pin_batch

    keras.utils.set_random_seed(0)
    module = tf.Module()
    module.gru = keras.layers.GRU(4, return_sequences=True)
    module.gru.build((None, 5, 3))
    module.serve = tf.function(lambda x: {"y": module.gru(tf.reshape(x, [-1, 5, 3]))},
                               input_signature=[tf.TensorSpec([None, 2, 5, 3], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "rows"), signatures=module.serve.get_concrete_function())
    frozen = _frozen(str(tmp_path / "rows"))
    pinned = pin_batch(frozen)
    assert pinned is not None
    by_name = {n.name: n for n in pinned.graph_def.node}
    shapes = [const_value(by_name[n.input[0]]).tolist() for n in pinned.graph_def.node
              if n.op == "TensorListReserve" and by_name[n.input[0]].op == "Const"]
    assert shapes == [[2, 4]], shapes
    path = emit_tflite(frozen, str(tmp_path / "rows.tflite"))
    assert fixed_shapes(path, frozen) == {"x": [1, 2, 5, 3]}
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 3)).astype(np.float32)
    want = module.serve(tf.constant(x))["y"].numpy()
    got = TFLiteRunner(path, frozen.inputs, frozen.outputs)({"x": x})["y"]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
