"""Keras 3 ``TimeDistributed`` over an open time axis, traced as one call on the folded batch.

Keras 3 maps a ``TimeDistributed`` layer over an unknown number of steps with
``backend.vectorized_map``. Its inner gather (``inputs[i]`` with ``i`` varying) has no vectorised
form, so the traced graph holds pfor's fallback ``while`` loop, writing a ``TensorList`` of unknown
element rank: TFLite's converter cannot lower that list, with the batch open or pinned (an inner
recurrent layer's own loop inside it does not even freeze). Keras 2 traced the same layer as one
call on ``[batch * time, ...]`` between two reshapes; :func:`folded` traces it that way:

    x: [batch, time, *s]  ->  x' = reshape(x, [batch * time, *s])
    mask: [batch, time, *m]  ->  mask' = reshape(mask, [batch * time, *m])   (an inner layer that takes one)
    y' = layer.call(x', mask=mask', training=...)  ->  y = reshape(y', [batch, time, *y'.shape[1:]])

Keras 3 calls the inner layer at step ``i`` on ``x[:, i]`` with ``mask[:, i]``; row
``b * time + i`` of ``x'`` and ``mask'`` is that step's row ``b``, so an inner layer whose inference
call is per sample (Keras's own layers, recurrent ones included) gives the same numbers. The output
mask is not the call's: Keras 3's ``TimeDistributed`` passes its input mask on (``Layer.compute_mask``),
unchanged here. A static time axis (Keras 3 unrolls it into one call per step) keeps Keras 3's call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def folded() -> Iterator[None]:
    """Within the block, Keras 3 ``TimeDistributed`` calls over an open time axis run the inner
    layer once on the folded ``[batch * time, ...]`` input and mask (module docstring)."""
    try:
        from keras.src.layers.rnn.time_distributed import TimeDistributed
    except ImportError:  # no Keras 3
        yield
        return
    original = TimeDistributed.call

    def call(self: Any, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        takes_mask = mask is not None and self.layer._call_has_mask_arg
        if inputs.shape[1] is not None or (takes_mask and len(mask.shape) < 2):  # unrolled; a bad mask: Keras says so
            return original(self, inputs, training=training, mask=mask)
        from tfopt._tf import tf

        t = tf()
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        if takes_mask:
            kwargs["mask"] = _fold(t, mask)
        out = self.layer.call(_fold(t, inputs), **kwargs)
        per_step = list(out.shape[1:])
        steps = t.shape(inputs)[:2]
        return t.reshape(out, [steps[0], steps[1], *per_step] if None not in per_step
                         else t.concat([steps, t.shape(out)[1:]], 0))

    TimeDistributed.call = call
    try:
        yield
    finally:
        TimeDistributed.call = original


def _fold(t: Any, x: Any) -> Any:
    """``x`` of shape ``[batch, time, *s]`` as ``[batch * time, *s]``."""
    inner = list(x.shape[2:])
    return t.reshape(x, [-1, *inner] if None not in inner else t.concat([[-1], t.shape(x)[2:]], 0))
