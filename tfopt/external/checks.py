"""Where a model with tensors outside its graph cannot go, said before anything is written."""

from __future__ import annotations

import os
from typing import Any

from tfopt.errors import ProtobufLimitError
from tfopt.external.tensors import external_nodes


def refuse_single_graphdef(model: Any, path: str) -> None:
    """Raise when ``model``'s graph has ``ImmutableConst`` nodes: a ``.pb`` would have to hold them
    as constants, and a protobuf stops at 2 GB.

    Raises:
        ProtobufLimitError: naming the tensors, their size and the SavedModel to write instead.
    """
    nodes = external_nodes(model.graph_def)
    if not nodes:
        return
    external = model.external
    size = sum(external[n.name].nbytes for n in nodes if external is not None and n.name in external)
    shown = ", ".join(n.name for n in nodes[:3]) + (" ..." if len(nodes) > 3 else "")
    raise ProtobufLimitError(
        f"{os.path.basename(path)}: a single GraphDef cannot hold this model: {len(nodes)} tensor(s) ({size / 1e6:.1f} MB: {shown}) "
        "are kept outside the graph, and a .pb is a protobuf, which stops at 2 GB. Write a SavedModel instead "
        "(--to savedmodel, or an output path without .pb): its large tensors are variables")
