"""A SavedModel's MetaGraph with only the library functions its graph reaches.

A TF2 SavedModel's function library holds every ``tf.function`` of its object graph, the serving
signature's and every other one's. TensorFlow imports the whole library, so a function the
signature never calls that uses an op this TensorFlow lacks (a tensorflow_text op in a
preprocessing function) stops the load ("Op type not registered"). The graph of the MetaGraph
reaches the signatures, the saver's save and restore functions and the initialiser; the functions
they call, directly (a node whose op is a function), through a function-valued attribute
(``PartitionedCall``'s ``f``, ``While``'s ``body``) or as a registered gradient, are kept; the
others are dropped, in a copy of ``saved_model.pb`` beside links to ``variables/`` and ``assets/``.
"""

from __future__ import annotations

import os
from typing import Any


def reached_functions(meta_graph: Any) -> set[str]:
    """The names of the library functions ``meta_graph``'s graph reaches, transitively: the calls
    :func:`tfopt.graphdef.calls.callees` names (as :func:`tfopt.passes.prune_dead.called_functions`
    follows them), and each reached function's registered gradient, which TensorFlow imports with it."""
    from tfopt.graphdef.calls import callees, library_of

    library = library_of(meta_graph.graph_def)
    gradients = {g.function_name: g.gradient_func for g in meta_graph.graph_def.library.gradient}
    reached: set[str] = set()
    pending = [n for node in meta_graph.graph_def.node for n in callees(node, library)]
    while pending:
        name = pending.pop()
        if name in reached or name not in library:
            continue
        reached.add(name)
        pending += [n for node in library[name].node_def for n in callees(node, library)]
        pending += [gradients[name]] if name in gradients else []
    return reached


def pruned_copy(path: str, proto: Any, directory: str) -> tuple[str, int]:
    """A SavedModel in ``directory`` that is ``path``'s with each MetaGraph's library cut to the
    functions its graph reaches (``variables/`` and ``assets/`` linked, not copied); and how many
    functions were dropped."""
    from tensorflow.core.protobuf import saved_model_pb2

    copy = saved_model_pb2.SavedModel()
    copy.CopyFrom(proto)
    dropped = 0
    for meta_graph in copy.meta_graphs:
        keep = reached_functions(meta_graph)
        library = meta_graph.graph_def.library
        kept = [f for f in library.function if f.signature.name in keep]
        dropped += len(library.function) - len(kept)
        grads = [g for g in library.gradient if g.function_name in keep]
        del library.function[:], library.gradient[:]
        library.function.extend(kept)
        library.gradient.extend(grads)
        meta_graph.ClearField("object_graph_def")  # read as TensorFlow reads a TF1 SavedModel: its signatures
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
        f.write(copy.SerializeToString())
    for name in ("variables", "assets"):
        if os.path.isdir(os.path.join(path, name)):
            os.symlink(os.path.abspath(os.path.join(path, name)), os.path.join(directory, name))
    return directory, dropped
