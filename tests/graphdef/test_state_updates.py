"""State updates no output reads are dropped before freezing; one an output reads is a typed error.

The class: Keras 3 recurrent layers with ``dropout``/``recurrent_dropout`` advance a seed variable on every
call, ``training=False`` included (LSTM, GRU, SimpleRNN, Bidirectional, stacked, ConvLSTM), in every container Keras 3
writes (``.keras``, legacy ``.h5``, ``model.export``'s SavedModel).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.conversion.convert import convert
from tfopt.conversion.manifest import manifest_model
from tfopt.errors import StatefulModelError, StochasticModelError
from tfopt.loaders.keras import model_from_keras
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.stochastic import RANDOM_OPS

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file

STEPS, FEATURES = 5, 3
ATOL = RTOL = 1e-5  # float32 through a few recurrent steps; measured errors are below 1e-6
RATES = [(0.5, 0.0), (0.0, 0.1), (0.1, 0.5)]  # (dropout, recurrent_dropout)


def _rnn_model(units: int, dropout: float, recurrent_dropout: float):
    """Every Keras 3 recurrent layer kind at once, one stacked pair, all with the same dropout rates."""
    import keras

    keras.utils.set_random_seed(units)
    kw = {"dropout": dropout, "recurrent_dropout": recurrent_dropout}
    seq = keras.Input((STEPS, FEATURES), name="seq")
    stacked = keras.layers.GRU(units, **kw)(keras.layers.LSTM(units, return_sequences=True, **kw)(seq))
    simple = keras.layers.SimpleRNN(units + 1, **kw)(seq)
    both_ways = keras.layers.Bidirectional(keras.layers.LSTM(units, **kw))(seq)
    merged = keras.layers.Concatenate()([stacked, simple, both_ways])
    return keras.Model(seq, keras.layers.Dense(3, name="score")(merged))


def _save(model, tmp_path, container: str) -> str:
    if container == "export":
        model.export(str(tmp_path / "exported"), verbose=False)
        return str(tmp_path / "exported")
    path = str(tmp_path / f"rnn.{container}")
    model.save(path)
    return path


def _x(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, STEPS, FEATURES)).astype(np.float32)


@pytest.mark.parametrize(("units", "dropout", "recurrent_dropout"),
                         [(u, d, r) for u, (d, r) in zip((2, 5, 6), RATES)], ids=[f"d{d}-r{r}" for d, r in RATES])
def test_masks_drawn_at_inference_do_not_change_the_outputs(units, dropout, recurrent_dropout):
    """Why dropping the seed updates is sound: at training=False Keras 3 multiplies by no mask, so the
    outputs equal those of the same weights with no dropout at all, and two calls agree."""
    model = _rnn_model(units, dropout, recurrent_dropout)
    plain = _rnn_model(units, 0.0, 0.0)
    plain.set_weights(model.get_weights())
    x = _x()
    first, second = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, np.asarray(plain(x, training=False)), atol=1e-6, rtol=0)


def _freeze_cases():
    """Every container at the rate pair that uses both dropouts; the other pairs (one dropout each,
    the same masks removed) in the slow lane."""
    for container in ("keras", "h5", "export"):
        for units, (d, r) in zip((3, 4, 7), RATES):
            marks = () if (d, r) == RATES[-1] else (pytest.mark.slow,)
            yield pytest.param(container, units, d, r, marks=marks, id=f"{container}-d{d}-r{r}")


@pytest.mark.parametrize(("container", "units", "dropout", "recurrent_dropout"), list(_freeze_cases()))
def test_keras3_rnn_with_dropout_freezes_and_matches(tmp_path, container, units, dropout, recurrent_dropout):
    model = _rnn_model(units, dropout, recurrent_dropout)
    frozen, report = tfopt.freeze(_save(model, tmp_path, container))
    (spec,) = frozen.inputs
    x = _x(batch=3)
    (got,) = GraphRunner(frozen)({spec.name: x}).values()
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=ATOL, rtol=RTOL)
    assert not {n.op for n in frozen.graph_def.node} & {"AssignVariableOp", "VarHandleOp", "ReadVariableOp"}
    dropped = report.state_updates_dropped
    assert dropped and {d["op"] for d in dropped} == {"AssignVariableOp"}
    assert all(d["variable"].endswith("seed_generator_state") for d in dropped), dropped
    assert report.as_dict()["state_updates_dropped"] == dropped


def test_conv_lstm_with_dropout_freezes_and_matches():
    import keras

    keras.utils.set_random_seed(1)
    seq = keras.Input((3, 6, 2), name="seq")
    model = keras.Model(seq, keras.layers.ConvLSTM1D(3, 3, dropout=0.3, recurrent_dropout=0.2)(seq))
    frozen, report = tfopt.freeze(model_from_keras(model, {"format": "keras", "keras": "keras3"}))
    x = np.random.default_rng(2).normal(size=(2, 3, 6, 2)).astype(np.float32)
    (got,) = GraphRunner(frozen)({"seq": x}).values()
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=ATOL, rtol=RTOL)
    assert report.state_updates_dropped


def test_a_model_without_dropout_drops_nothing(tmp_path):
    _, report = tfopt.freeze(_save(_rnn_model(2, 0.0, 0.0), tmp_path, "keras"))
    assert report.state_updates_dropped == []


def _stacked(units: int):
    """The smallest model of the class that still stacks two kinds: LSTM (dropout) -> GRU (recurrent)."""
    import keras

    keras.utils.set_random_seed(units)
    seq = keras.Input((STEPS, FEATURES), name="seq")
    h = keras.layers.LSTM(units, return_sequences=True, dropout=0.2)(seq)
    return keras.Model(seq, keras.layers.Dense(2)(keras.layers.GRU(units, recurrent_dropout=0.3)(h)))


@pytest.mark.parametrize("container", ["keras", pytest.param("export", marks=pytest.mark.slow)])
def test_keras3_rnn_with_dropout_converts_to_every_target(tmp_path, container):
    """No flags: TFLite (its batch fixed at 1), ONNX and OpenVINO, each compared with Keras by value
    (every layer kind: slow, as a SavedModel from ``model.export``)."""
    model = _stacked(3) if container == "keras" else _rnn_model(4, 0.2, 0.3)
    x = _x(batch=3, seed=1)
    _assert_every_target(_save(model, tmp_path, container), str(tmp_path / "out"), x,
                         np.asarray(model(x, training=False)))


def _assert_every_target(model, out: str, x: np.ndarray, want: np.ndarray) -> None:
    """Convert ``model`` (a path or a loaded model) to TFLite, ONNX and OpenVINO with no flags and compare
    each artifact with ``want`` (the original's outputs on ``x``), one sample at a time (TFLite's batch: 1)."""
    result = convert(model, out, to=["tflite", "onnx", "openvino"])
    assert sorted(a.format for a in result.artifacts) == ["onnx", "openvino", "tflite"] and not result.failed
    frozen = manifest_model(out)
    (spec,) = frozen.inputs
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), frozen)
        got = np.concatenate([next(iter(runner({spec.name: x[i:i + 1]}).values())) for i in range(len(x))])
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=artifact.format)


def _counter_layer_model():
    import keras

    class Counter(keras.layers.Layer):
        def build(self, shape):
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

        def call(self, x):
            self.calls.assign_add(1.0)
            return x + self.calls

    x = keras.Input((3,), name="x")
    model = keras.Model(x, Counter(name="counter")(keras.layers.Dense(2)(x)))
    return model_from_keras(model, {"format": "keras", "keras": "keras3"})


def _module(tmp_path, *, read: bool) -> str:
    import tensorflow as tf

    class Counted(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[2.0], [3.0]], name="w")
            self.calls = tf.Variable(0.0, name="calls")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def __call__(self, x):
            self.calls.assign_sub(-1.0)
            y = tf.matmul(x, self.w)
            return {"y": y + self.calls if read else y}

    module = Counted()
    path = str(tmp_path / ("read" if read else "unread"))
    tf.saved_model.save(module, path, signatures=module.__call__)
    return path


def test_an_update_no_output_reads_is_dropped_from_any_tf2_function(tmp_path):
    frozen, report = tfopt.freeze(_module(tmp_path, read=False))
    assert [(d["op"], d["variable"]) for d in report.state_updates_dropped] == [("AssignSubVariableOp", "calls")]
    x = np.array([[1.0, 1.0], [0.5, -2.0]], np.float32)
    np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["y"], x @ np.array([[2.0], [3.0]], np.float32))


@pytest.mark.parametrize("build", ["keras-layer", "tf-module"])
def test_a_variable_the_outputs_read_after_writing_it_is_a_typed_error(tmp_path, build):
    if build == "keras-layer":
        load, op, layer = _counter_layer_model, r"Assign\w*VariableOp", "counter"  # a custom class: built, not saved
    else:
        load, op, layer = lambda: tfopt.load(_module(tmp_path, read=True)), "AssignSubVariableOp", ""
    with pytest.raises(StatefulModelError, match=rf"{op} '[^']*{layer}[^']*' writes variable '[^']*calls'") as caught:
        load()
    assert caught.value.exit_code == 6 and caught.value.variables[0].endswith("calls")


# The class of writes inside functional control flow: a variable passed into a While/If/Case/call body as an
# arg, written there (a counter, a Keras 3 SeedGenerator draw in an RNN step), and tf.random.Generator draws
# (RngReadAndSkip on the generator's state), in the main graph or in a body.

KINDS = ("while", "cond", "case", "call-in-while", "cond-in-while", "while-in-cond")
WRITES = {"assign_add": ("AssignAddVariableOp", lambda v: v.assign_add(1.0)),
          "assign_sub": ("AssignSubVariableOp", lambda v: v.assign_sub(0.5)),
          "assign": ("AssignVariableOp", lambda v: v.assign(v * 2.0 + 1.0))}
DRAWS = {"normal": lambda g, shape: g.normal(shape),
         "uniform": lambda g, shape: g.uniform(shape, minval=-1.0),
         "truncated_normal": lambda g, shape: g.truncated_normal(shape),
         "uniform-int": lambda g, shape: _float(g.uniform(shape, maxval=5, dtype="int32"))}
STATE_OPS = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "RngReadAndSkip", "VarHandleOp"}


def _float(t):
    import tensorflow as tf

    return tf.cast(t, tf.float32)


def _control_flow(kind: str, step):
    """``y -> y'`` running ``step`` inside ``kind``: a loop (3 steps), a branch taken when ``sum(y) > 0``,
    a nested ``tf.function`` call in a loop, or two of them nested (``inner-in-outer``)."""
    import tensorflow as tf

    def loop(y, body=step):
        return tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, body(a)), [tf.constant(0), y])[1]

    def positive(y):
        return tf.reduce_sum(y) > 0

    return {"main": step,
            "while": loop,
            "cond": lambda y: tf.cond(positive(y), lambda: step(y), lambda: y - 1.0),
            "case": lambda y: tf.switch_case(tf.cast(positive(y), tf.int32), [lambda: y - 1.0, lambda: step(y)]),
            "call-in-while": lambda y: loop(y, tf.function(step)),
            "cond-in-while": lambda y: loop(y, lambda a: tf.cond(positive(a), lambda: step(a), lambda: a * 2.0)),
            "while-in-cond": lambda y: tf.cond(positive(y), lambda: loop(y), lambda: y * 2.0)}[kind]


def _saved(tmp_path, module, name: str) -> str:
    import tensorflow as tf

    path = str(tmp_path / name)
    tf.saved_model.save(module, path, signatures=module.__call__)
    return path


def _body_module(kind: str, write: str, *, units: int, read: str | None = None):
    """A tf.Module whose call writes ``calls`` inside ``kind``; ``read``: the output reads ``calls``
    ``inside`` the body or ``after`` it (None: never)."""
    import tensorflow as tf

    class Looped(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(units).normal(size=(2, units)).astype(np.float32), name="w")
            self.calls = tf.Variable(0.0, name="calls")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def __call__(self, x):
            def step(a):
                WRITES[write][1](self.calls)
                return a * 1.5 + (self.calls if read == "inside" else 0.0)

            y = _control_flow(kind, step)(tf.matmul(x, self.w))
            return {"y": y + self.calls if read == "after" else y}

    return Looped()


def _generator_module(kind: str, draw: str, *, read: bool):
    """A tf.Module drawing from a ``tf.random.Generator`` inside ``kind``; the output adds the draw when ``read``."""
    import tensorflow as tf

    class Noisy(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[2.0, -1.0], [3.0, 0.5]], name="w")
            self.gen = tf.random.Generator.from_seed(7)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def __call__(self, x):
            def step(a):
                noise = DRAWS[draw](self.gen, tf.shape(a))
                return a * 1.5 + noise if read else a * 1.5

            return {"y": _control_flow(kind, step)(tf.matmul(x, self.w))}

    return Noisy()


def _ops_everywhere(graph_def) -> set[str]:
    return {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}


def _both_branches(batch: int = 3) -> list[np.ndarray]:
    x = np.random.default_rng(batch).normal(size=(batch, 2)).astype(np.float32)
    return [np.abs(x), -np.abs(x)]  # sum > 0 and sum < 0: each branch of a cond runs once


BODY_CASES = [(kind, write, units) for units, (kind, write) in
              enumerate(zip(KINDS, [*WRITES, *WRITES]), start=1)]


@pytest.mark.parametrize(("kind", "write", "units"), BODY_CASES, ids=[f"{k}-{w}" for k, w, _ in BODY_CASES])
def test_a_write_in_a_body_no_output_reads_is_dropped(tmp_path, kind, write, units):
    module = _body_module(kind, write, units=units)
    frozen, report = tfopt.freeze(_saved(tmp_path, module, kind))
    assert [(d["op"], d["variable"]) for d in report.state_updates_dropped] == [(WRITES[write][0], "calls")]
    assert kind.split("-")[-1] in report.state_updates_dropped[0]["layer"]  # the outer body it sat in
    assert not _ops_everywhere(frozen.graph_def) & STATE_OPS
    for x in _both_branches():
        np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["y"], module(x)["y"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(("kind", "read"), [(k, ("after", "inside")[i % 2]) for i, k in enumerate(KINDS)],
                         ids=[f"{k}-read-{('after', 'inside')[i % 2]}" for i, k in enumerate(KINDS)])
def test_a_write_in_a_body_the_outputs_read_is_a_typed_error(tmp_path, kind, read):
    path = _saved(tmp_path, _body_module(kind, "assign_add", units=2, read=read), kind)
    with pytest.raises(StatefulModelError, match=r"AssignAddVariableOp '[^']+' writes variable 'calls'") as caught:
        tfopt.load(path)
    assert caught.value.variables == ["calls"]


GENERATOR_CASES = [("main", "normal"), ("while", "uniform"), ("cond", "truncated_normal"),
                   ("cond-in-while", "uniform-int"), ("case", "normal")]


@pytest.mark.parametrize(("kind", "draw"), GENERATOR_CASES, ids=[f"{k}-{d}" for k, d in GENERATOR_CASES])
def test_a_generator_draw_no_output_reads_is_dropped(tmp_path, kind, draw):
    module = _generator_module(kind, draw, read=False)
    frozen, report = tfopt.freeze(_saved(tmp_path, module, kind))
    assert {(d["op"], d["variable"]) for d in report.state_updates_dropped} == {
        ("RngReadAndSkip", module.gen.state.name.split(":")[0])}
    assert not _ops_everywhere(frozen.graph_def) & (STATE_OPS | set(RANDOM_OPS))
    for x in _both_branches():
        np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["y"], module(x)["y"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(("kind", "draw"), GENERATOR_CASES, ids=[f"{k}-{d}" for k, d in GENERATOR_CASES])
def test_a_generator_draw_the_outputs_read_keeps_drawing_and_is_named(tmp_path, kind, draw):
    """Noise at inference stays noise: the frozen graph draws a fresh state on every run, as the original
    does, so verification reports a stochastic model and names the draw (as for ``tf.random.normal``);
    without verification the frozen graph samples, no op left reading the generator's state."""
    path = _saved(tmp_path, _generator_module(kind, draw, read=True), kind)
    with pytest.raises(StochasticModelError) as caught:
        tfopt.freeze(path)
    assert any("RngReadAndSkip" in op for op in caught.value.random_ops), caught.value.random_ops
    frozen, report = tfopt.freeze(path, verify=False)
    assert not _ops_everywhere(frozen.graph_def) & STATE_OPS and not report.state_updates_dropped
    x = _both_branches()[0]
    first, second = (GraphRunner(frozen)({"x": x})["y"] for _ in range(2))
    assert np.isfinite(first).all() and not np.array_equal(first, second)


