"""Which Keras builds a ``--model-fn`` model for a TF2 object checkpoint, and how a subclassed Keras
model (no ``model.inputs``) is traced.

A checkpoint written by a Keras 2 (tf-keras) model can only be restored into a Keras 2 model: Keras 3
tracks other objects (``_kernel``, a GRU without its ``cell``) and may create no variables at all in
``build()``. A partial restore is not a restore: :func:`checkpoint_values` counts the values stored
under the model's attribute (optimizer slots excluded), and a model whose variables are fewer did not
match, whatever ``assert_existing_objects_matched`` says of the few it has.

A subclassed Keras model built with ``build(shape)`` has no ``inputs`` but records that shape
(tf-keras ``_build_input_shape``, Keras 3 ``_build_shapes_dict``); :func:`built_input_shape` reads it
so the model's inference call can be traced with batch left open.
"""

from __future__ import annotations

from typing import Any

_SLOT = "/.OPTIMIZER_SLOT/"
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_values(reader: Any, attr: str | None) -> int:
    """How many variable values the checkpoint stores under root attribute ``attr`` (all if None)."""
    prefix = "" if attr is None else attr + "/"
    return sum(1 for key in reader.get_variable_to_shape_map()
               if key.startswith(prefix) and key.endswith(_VALUE) and _SLOT not in key
               and not key.startswith("save_counter/") and not key.startswith("optimizer/"))


def model_variables(model: Any) -> int:
    """Distinct variables of ``model`` (a Keras model or a tf.Module)."""
    found = getattr(model, "variables", None)
    if found is None:
        found = getattr(model, "weights", [])
    return len({id(v) for v in found})


def built_input_shape(model: Any) -> list[int | None] | None:
    """The input shape a subclassed Keras model was built with, or None."""
    shape = getattr(model, "_build_input_shape", None)
    if shape is None:
        shapes = getattr(model, "_build_shapes_dict", None) or {}
        shape = next(iter(shapes.values()), None) if len(shapes) == 1 else None
    if shape is None:
        return None
    dims = list(shape.as_list() if hasattr(shape, "as_list") else shape)
    if not dims or isinstance(dims[0], (list, tuple)):
        return None  # several inputs: not guessed
    return [None, *dims[1:]]


def is_keras_model(model: Any) -> bool:
    return hasattr(model, "layers") and callable(getattr(model, "call", None))
