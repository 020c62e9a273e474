"""A SavedModel's MetaGraph with only the library functions its graph reaches.

A TF2 SavedModel's function library holds every ``tf.function`` of its object graph, the serving
signature's and every other one's. TensorFlow imports the whole library, so a function the
signature never calls that uses an op this TensorFlow lacks (a tensorflow_text op in a
preprocessing function) stops the load ("Op type not registered"). The graph of the MetaGraph
reaches the signatures, the saver's save and restore functions and the initialiser; the functions
they call, directly (a node whose op is a function), through a function-valued attribute
(``PartitionedCall``'s ``f``, ``While``'s ``body``) or as a registered gradient, are kept; the
others are dropped (:func:`tfopt.passes.prune_dead.prune_library`), in a copy of ``saved_model.pb``
beside links to ``variables/`` and ``assets/``.
"""

from __future__ import annotations

import os
from typing import Any


def pruned_copy(path: str, proto: Any, directory: str) -> tuple[str, int]:
    """A SavedModel in ``directory`` that is ``path``'s with each MetaGraph's library cut to the
    functions its graph reaches (``variables/`` and ``assets/`` linked, not copied); and how many
    functions were dropped."""
    from tensorflow.core.protobuf import saved_model_pb2

    from tfopt.passes.prune_dead import prune_library

    copy = saved_model_pb2.SavedModel()
    copy.CopyFrom(proto)
    dropped = 0
    for meta_graph in copy.meta_graphs:
        dropped += prune_library(meta_graph.graph_def, gradients=True)  # as the dead-code pass, gradients kept
        meta_graph.ClearField("object_graph_def")  # read as TensorFlow reads a TF1 SavedModel: its signatures
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
        f.write(copy.SerializeToString())
    for name in ("variables", "assets"):
        if os.path.isdir(os.path.join(path, name)):
            os.symlink(os.path.abspath(os.path.join(path, name)), os.path.join(directory, name))
    return directory, dropped