def _keras_stateful(kind: str, units: int, *, read: bool = False):
    """A Keras 3 model with a custom layer that changes state inside a body: ``counter-loop`` (assign_add in
    a tf.while_loop), ``seed-in-rnn`` (a SeedGenerator draw in every RNN step), ``generator-in-rnn`` (a
    tf.random.Generator draw in every step), ``generator-noise`` (a draw on every call). The draws are added
    only in training (``read``: always; the counter: the output adds it), as such layers are written."""
    import keras
    import tensorflow as tf

    class LoopCounter(keras.layers.Layer):
        def build(self, shape):
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

        def call(self, x):
            def body(i, acc):
                self.calls.assign_add(1.0)
                return i + 1, acc * 0.5 + (self.calls if read else 0.0)

            return tf.while_loop(lambda i, a: i < 3, body, [tf.constant(0), x])[1]

    class NoisyCell(keras.layers.Layer):
        def __init__(self, generator: bool, **kw):
            super().__init__(**kw)
            self.state_size = units
            self.draw = (tf.random.Generator.from_seed(units).normal if generator else
                         lambda shape, sg=keras.random.SeedGenerator(units): keras.random.normal(shape, seed=sg))

        def build(self, shape):
            self.k = self.add_weight(shape=(shape[-1] + units, units), name="k")

        def call(self, x, states, training=False):
            noise = self.draw(tf.shape(x))
            if training or read:
                x = x + noise
            h = keras.ops.tanh(keras.ops.matmul(keras.ops.concatenate([x, states[0]], -1), self.k))
            return h, [h]

    class GeneratorNoise(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.gen = tf.random.Generator.from_seed(units)

        def call(self, x, training=False):
            noise = self.gen.normal(tf.shape(x))
            return x + noise if training or read else x

    keras.utils.set_random_seed(units)
    seq = keras.Input((STEPS, FEATURES), name="seq")
    if kind.endswith("-in-rnn"):
        y = keras.layers.RNN(NoisyCell(kind.startswith("generator"), name="cell"), name="rnn")(seq)
    else:
        layer = LoopCounter(name="counter") if kind == "counter-loop" else GeneratorNoise(name="noise")
        y = layer(keras.layers.Dense(units)(keras.layers.Flatten()(seq)))
    return keras.Model(seq, keras.layers.Dense(2, name="score")(y))


KERAS_KINDS = {"counter-loop": {"AssignVariableOp"}, "seed-in-rnn": {"AssignVariableOp"},
               "generator-in-rnn": {"RngReadAndSkip"}, "generator-noise": {"RngReadAndSkip"}}


@pytest.mark.parametrize("units", [2, 5])
@pytest.mark.parametrize("kind", list(KERAS_KINDS))
def test_keras3_layers_changing_state_in_bodies_freeze_and_match(kind, units):
    model = _keras_stateful(kind, units)
    frozen, report = tfopt.freeze(model_from_keras(model, {"format": "keras", "keras": "keras3"}))
    assert {d["op"] for d in report.state_updates_dropped} == KERAS_KINDS[kind]
    assert not _ops_everywhere(frozen.graph_def) & (STATE_OPS | set(RANDOM_OPS))
    x = _x(batch=3, seed=units)
    np.testing.assert_allclose(GraphRunner(frozen)({"seq": x})["score"], np.asarray(model(x, training=False)),
                               atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", [pytest.param(k, marks=() if k == "generator-in-rnn" else (pytest.mark.slow,))
                                  for k in KERAS_KINDS])
