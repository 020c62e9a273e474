"""Serving SavedModel rebuilt from the frozen graph, same input and output names.

The frozen GraphDef is imported into a ``wrap_function``, pruned to the model's inputs/outputs
and exposed as the ``serving_default`` signature, so TF Serving and ``tf.saved_model.load``
users can drop it in. It holds no variables: all weights are constants of the graph.
"""

from __future__ import annotations

from typing import Any

from tfopt._io import atomic_path
from tfopt._tf import tf
from tfopt.graph import Model


def emit_savedmodel(model: Model, path: str, *, signature: str = "serving_default") -> str:
    t = tf()
    graph_def = model.graph_def

    def _import() -> None:
        t.compat.v1.import_graph_def(graph_def, name="")

    wrapped = t.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    feeds = [graph.get_tensor_by_name(s.tensor) for s in model.inputs]
    fetches = [graph.get_tensor_by_name(s.tensor) for s in model.outputs]
    pruned = wrapped.prune(feeds=feeds, fetches=fetches)
    specs = [t.TensorSpec(_shape(s.shape), t.as_dtype(s.dtype), name=s.name) for s in model.inputs]
    names = [s.name for s in model.outputs]

    module = t.Module()
    module.frozen = pruned  # tracked, so the graph is saved with the module

    @t.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(zip(names, pruned(*args)))

    module.serve = serve
    with atomic_path(path, directory=True) as tmp:
        t.saved_model.save(module, tmp, signatures={signature: serve})
    return path


def _shape(shape: Any) -> Any:
    return None if shape is None else list(shape)
