"""Frozen GraphDefs: binary ``.pb`` or text ``.pbtxt``."""

from __future__ import annotations

import os
from typing import Any

from tfopt.errors import ModelFormatError
from tfopt.graph import Model
from tfopt.graphdef.order import check_acyclic
from tfopt.loaders._signature import adopt_recorded_shapes, input_specs, output_specs, resolve_outputs

FORMAT = "graphdef"


def detect(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith((".pb", ".pbtxt"))


def read_graph_def(path: str, graph_def_cls: Any) -> Any:
    """Parse ``path`` into ``graph_def_cls`` (TF's GraphDef, or tfopt's light one for inspect)."""
    from google.protobuf import message, text_format

    graph_def = graph_def_cls()
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.lower().endswith(".pbtxt"):
            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not a valid GraphDef ({str(exc)[:200]}); the file may be "
                               "truncated or not a TensorFlow graph") from exc
    if not graph_def.node:
        raise ModelFormatError(f"{path}: the GraphDef holds no nodes; the file may be truncated")
    return graph_def


def load(path: str, options: Any) -> Model:
    from tfopt._tf import graph_def_class

    graph_def = read_graph_def(path, graph_def_class())
    check_acyclic(graph_def, path)
    adopt_recorded_shapes(graph_def)
    outputs, chosen_from = resolve_outputs(graph_def, options.outputs, path)
    return Model(
        graph_def=graph_def,
        inputs=input_specs(graph_def, outputs, exclude=set()),
        outputs=output_specs(graph_def, outputs),
        provenance={"format": FORMAT, "path": path, "variables": 0, "variable_bytes": 0,
                    "source_nodes": len(graph_def.node), **chosen_from},
    )