def test_keras3_layers_changing_state_in_bodies_convert_to_every_target(tmp_path, kind):
    model = _keras_stateful(kind, 3)
    x = _x(batch=3, seed=2)
    _assert_every_target(model_from_keras(model, {"format": "keras", "keras": "keras3"}), str(tmp_path / "out"),
                         x, np.asarray(model(x, training=False)))


@pytest.mark.parametrize("kind", [pytest.param("while", marks=pytest.mark.slow), "cond-in-while"])  # holds a while
def test_a_module_writing_in_a_body_converts_to_every_target(tmp_path, kind):
    module = _body_module(kind, "assign_add", units=3)
    x = np.concatenate(_both_branches(2))  # the branch taken depends on the batch's sum: one sample at a time
    want = np.concatenate([module(x[i:i + 1])["y"].numpy() for i in range(len(x))])
    _assert_every_target(_saved(tmp_path, module, kind), str(tmp_path / "out"), x, want)


@pytest.mark.parametrize(("kind", "error", "named"), [
    ("counter-loop", StatefulModelError, "counter/calls"),
    ("seed-in-rnn", StatefulModelError, "seed_generator_state"),
    ("generator-in-rnn", StochasticModelError, "RngReadAndSkip"),
    ("generator-noise", StochasticModelError, "RngReadAndSkip")])
def test_keras3_layers_whose_outputs_read_the_state_are_refused_by_name(kind, error, named):
    """A counter or a Keras SeedGenerator state the outputs read: the variable, by name; a tf.random.Generator
    draw they read: a stochastic model, its draw named (every run of the original differs)."""
    model = _keras_stateful(kind, 2, read=True)
    with pytest.raises(error) as caught:
        tfopt.freeze(model_from_keras(model, {"format": "keras", "keras": "keras3"}))
    names = caught.value.variables if error is StatefulModelError else caught.value.random_ops
    assert any(named in n for n in names), names
