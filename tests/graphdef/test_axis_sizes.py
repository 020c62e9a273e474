"""Where a ``Reshape`` keeps an input axis (:func:`tfopt.graphdef.axis_sizes.reshape_axes`): a dimension kept
in place from the front or the back, size-1 dimensions set aside, the one dimension left on each side, one
with as many elements before and after it on both sides, a target element reading the axis's size; and nothing where the elements of the batch mix with another
axis's (``[t, b, 4] -> [-1, 4]``, ``[b, 6] -> [-1, 3]``: the -1 is then ``t*b``, ``2b``)."""

from __future__ import annotations

import pytest

from tfopt.graphdef.axis_sizes import port_ref, reshape_axes


def _target(*elements):  # ints: constants; "aK": the size of input axis K read with tf.shape
    return [("axis", int(e[1:])) if isinstance(e, str) else ("const", e) for e in elements]


@pytest.mark.parametrize(("shape", "target", "want"), [
    ((None, 4), _target(-1, 4), (0, 1)),  # the -1 is exactly the batch
    ((None, None, 4), _target(-1, 4), (None, 2)),  # time and batch merged: only the 4 kept
    ((1, None, 5), _target(-1, 5), (1, 2)),  # a leading 1 lays out nothing
    ((None, 5), _target(1, -1, 5), (None, 0, 1)),  # nor an added one
    ((None, 6), _target(-1, 3), (None, None)),  # the -1 is 2 x batch
    ((None, 2, 3), _target(-1, 3), (None, 2)),
    ((None, 3, 4), _target("a0", -1), (0, None)),  # Flatten: reshape(x, [shape(x)[0], -1])
    ((None, 3, 4), _target("a0", 12), (0, None)),
    ((None, 3, 4), _target("a0", 3, 4), (0, 1, 2)),
    ((None, 297, 21), _target(-1, 6237), (0, None)),  # as many elements after the -1 as after the batch
    ((None, 3, 4), _target(12, -1), (None, None)),  # the batch mixed into the rows
], ids=["minus-one-is-batch", "time-batch-merged", "leading-one", "added-one", "twice-batch", "two-left", "flatten",
        "flatten-static", "same", "flatten-constant", "batch-inside"])
def test_a_reshape_keeps_the_axes_it_lays_out_alike(shape, target, want):
    assert reshape_axes(target, tuple(range(len(shape))), shape) == want


def test_a_target_element_reading_an_axis_holds_it():
    """``[t*b, h]`` split back to ``[shape(x)[0], shape(x)[1], h]``: the merged input holds no axis of its own."""
    assert reshape_axes(_target("a0", "a1", 5), (None, None), (None, None, 4)) == (0, 1, None)


@pytest.mark.parametrize(("ref", "want"), [("a", "a:0"), ("a:1", "a:1"), ("f/out:z:0", "f/out:z:0"), ("^a", "^a:0")])
def test_port_ref_names_the_port_and_keeps_a_control_mark(ref, want):
    """The one ref form the axis walks (axis_sizes, axis_walk, batch_axis) match: a control input never names a tensor."""
    assert port_ref(ref) == want
