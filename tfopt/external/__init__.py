"""Models over 2 GB: tensors kept outside the GraphDef (memory-mapped files) and the serving
SavedModel that hands such a model to every converter.

A GraphDef is a protobuf and cannot exceed 2 GB. Freezing keeps the weights
:func:`choose_external` picks (``--external-threshold``) out of it: each is a raw file in a
directory :class:`ExternalTensors` owns, and an ``ImmutableConst`` node in the graph that maps
it, so TensorFlow runs the graph as it is and no folding pass reads the value. A model with
``Model.external`` is written as a SavedModel whose large tensors are variables
(:func:`write_serving_savedmodel`), never as a single ``.pb``.
"""

from tfopt.external.tensors import (
    DEFAULT_THRESHOLD,
    EXTERNAL_OP,
    GRAPH_BUDGET,
    PROTOBUF_LIMIT,
    ExternalTensor,
    ExternalTensors,
    choose_external,
    external_nodes,
    store_large,
)

__all__ = ["DEFAULT_THRESHOLD", "EXTERNAL_OP", "GRAPH_BUDGET", "PROTOBUF_LIMIT", "ExternalTensor", "ExternalTensors",
           "choose_external", "external_nodes", "store_large", "write_serving_savedmodel"]


def write_serving_savedmodel(model: object, directory: str) -> str:
    """See :func:`tfopt.external.serving.write_serving_savedmodel` (imports TensorFlow)."""
    from tfopt.external.serving import write_serving_savedmodel as write

    return write(model, directory)  # type: ignore[arg-type]
