"""A composite tensor whose ``TypeSpec`` is registered by name, as TensorFlow Probability's distributions and
TF-GNN's ``GraphTensor`` are: a SavedModel function that takes or returns it loads only where it is registered."""

from __future__ import annotations

import textwrap


def masked_type_source(registered: str) -> str:
    """Python source defining ``MaskedSpec`` (registered as ``<registered>.MaskedSpec``; ``registered`` is a Python
    expression, e.g. ``'"writer_only"'`` or ``"__name__"``) and its value class ``Masked``."""
    return textwrap.dedent('''
        import tensorflow as tf
        from tensorflow.python.framework import composite_tensor, type_spec, type_spec_registry

        @type_spec_registry.register(REGISTERED + ".MaskedSpec")
        class MaskedSpec(type_spec.TypeSpec):
            value_type = property(lambda self: Masked)

            def __init__(self, shape, dtype=tf.float32):
                self._shape, self._dtype = tf.TensorShape(shape), tf.as_dtype(dtype)

            def _serialize(self):
                return (self._shape, self._dtype)

            @property
            def _component_specs(self):
                return (tf.TensorSpec(self._shape, self._dtype), tf.TensorSpec(self._shape, tf.bool))

            def _to_components(self, value):
                return (value.values, value.mask)

            def _from_components(self, components):
                return Masked(*components)

        class Masked(composite_tensor.CompositeTensor):
            def __init__(self, values, mask):
                self.values, self.mask = values, mask

            @property
            def _type_spec(self):
                return MaskedSpec(self.values.shape, self.values.dtype)
        ''').replace("REGISTERED", registered)
