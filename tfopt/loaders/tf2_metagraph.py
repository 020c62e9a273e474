"""TF2 SavedModels whose object graph TensorFlow 2 refuses, loaded through their MetaGraph's signatures.

``tf.saved_model.load`` rebuilds every Python object of the object graph, not only the signatures:
each ``tf.function``'s argument and output structures are decoded, and a ``TypeSpec`` registered in
the writer's Python (a TensorFlow Probability distribution, a TF-GNN ``GraphTensor``, a custom
``CompositeTensor``) must be registered in the reader's too, else the whole load stops ("The type
'...' has not been registered"), even though the serving signature takes and returns plain tensors.
A TF2 SavedModel also holds a complete MetaGraph: its graph, its function library, a saver that
restores ``variables/`` and one ``SignatureDef`` per signature. TensorFlow's own loader for TF1
SavedModels (``load_v1_in_v2``) reads exactly that, and no object graph, so the signatures come
back as functions over plain tensors with their own inputs and outputs.

What stops the MetaGraph too stops here with a typed error: a missing file, a missing asset (the
vocabulary of a lookup table: :func:`missing_assets`), an op this TensorFlow does not have
(:func:`unregistered_op`, :mod:`tfopt.loaders.registered_ops`).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from tfopt.errors import ModelFormatError
from tfopt.graph import Model

FORMAT = "savedmodel-metagraph"
INIT_SIGNATURE = "__saved_model_init_op"  # the MetaGraph's initialiser, a signature with no outputs
log = logging.getLogger(__name__)


def missing_assets(path: str, proto: Any, refused: str) -> list[str]:
    """The asset files (``assets/...``) the SavedModel's MetaGraphs name, ``path`` lacks and the
    refusal ``refused`` (TensorFlow's whole message) names."""
    names = {a.filename for mg in proto.meta_graphs for a in mg.asset_file_def if a.filename}
    return sorted(os.path.join(path, "assets", n) for n in names
                  if not os.path.exists(os.path.join(path, "assets", n)) and n in refused)


def unregistered_op(refused: str) -> str | None:
    """The op TensorFlow named as not registered in this binary, if that is what it refused."""
    match = re.search(r"Op type not registered '([^']+)'", refused)
    return match.group(1) if match else None


def refusal_error(path: str, proto: Any, refused: str) -> ModelFormatError | None:
    """The typed error for a refusal (TensorFlow's whole message) that loading the MetaGraph cannot
    get past, else None."""
    missing = missing_assets(path, proto, refused) if proto is not None else []
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return ModelFormatError(
            f"{shown}: asset file missing from the SavedModel (a lookup table's vocabulary, read when the "
            "model loads). Copy the whole SavedModel directory, assets/ included")
    return None


def load_signatures(path: str, tags: list[str] | None, refused: str, proto: Any) -> Any:
    """(``refused``: what TensorFlow 2 said, whole.) The SavedModel's MetaGraph loaded as TensorFlow loads a TF1 SavedModel: an object whose
    ``signatures`` are functions over plain tensors, variables restored from ``variables/``. When
    TensorFlow refused an op it does not have, the library is first cut to the functions the graph
    reaches (:mod:`tfopt.loaders._metagraph_prune`): a function no signature calls may use it.

    Raises:
        ModelFormatError: the MetaGraph does not load either (both refusals named), or a function a
            signature calls uses the op TensorFlow lacks.
    """
    import tempfile

    from tensorflow.python.saved_model import load_v1_in_v2

    from tfopt.loaders._metagraph_prune import pruned_copy

    op, said = unregistered_op(refused), refused.strip().splitlines()[0][:300] if refused.strip() else "refused"
    try:
        with tempfile.TemporaryDirectory(prefix="tfopt-metagraph-") as tmp:
            source, dropped = pruned_copy(path, proto, tmp) if op is not None else (path, 0)
            obj = load_v1_in_v2.load(source, tags or ["serve"])  # variables restored and assets read here
    except Exception as exc:
        from tfopt.loaders.tf1_checkpoint import check_checkpoint_files

        check_checkpoint_files(os.path.join(path, "variables", "variables"))  # a missing .index or .data named
        if op is not None:
            from tfopt.loaders.registered_ops import unregistered_op_error

            raise unregistered_op_error(path, op, [mg.graph_def for mg in proto.meta_graphs]) from exc
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(
            f"{path}: TensorFlow 2 refused this SavedModel's object graph ({said}), and its MetaGraph does not "
            f"load either ({first}). Load it where the writer's Python packages are installed and export the "
            "signature again with tf.saved_model.save, or freeze it to a .pb") from exc
    if dropped:
        log.warning("%s: %d function(s) no signature calls were left out (op '%s' is not in this TensorFlow)",
                    path, dropped, op)
    log.warning("%s: TensorFlow 2 cannot rebuild this SavedModel's object graph (%s); its signatures were loaded "
                "from the MetaGraph instead (only the signatures: the object graph's other functions are not "
                "needed to convert)", path, said)
    return obj


def signatures(obj: Any) -> dict[str, Any]:
    """The loaded MetaGraph's signatures, without its initialiser."""
    return {k: v for k, v in obj.signatures.items() if k != INIT_SIGNATURE}


def with_variables(model: Model, obj: Any, threshold: int | None) -> Model:
    """``model`` (a signature of the loaded MetaGraph) with the values of the resource variables left in its
    graph. A MetaGraph imported without its object graph has no Python variables for TensorFlow's converter
    to fold, so its ``VarHandleOp`` nodes stay, and tfopt's freezing makes them constants
    (:mod:`tfopt.freezing.freeze_variables`). The variables :func:`~tfopt.external.tensors.choose_external`
    picks (at least ``threshold`` bytes, and whatever a GraphDef under 2 GB cannot hold) are kept outside
    the graph as memory-mapped files (``model.external``: :mod:`tfopt.external`), each read and written
    alone; the others are read together."""
    from tfopt._tf import tf
    from tfopt.external.tensors import storable_bytes, store_large

    handles = {n.name: n for n in model.graph_def.node if n.op == "VarHandleOp"}
    shapes = {name: node.attr["shape"].shape for name, node in handles.items()}
    sizes = {name: storable_bytes(None if shapes[name].unknown_rank else [d.size for d in shapes[name].dim],
                                  tf().as_dtype(node.attr["dtype"].type)) for name, node in handles.items()}
    external = store_large(sizes, lambda name: _read(obj, [name])[name], threshold, into=model.external)
    outside = [name for name in handles if external is not None and name in external]
    values = _read(obj, [name for name in handles if name not in outside])  # the others, read together
    values.update({name: external[name].read() for name in outside if external is not None})  # its file: one copy
    return model.replace(variable_values=values.__getitem__, external=external, provenance={
        **model.provenance, "variables": len(values), "variable_bytes": int(sum(v.nbytes for v in values.values()))})


def _read(obj: Any, names: list[str]) -> dict[str, Any]:
    """The values of the variables ``names``, read from the loaded MetaGraph's graph, where the saver restored them."""
    from tfopt._tf import tf

    if not names:
        return {}
    t = tf()
    graph = obj.graph
    with graph.as_default():
        reads = [t.raw_ops.ReadVariableOp(resource=graph.get_operation_by_name(name).outputs[0],
                                          dtype=graph.get_operation_by_name(name).get_attr("dtype"))
                 for name in names]
    values = obj.prune([], reads)()
    return {name: value.numpy() for name, value in zip(names, values)}
