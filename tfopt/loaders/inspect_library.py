"""``tfopt inspect``'s view of a GraphDef's function library: the bodies of ``tf.function`` calls,
``While`` conditions and bodies, ``If``/``Case`` branches.

The main graph's counts (nodes, op histogram, training-only nodes) stop at a call: a ``While`` is one
node there, whatever its body holds. This describes the library as the main graph is described:

    functions        how many the library holds; ``reached``: how many the main graph calls, directly
                     or from another body (what freezing inlines and the converters read)
    nodes, ops       every body's nodes and their op histogram
    training_nodes   training-only nodes inside the bodies (an optimizer's apply, a variable write,
                     a ``gradients/`` scope: :func:`tfopt.loaders.training_nodes.is_training_node`),
                     and ``training_ops``: per function the training-only ops it holds
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import nodes_histogram
from tfopt.graphdef.calls import callees, library_of
from tfopt.loaders.training_nodes import is_training_node


def library_summary(graph_def: Any) -> dict[str, Any] | None:
    """The function library of ``graph_def`` (see the module doc), or None when it has none."""
    library = library_of(graph_def)
    if not library:
        return None
    reached: set[str] = set()
    todo = [name for node in graph_def.node for name in callees(node, library)]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(c for node in library[name].node_def for c in callees(node, library))
    nodes = [node for fdef in library.values() for node in fdef.node_def]
    training = {name: sorted({n.op for n in fdef.node_def if is_training_node(n)}) for name, fdef in library.items()}
    return {"functions": len(library), "reached": len(reached), "nodes": len(nodes), "ops": nodes_histogram(nodes),
            "training_nodes": sum(1 for n in nodes if is_training_node(n)),
            "training_ops": {name: ops for name, ops in sorted(training.items()) if ops}}
