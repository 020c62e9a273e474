"""Run TensorFlow's Grappler offline on a GraphDef with a chosen list of optimizers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.errors import OptionError

# RewriterConfig optimizer names accepted by Grappler's meta-optimizer.
GRAPPLER_OPTIMIZERS = (
    "pruning", "function", "constfold", "shape", "arithmetic", "layout", "remap", "loop", "dependency",
    "memory", "common_subgraph_elimination", "debug_stripper", "scoped_allocator", "pin_to_host",
    "implementation_selector", "auto_mixed_precision", "disable_model_pruning",
)


def run_grappler(graph_def: Any, keep: Sequence[str], optimizers: Sequence[str]) -> Any:
    """Optimize ``graph_def`` with ``optimizers``, never touching the nodes in ``keep``.

    Nodes are placed on the CPU for the run (the remapper only fuses placed nodes) and the
    placement is cleared afterwards, so the result runs wherever TensorFlow runs.
    """
    unknown = [o for o in optimizers if o not in GRAPPLER_OPTIMIZERS]
    if unknown:
        raise OptionError(f"--grappler: unknown optimizer(s) {', '.join(unknown)}; "
                          f"choose from {', '.join(GRAPPLER_OPTIMIZERS)}")
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    for node in meta.graph_def.node:
        node.device = "/device:CPU:0"
    meta.collection_def["train_op"].node_list.value.extend(keep)  # Grappler's "fetch" nodes
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers[:] = list(optimizers)
    rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rewrite.min_graph_nodes = -1
    out = tf_optimizer.OptimizeGraph(config, meta)
    for node in out.node:
        node.device = ""
    return out
