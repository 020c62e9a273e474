"""Keras 3 ``TimeDistributed`` over an open time axis, traced as one call on the folded batch.

Keras 3 maps a ``TimeDistributed`` layer over an unknown number of steps with
``backend.vectorized_map``. Its inner gather (``inputs[i]`` with ``i`` varying) has no vectorised
form, so the traced graph holds pfor's fallback ``while`` loop, writing a ``TensorList`` of unknown
element rank: TFLite's converter cannot lower that list, with the batch open or pinned. Keras 2
traced the same layer as one call on ``[batch * time, ...]`` between two reshapes; :func:`folded`
traces it that way (the inner layer's inference call is per sample, so both give the same numbers).
A static time axis (Keras 3 unrolls it) and a mask the inner layer takes keep Keras 3's own call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def folded() -> Iterator[None]:
    """Within the block, Keras 3 ``TimeDistributed`` calls over an open time axis run the inner
    layer once on the folded ``[batch * time, ...]`` input (module docstring)."""
    try:
        from keras.src.layers.rnn.time_distributed import TimeDistributed
    except ImportError:  # no Keras 3
        yield
        return
    original = TimeDistributed.call

    def call(self: Any, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if inputs.shape[1] is not None or (mask is not None and self.layer._call_has_mask_arg):
            return original(self, inputs, training=training, mask=mask)
        from tfopt._tf import tf

        t = tf()
        shape = t.shape(inputs)
        inner = list(inputs.shape[2:])
        flat = t.reshape(inputs, [-1, *inner] if None not in inner else t.concat([[-1], shape[2:]], 0))
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        out = self.layer.call(flat, **kwargs)
        per_step = list(out.shape[1:])
        target = [shape[0], shape[1], *per_step] if None not in per_step else t.concat([shape[:2], t.shape(out)[1:]], 0)
        return t.reshape(out, target)

    TimeDistributed.call = call
    try:
        yield
    finally:
        TimeDistributed.call = original
