"""Serving SavedModel rebuilt from the frozen graph, same input and output names.

The frozen GraphDef is imported into a ``wrap_function``, pruned to the model's inputs/outputs
and exposed as the ``serving_default`` signature, so TF Serving and ``tf.saved_model.load``
users can drop it in. It holds no variables: all weights are constants of the graph.

Byte-identical output, in any process: :mod:`tfopt.external.savedmodel_bytes` (the fingerprint's random
uuid, the traced functions' process-wide uids). ``assets.extra/tfopt.json`` marks the directory as tfopt's
(:mod:`tfopt.conversion.output_paths`): a later run may replace it; loaders and TF Serving ignore ``assets.extra``.

Input names: a signature's arguments follow Python's naming rule (TensorFlow's ``sanitize_arg_name``),
so an input named ``IteratorGetNext/output_0`` (a ``tf.data`` element cut into an input) or ``input/x``
is the argument :func:`tfopt.external.serving.serving_arg_name` gives it, ``IteratorGetNext_output_0``; ``tfopt.json``
records each such renaming (``inputs``) and the artifact's runner pairs the model's inputs through it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from tfopt._io import atomic_path
from tfopt._tf import tf
from tfopt.external.serving import renamed_inputs, serving_arg_name
from tfopt.graph import Model

if TYPE_CHECKING:
    from tfopt.targets import EmitJob


def emit_savedmodel(model: Model, path: str, *, signature: str = "serving_default") -> str:
    from tfopt.external.savedmodel_bytes import canonical_bytes
    from tfopt.runtimes.tensorflow import wrapped_graph

    t = tf()
    wrapped = wrapped_graph(model.graph_def)
    graph = wrapped.graph
    feeds = [graph.get_tensor_by_name(s.tensor) for s in model.inputs]
    fetches = [graph.get_tensor_by_name(s.tensor) for s in model.outputs]
    pruned = wrapped.prune(feeds=feeds, fetches=fetches)
    specs = [t.TensorSpec(_shape(s.shape), t.as_dtype(s.dtype), name=serving_arg_name(s.name)) for s in model.inputs]
    names = [s.name for s in model.outputs]

    module = t.Module()
    module.frozen = pruned  # tracked, so the graph is saved with the module

    @t.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(zip(names, pruned(*args)))

    module.serve = serve
    with atomic_path(path, directory=True) as tmp:
        t.saved_model.save(module, tmp, signatures={signature: serve})
        canonical_bytes(tmp)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, "assets.extra", "tfopt.json"), "w") as f:
            json.dump({"written_by": "tfopt", **renamed_inputs(model)}, f)
    return path


def _shape(shape: Any) -> Any:
    return None if shape is None else list(shape)


def emit(job: EmitJob) -> str:
    """The ``savedmodel`` target (:mod:`tfopt.targets`): the runtime graph as a serving SavedModel; a
    model with tensors outside its graph keeps them as the SavedModel's variables (:mod:`tfopt.external`)."""
    if job.runtime.external is not None:
        from tfopt.external import write_serving_savedmodel

        return write_serving_savedmodel(job.runtime, job.path)
    return emit_savedmodel(job.runtime, job.path)
