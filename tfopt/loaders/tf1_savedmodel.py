"""TF1 SavedModels that TensorFlow 2's loader refuses, loaded as a TF1 checkpoint's MetaGraph.

``tf.saved_model.load`` lifts each signature into a function and fails when a signature's output
depends on a placeholder the signature does not take (a dropout keep probability, a training flag,
or an output that is itself a placeholder). A SavedModel written by TF1's builder holds the whole
MetaGraph and its variables in ``variables/``: that is what a TF1 checkpoint holds, so it is loaded
the same way (:func:`tfopt.loaders.tf1_checkpoint.load_meta_graph`). Outputs are chosen among the
graph's sinks or given with ``--outputs``; training flags and dropout keep probabilities are bound
when freezing, or with ``--set``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tfopt.errors import OptionError
from tfopt.graph import VARIABLE_OPS, Model

FORMAT = "savedmodel-tf1"
GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
log = logging.getLogger(__name__)


def read_saved_model(path: str) -> Any:
    """The ``SavedModel`` proto of ``saved_model.pb`` or, failing that, ``saved_model.pbtxt``
    (None when neither can be read: the load itself reports it)."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    for name in GRAPH_FILES:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        proto = saved_model_pb2.SavedModel()
        try:
            if name.endswith(".pbtxt"):
                with open(file, encoding="utf-8") as f:
                    text_format.Parse(f.read(), proto, allow_unknown_field=True)
            else:
                with open(file, "rb") as f:
                    proto.ParseFromString(f.read())
        except Exception:  # a corrupt file is reported by the load itself
            return None
        return proto
    return None


def is_tf1(proto: Any) -> bool:
    """Written by TF1's builder: a MetaGraph with a graph and no TF2 object graph."""
    return proto is not None and any(
        mg.graph_def.node and not mg.object_graph_def.nodes for mg in proto.meta_graphs)


def _meta_graph(path: str, proto: Any, tags: list[str] | None) -> Any:
    graphs = list(proto.meta_graphs)
    if tags:
        chosen = [mg for mg in graphs if sorted(set(mg.meta_info_def.tags)) == sorted(set(tags))]
    else:
        chosen = [mg for mg in graphs if "serve" in mg.meta_info_def.tags] or graphs
    if len(chosen) != 1:
        shown = "; ".join(" ".join(mg.meta_info_def.tags) or "(no tags)" for mg in graphs)
        raise OptionError(f"{path}: {len(chosen)} MetaGraphs match; choose one with --tags (available tag sets: {shown})")
    return chosen[0]


def load(path: str, options: Any, refused: str) -> Model:
    """Load ``path``'s TF1 MetaGraph; ``refused`` is what TF2's loader said (for the log and errors)."""
    from tfopt.errors import TfoptError
    from tfopt.loaders.tf1_checkpoint import check_checkpoint_files, load_meta_graph

    proto = read_saved_model(path)
    meta_graph = _meta_graph(path, proto, options.tags or None)
    prefix = os.path.join(path, "variables", "variables")
    if any(n.op in VARIABLE_OPS for n in meta_graph.graph_def.node):
        check_checkpoint_files(prefix)
    log.warning("%s: TensorFlow 2 cannot load this TF1 SavedModel's signatures (%s); loading its MetaGraph "
                "as a TF1 checkpoint: outputs chosen among the graph's heads (--outputs to name them)", path, refused)
    signatures = sorted(meta_graph.signature_def)
    try:
        return load_meta_graph(meta_graph, prefix, path, options, source=path, provenance={
            "format": FORMAT, "path": path, "tags": sorted(meta_graph.meta_info_def.tags),
            "signatures": signatures, "tf2_refused": refused})
    except TfoptError as exc:
        raise type(exc)(f"{exc}\n(TensorFlow 2 refused this TF1 SavedModel's signatures: {refused}; tfopt loaded its "
                        "MetaGraph instead: name the outputs with --outputs NODE and feed values with --set NAME=VALUE)"
                        ) from exc
