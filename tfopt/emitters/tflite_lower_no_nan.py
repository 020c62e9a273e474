"""``DivNoNan`` and ``MulNoNan`` as a division or product and a select, for TFLite.

TensorFlow (``tf.math.divide_no_nan``, ``tf.math.multiply_no_nan``; Keras 2's ``GroupNormalization``
divides its weighted moments with it, as ``tf.nn.weighted_moments`` does)::

    div_no_nan(x, y) = 0 where y = 0, else x / y
    mul_no_nan(x, y) = 0 where y = 0, else x · y       (even where x is inf or NaN)

TFLite has no builtin for either; its converter writes each as ``SELECT_V2(y == 0, 0, x ∘ y)`` with
every operand first broadcast by ``BROADCAST_ARGS``/``BROADCAST_TO`` to a shape it computes at run
time. With a dynamic batch and rank 5 (a group norm's ``[N, H, W, groups, C/groups]``), the file it
writes broadcasts the condition to the *scalar zero's* shape ``[]``, and LiteRT refuses the model at
``allocate_tensors`` ("BROADCAST_TO: Output shape must be broadcastable from input shape"; measured with
TensorFlow 2.21, a 4-D case converts). Here each becomes the same formula with the broadcast left to
the ops that do it: ``q = x ∘ y``; ``where(y == 0, zeros_like(q), q)`` (``SELECT_V2`` broadcasts the
condition itself). Exact: the same quotient or product, and 0 where ``y`` is 0 (±0; a NaN ``y`` gives
NaN, as TensorFlow's). The select takes ``q``, never the op's input, so an int8 build keeps its scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import registry


def _guarded(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    x, y = inputs
    q = x / y if node.op == "DivNoNan" else x * y
    return [t.where(t.equal(y, t.zeros([], y.dtype)), t.zeros_like(q), q)]


registry.register("DivNoNan", what="x / y, then 0 where y = 0 (a select)")(_guarded)
registry.register("MulNoNan", what="x · y, then 0 where y = 0 (a select)")(_guarded)
