"""The batch axis a graph's structure says (:mod:`tfopt.graphdef.batch_axis`): the axis beside the one a
loop iterates over when the graph reads its size, else the one that reaches the outputs' axis 0; and
nothing where nothing says. Generated over feature widths; the time-major models of every format are in
tests/verification/test_lone_time_major.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.graphdef.batch_axis import structural_batch_axes

WIDTHS = [3, 5]


def _loop(t, width, *, perm):
    """A while loop over ``TensorArray.unstack`` of ``x`` (transposed by ``perm`` first), a zero state
    sized by the step's axis 0: an RNN over axis ``perm[0]`` with its batch on ``perm[1]``."""
    x = t.compat.v1.placeholder(t.float32, [None, None, width], name="x")
    seq = t.transpose(x, perm)
    steps = t.TensorArray(t.float32, size=t.shape(seq)[0]).unstack(seq)
    w = t.constant(np.ones([width, 2], np.float32))
    zeros = t.zeros(t.stack([t.shape(seq)[1], 2]))
    _, h = t.while_loop(lambda i, h: i < t.shape(seq)[0], lambda i, h: (i + 1, t.tanh(t.matmul(steps.read(i), w) + h)),
                        [t.constant(0), zeros])
    t.identity(h, name="y")


def _map_over_batch(t, width):
    """``tf.map_fn`` over the batch: a loop over axis 0 that reads no other size."""
    x = t.compat.v1.placeholder(t.float32, [None, None, width], name="x")
    t.identity(t.map_fn(lambda s: t.reduce_sum(s, axis=0), x), name="y")


def _transposed(t, width, *, perm):
    x = t.compat.v1.placeholder(t.float32, [None, None, width], name="x")
    t.identity(t.matmul(t.reduce_mean(t.transpose(x, perm), axis=1), np.ones([width, 2], np.float32)), name="y")


def _reshaped(t, width):
    """The trail is lost in a Reshape: nothing says."""
    x = t.compat.v1.placeholder(t.float32, [None, None, width], name="x")
    t.identity(t.reshape(x, [-1, width]), name="y")


def _axes(build, width):
    model = graph_model(lambda t: build(t, width), {"x": (None, None, width)}, ["y"])
    return structural_batch_axes(model.graph_def, model.inputs, model.outputs)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("build", "want"), [
    (lambda t, w: _loop(t, w, perm=[0, 1, 2]), {"x": 1}),  # time-major
    (lambda t, w: _loop(t, w, perm=[1, 0, 2]), {"x": 0}),  # batch-major, transposed for the loop
    (lambda t, w: _transposed(t, w, perm=[1, 0, 2]), {"x": 1}),  # time-major, transposed to batch-major
    (lambda t, w: _transposed(t, w, perm=[0, 1, 2]), {"x": 0}),
    (_map_over_batch, {}),
    (_reshaped, {}),
], ids=["loop-time-major", "loop-batch-major", "transpose-time-major", "batch-major", "map-over-batch", "reshape"])
def test_the_structure_names_the_batch_axis(build, want, width):
    assert _axes(build, width) == want


def _folded(t, width):
    """Keras 2's ``TimeDistributed(GRU(...))`` over ``x [batch, time, steps, n]``: batch and time folded into
    the recurrence's rows, a loop over the steps with a zero state sized by the rows, the output unfolded by
    reading ``time``. The steps do not hold ``time``: its read is no evidence (it was taken for the batch)."""
    x = t.compat.v1.placeholder(t.float32, [None, None, None, width], name="x")
    rows = t.reshape(x, t.concat([[-1], t.shape(x)[2:]], 0))
    seq = t.transpose(rows, [1, 0, 2])
    steps = t.TensorArray(t.float32, size=t.shape(seq)[0]).unstack(seq)
    w = t.constant(np.ones([width, 2], np.float32))
    zeros = t.zeros(t.stack([t.shape(rows)[0], 2]))
    _, h = t.while_loop(lambda i, h: i < t.shape(seq)[0], lambda i, h: (i + 1, t.tanh(t.matmul(steps.read(i), w) + h)),
                        [t.constant(0), zeros])
    t.identity(t.reshape(h, t.stack([-1, t.shape(x)[1], 2])), name="y")


@pytest.mark.parametrize("width", WIDTHS)
def test_an_axis_the_steps_do_not_hold_is_not_the_batch(width):
    model = graph_model(lambda t: _folded(t, width), {"x": (None, None, None, width)}, ["y"])
    assert structural_batch_axes(model.graph_def, model.inputs, model.outputs).get("x", 0) == 0
