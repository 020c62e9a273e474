"""Frozen GraphDef: binary ``.pb`` (default) or text ``.pbtxt``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfopt._io import atomic_path
from tfopt.graph import Model

if TYPE_CHECKING:
    from tfopt.targets import EmitJob


def emit_frozen_graph(model: Model, path: str, *, text: bool = False) -> str:
    """Write ``model.graph_def`` to ``path`` atomically. Returns ``path``.

    Raises:
        ProtobufLimitError: the model keeps tensors outside its graph (:mod:`tfopt.external`).
    """
    from tfopt.external.checks import refuse_single_graphdef

    refuse_single_graphdef(model, path)
    data: Any
    if text:
        from google.protobuf import text_format

        data = text_format.MessageToString(model.graph_def).encode()
    else:
        data = model.graph_def.SerializeToString(deterministic=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def emit(job: EmitJob) -> str:
    """The ``pb`` target (:mod:`tfopt.targets`): the runtime graph as a binary frozen GraphDef."""
    return emit_frozen_graph(job.runtime, job.path)
