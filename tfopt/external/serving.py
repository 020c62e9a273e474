"""A serving SavedModel whose tensors kept outside the GraphDef are variables.

This is how a model over 2 GB leaves tfopt: as the ``savedmodel`` target's artifact, and as the one
hand-off to every converter (``tfopt.emitters.large.emit_from_savedmodel``), which all read a
SavedModel's variables from its checkpoint. The graph is imported inside a ``tf.function`` with
each ``ImmutableConst`` replaced by the read of a ``tf.Variable`` holding the file's values
(``input_map``), so the saved function body holds only the small constants and the variables
are written once, to ``variables/``. Signature ``serving_default``: the model's input names as
arguments, its output names as output keys.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfopt._io import atomic_path
from tfopt._tf import tf
from tfopt.errors import GraphError
from tfopt.external.tensors import EXTERNAL_OP, ExternalTensor
from tfopt.graph import Model, shape_of

SIGNATURE = "serving_default"


def write_serving_savedmodel(model: Model, directory: str) -> str:
    """Write ``model`` to ``directory`` (atomically) as a TF2 SavedModel; returns ``directory``.

    Raises:
        GraphError: an ``ImmutableConst`` whose file is missing (the model's external tensors were
            deleted: keep the :class:`~tfopt.graph.Model` alive while writing).
    """

    from tfopt.external.savedmodel_bytes import canonical_bytes
    from tfopt.graphdef.function_names import content_named

    t = tf()
    graph_def = content_named(model.graph_def)  # registered process-wide (graphdef.function_names)
    if graph_def is model.graph_def:  # no library: still a copy, the placeholders below change it
        graph_def = type(model.graph_def)()
        graph_def.CopyFrom(model.graph_def)
    module = t.Module()
    module.weights = {}
    reads: dict[str, Any] = {}
    for node in graph_def.node:
        if node.op != EXTERNAL_OP:
            continue
        module.weights[node.name] = variable = _variable(t, _record(node), node.name.replace("/", "_"))
        reads[f"{node.name}:0"] = variable
        _to_placeholder(node)
    specs = [t.TensorSpec(None if s.shape is None else list(s.shape), t.as_dtype(s.dtype), name=serving_arg_name(s.name))
             for s in model.inputs]
    names, fetches = [s.name for s in model.outputs], [s.tensor for s in model.outputs]

    @t.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        feeds = {s.tensor: a for s, a in zip(model.inputs, args)}
        feeds.update({key: v.read_value() for key, v in reads.items()})
        # no prefix: the artifacts' tensors keep the graph's names, which `tfopt debug compare` aligns by
        outs = t.graph_util.import_graph_def(graph_def, input_map=feeds, return_elements=fetches, name="")
        return {name: t.identity(out) for name, out in zip(names, outs)}

    module.serve = serve
    with atomic_path(directory, directory=True) as tmp:
        t.saved_model.save(module, tmp, signatures={SIGNATURE: serve.get_concrete_function()})
        canonical_bytes(tmp)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, "assets.extra", "tfopt.json"), "w") as f:
            json.dump({"written_by": "tfopt", "external_tensors": sorted(reads), **renamed_inputs(model)}, f)
    return directory


def _variable(t: Any, record: ExternalTensor, name: str) -> Any:
    """A ``tf.Variable`` holding ``record``'s values, filled a slice at a time from its file.

    ``tf.Variable(array)`` converts the array to a tensor and the variable copies that tensor: three
    copies of the table at once (two when the array is memory-mapped, plus its mapped pages). Created
    as zeros and assigned slice by slice, the table is held once, plus the zeros until the variable
    owns its own buffer (measured: 1.75x the table at the peak instead of 3x)."""
    variable = t.Variable(t.zeros(record.shape, t.as_dtype(record.dtype)), trainable=False, name=name)
    if not record.shape:
        variable.assign(record.read())
        return variable
    for start, rows in record.chunks():
        # The op on the handle, not ``variable[a:b].assign``: that slice holds a read of the variable, so
        # every assignment copied the whole table first (measured: 500 s for a 2.2 GB table).
        t.raw_ops.ResourceStridedSliceAssign(ref=variable.handle, begin=[start], end=[start + len(rows)], strides=[1],
                                             value=rows)
    return variable


def _record(node: Any) -> ExternalTensor:
    from tfopt.graph import dtype_name

    path = node.attr["memory_region_name"].s.decode()
    if not os.path.isfile(path):
        raise GraphError(f"node '{node.name}': its values file {path} is gone; the model's external tensors "
                         "live as long as the loaded model (write it before the model is released)")
    shape = shape_of(node.attr["shape"].shape)
    return ExternalTensor(node.name, path, dtype_name(node.attr["dtype"].type), tuple(d or 0 for d in shape or ()))


def _to_placeholder(node: Any) -> None:
    """The node becomes a Placeholder of the same dtype and shape, which ``input_map`` replaces."""
    dtype, shape = node.attr["dtype"].type, type(node.attr["shape"].shape)()
    shape.CopyFrom(node.attr["shape"].shape)
    node.op = "Placeholder"
    node.attr.clear()
    node.attr["dtype"].type = dtype
    node.attr["shape"].shape.CopyFrom(shape)


def serving_arg_name(name: str) -> str:
    """The signature argument TensorFlow makes of input ``name`` (its ``sanitize_arg_name``): every
    character that is not a letter or a digit becomes ``_``, and ``arg_`` is put in front of a name
    that does not start with a letter. ``images`` stays ``images``; ``input/x:1`` is ``input_x_1``."""
    swapped = "".join(c if c.isalnum() else "_" for c in name)
    return swapped if swapped[:1].isalpha() else f"arg_{swapped}"


def renamed_inputs(model: Model) -> dict[str, dict[str, str]]:
    """``{"inputs": {input name: its signature argument}}`` for the inputs :func:`serving_arg_name`
    renames (``{}`` when none is)."""
    renamed = {s.name: serving_arg_name(s.name) for s in model.inputs if serving_arg_name(s.name) != s.name}
    return {"inputs": renamed} if renamed else {}
