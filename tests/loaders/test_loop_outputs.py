"""A TF1-style graph written under TF2 control flow (``tf.compat.v1`` code in TensorFlow 2, saved as a
TF1 checkpoint) keeps one ``while/Identity_k`` per loop variable, consumed by nothing: the counter, the
iteration limit, TensorArrays, captured weights the body passes on unchanged. They are no heads (the op
sweep found 11 "heads" in a one-output RNN): the outputs chosen are the model's own.

Generated checkpoints: loop kind x steps x captured weights; the chosen outputs are exactly the
``out_*`` sinks, and the loaded model answers what the session answers.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf


def _loop(t, x, weights, steps, kind):
    if kind == "tensor_array":  # dynamic_rnn's shape: read a TensorArray, write another, carry the weights
        seq = t.transpose(x, [1, 0, 2])
        ta = t.TensorArray(t.float32, size=steps).unstack(seq)
        out = t.TensorArray(t.float32, size=steps)

        def step(i, h, out):
            h = t.tanh(t.matmul(ta.read(i), weights[0]) + t.matmul(h, weights[-1]))
            return i + 1, h, out.write(i, h)

        _, h, out = t.while_loop(lambda i, *_: i < steps, step, [t.constant(0), t.zeros([t.shape(x)[0], 3]), out])
        return [t.transpose(out.stack(), [1, 0, 2]), h]

    def body(i, h):  # a plain recurrence over a counter
        return i + 1, t.tanh(t.matmul(h, weights[-1]) + t.reduce_mean(x, 1) @ weights[0])

    _, h = t.while_loop(lambda i, _: i < steps, body, [t.constant(0), t.zeros([t.shape(x)[0], 3])])
    return [h]


@pytest.mark.parametrize("extra_weights", [0, 2])
@pytest.mark.parametrize("steps", [2, 4])
@pytest.mark.parametrize("kind", ["tensor_array", "counter"])
def test_loop_variables_carried_along_are_not_heads(tmp_path, kind, steps, extra_weights):
    t = tf()
    rng = np.random.default_rng(steps + 10 * extra_weights)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, steps, 4], name="x")
        weights = [t.compat.v1.get_variable("w_in", initializer=rng.standard_normal((4, 3)).astype(np.float32))]
        weights += [t.compat.v1.get_variable(f"w{i}", initializer=rng.standard_normal((3, 3)).astype(np.float32))
                    for i in range(extra_weights + 1)]
        outs = [t.identity(o, name=f"out_{k}") for k, o in enumerate(_loop(t, x, weights, steps, kind))]
        assert any(n.type == "While" for n in graph.get_operations())  # TF2 control flow in a TF1 graph
        saver = t.compat.v1.train.Saver()
        with t.compat.v1.Session(graph=graph) as session:
            session.run(t.compat.v1.global_variables_initializer())
            prefix = saver.save(session, str(tmp_path / "model.ckpt"))
            feed = rng.standard_normal((2, steps, 4)).astype(np.float32)
            want = session.run([o.name for o in outs], {x: feed})
    model = tfopt.load(prefix)
    assert [s.name for s in model.outputs] == [f"out_{k}" for k in range(len(outs))]
    got = model.reference({"x": feed})
    for k, value in enumerate(want):
        np.testing.assert_allclose(got[f"out_{k}"], value, rtol=1e-6, atol=1e-6)
