"""TF1 checkpoints: a ``.meta`` MetaGraphDef plus ``.index``/``.data-*`` variable values.

Accepts the ``.meta`` file, the checkpoint prefix, or the directory. The ``checkpoint`` state
file usually holds absolute paths from the training machine; when those do not exist here the
files next to the ``.meta`` are used (including the empty prefix: ``.meta``, ``.index``,
``.data-00000-of-00001``).

Old meta graphs may not import into today's TensorFlow (stale ``_output_shapes`` on gradient
nodes, ops that no longer exist in training subgraphs), so the graph is first cut down to what
the outputs need and the stale shape attributes are dropped; nothing else is imported.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.errors import GraphError, ModelFormatError, ModelNotFoundError
from tfopt.external.tensors import storable_bytes, store_large
from tfopt.graph import VARIABLE_OPS, Model, ancestors, node_map, subgraph, tensor_node
from tfopt.graphdef.order import check_acyclic
from tfopt.loaders._signature import adopt_recorded_shapes, input_specs, output_specs, resolve_outputs
from tfopt.loaders.pipeline_inputs import is_pipeline_source
from tfopt.loaders.training_nodes import is_training_graph, is_training_node

FORMAT = "tf1-checkpoint"
log = logging.getLogger(__name__)


def detect(path: str) -> bool:
    if os.path.isdir(path):
        return any(f.endswith(".meta") for f in os.listdir(path))
    return path.endswith(".meta") or os.path.exists(path + ".meta")


def locate(path: str) -> tuple[str, str]:
    """Return ``(meta_path, checkpoint_prefix)`` for a ``.meta`` file, prefix or directory."""
    if os.path.isdir(path):
        directory = path
        prefix = _prefix_from_state(directory)
        metas = sorted(f for f in os.listdir(directory) if f.endswith(".meta"))
        if prefix is not None and os.path.exists(prefix + ".meta"):
            return prefix + ".meta", prefix
        if not metas:
            raise ModelNotFoundError(f"{path}: directory holds no .meta file")
        meta = os.path.join(directory, _latest(metas))
        return meta, prefix if prefix is not None else meta[: -len(".meta")]
    if path.endswith(".meta"):
        meta = path
        candidate = meta[: -len(".meta")]
        if os.path.exists(candidate + ".index"):
            return meta, candidate
        state = _prefix_from_state(os.path.dirname(meta) or ".")
        return meta, state if state is not None else candidate
    return path + ".meta", path


def _prefix_from_state(directory: str) -> str | None:
    """The ``checkpoint`` file's latest prefix. The files next to it win: a stale absolute path
    (the training machine's) is re-rooted here. A path outside ``directory`` is followed only when
    nothing of that checkpoint is here, and then said (logged with the path read); a copy here
    that lacks its ``.index`` or ``.data`` while the state file points at a complete checkpoint
    elsewhere is an error, never a silent read of the other directory's variables."""
    state = os.path.join(directory, "checkpoint")
    if not os.path.isfile(state):
        return None
    with open(state, encoding="utf-8", errors="replace") as f:
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', f.read(), re.MULTILINE)
    if not match:
        return None
    recorded = match.group(1)
    here = recorded if os.path.isabs(recorded) else os.path.join(directory, recorded)
    local = os.path.join(directory, os.path.basename(recorded))
    if missing_checkpoint_file(local) is None:
        return local
    outside = os.path.realpath(os.path.dirname(here)) != os.path.realpath(directory)
    if outside and os.path.exists(here + ".index"):
        if glob.glob(glob.escape(local) + ".*"):  # an incomplete copy of that checkpoint is here
            raise ModelFormatError(
                f"{missing_checkpoint_file(local)}: missing next to the .meta, and {state} points to {here}, "
                f"outside {directory}; copy the missing file here, or pass {here} to read that checkpoint")
        log.warning("%s: reading the checkpoint %s, where %s points (outside the directory given)",
                    directory, here, state)
        return here
    if os.path.exists(here + ".index"):
        return here
    return local if os.path.exists(local + ".index") else None


def _latest(metas: list[str]) -> str:
    def step(name: str) -> int:
        m = re.search(r"-(\d+)\.meta$", name)
        return int(m.group(1)) if m else -1
    return max(metas, key=step)


def missing_checkpoint_file(prefix: str) -> str | None:
    """The first file of checkpoint ``prefix`` that is missing (``.index``, a ``.data`` shard), or ``None``."""
    index = prefix + ".index"
    if not os.path.exists(index):
        return index
    directory = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix)
    shards = [f for f in os.listdir(directory) if f.startswith(base + ".data-")]
    if not shards:
        return f"{prefix}.data-00000-of-00001"
    total = int(shards[0].rsplit("-of-", 1)[1]) if "-of-" in shards[0] else len(shards)
    return f"{prefix}.data-*-of-{total:05d} ({total - len(shards)} of {total} shards)" if len(shards) < total else None


def check_checkpoint_files(prefix: str) -> None:
    missing = missing_checkpoint_file(prefix)
    if missing is None:
        return
    if missing.endswith(".index"):
        raise ModelFormatError(f"{missing}: checkpoint index file is missing; copy it next to the .meta file")
    if " shards)" in missing:
        raise ModelFormatError(f"{missing}: checkpoint data shards are missing; copy every .data-* file next to the .index")
    raise ModelFormatError(f"{missing}: checkpoint data file is missing; copy every .data-* file next to the .index file")


def read_meta_graph(meta: str) -> Any:
    from google.protobuf import message
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        with open(meta, "rb") as f:
            meta_graph.ParseFromString(f.read())
    except message.DecodeError as exc:
        raise ModelFormatError(f"{meta}: not a valid MetaGraphDef ({exc}); the file may be truncated") from exc
    if not meta_graph.graph_def.node:
        raise ModelFormatError(f"{meta}: the meta graph holds no nodes; the file may be truncated")
    return meta_graph


def checkpoint_keys(graph_def: Any) -> dict[str, str]:
    """Variable node -> checkpoint key, read from the Saver's own SaveV2 node when there is one."""
    from tfopt._tf import const_value

    nodes = node_map(graph_def)
    keys: dict[str, str] = {}
    for node in graph_def.node:
        if node.op != "SaveV2" or tensor_node(node.input[1]) not in nodes:
            continue
        names_node = nodes[tensor_node(node.input[1])]
        if names_node.op != "Const":
            continue
        names = [n.decode() for n in const_value(names_node).ravel()]
        for key, ref in zip(names, node.input[3:]):
            source = tensor_node(ref)
            while source in nodes and nodes[source].op in ("Identity", "ReadVariableOp") and nodes[source].input:
                source = tensor_node(nodes[source].input[0])
            keys.setdefault(source, key)
    return keys


def load(path: str, options: Any) -> Model:
    meta, prefix = locate(path)
    if not os.path.exists(meta):
        raise ModelNotFoundError(f"{meta}: the .meta graph file is missing")
    check_checkpoint_files(prefix)
    return load_meta_graph(read_meta_graph(meta), prefix, path, options, source=meta,
                           provenance={"format": FORMAT, "path": path, "meta": meta})


def load_meta_graph(meta_graph: Any, prefix: str, path: str, options: Any, *, source: str,
                    provenance: Mapping[str, Any]) -> Model:
    """A MetaGraph (a ``.meta`` file's, or a TF1 SavedModel's) cut at its outputs, its variables read
    from checkpoint ``prefix``; ``source`` names the graph's file in messages."""
    meta = source
    full = meta_graph.graph_def
    adopt_recorded_shapes(full)  # before `_output_shapes` are dropped below
    outputs, chosen_from = resolve_outputs(full, options.outputs, meta)
    out_specs = output_specs(full, outputs)

    # Control edges from training-only nodes (update ops, asserts, savers) are not followed.
    full_nodes = node_map(full)
    keep = ancestors(full, outputs, skip_edge=lambda _node, ref: ref.startswith("^") and
                     tensor_node(ref) in full_nodes and is_training_node(full_nodes[tensor_node(ref)]))
    graph_def = subgraph(full, keep)
    check_acyclic(graph_def, meta)
    dropout_off: list[str] = []
    if is_training_graph(full):  # a TRAIN-mode graph: its constant-rate dropout is off at inference
        from tfopt.freezing.remove_dropout import training_mode_off

        dropout_off = training_mode_off(graph_def)
        if dropout_off:
            log.warning("%s: a training-mode graph (it holds its optimizer): dropout at a constant rate turned "
                        "off for inference in %d place(s) (%s)", meta, len(dropout_off), ", ".join(dropout_off[:3]))
    for node in graph_def.node:
        if not is_pipeline_source(node.op):  # an iterator's element shapes: what its cut reads (loaders.load)
            node.attr.pop("_output_shapes", None)
        node.ClearField("device")
    keys = checkpoint_keys(full)
    variables = [n for n in graph_def.node if n.op in VARIABLE_OPS]
    reader: Any = open_reader(prefix) if variables else None  # a SavedModel without variables has no checkpoint

    def value_of(var_name: str) -> np.ndarray:
        key = keys.get(var_name, var_name)
        if not reader.has_tensor(key):
            from tfopt.errors import did_you_mean
            raise GraphError(f"{prefix}: variable '{var_name}' has no value in the checkpoint "
                             f"(looked for key '{key}').{did_you_mean(key, reader.get_variable_to_shape_map())}")
        try:
            return reader.get_tensor(key)
        except Exception as exc:  # IndexError "Read less bytes than requested", DataLossError, ...
            data = ", ".join(sorted(glob.glob(glob.escape(prefix) + ".data-*"))) or prefix + ".data-*"
            raise ModelFormatError(f"{data}: cannot read variable '{var_name}' ({str(exc).splitlines()[0][:200]}); "
                                   "the checkpoint data file is truncated or corrupt: copy it again") from exc

    external = store_large(_variable_bytes(reader, keys, variables), value_of, options.external_threshold)
    values = {v.name: external[v.name].read() if external is not None and v.name in external else value_of(v.name)
              for v in variables}  # a large variable is its memory-mapped file, never a second copy
    given = path if os.path.isdir(path) else os.path.dirname(path) or "."
    elsewhere = os.path.realpath(os.path.dirname(prefix) or ".") != os.path.realpath(given)
    reference = _SessionReference(graph_def, values, [s.tensor for s in out_specs], [s.name for s in out_specs])
    return Model(
        graph_def=graph_def,
        inputs=input_specs(graph_def, outputs, exclude=set()),
        outputs=out_specs,
        provenance={**provenance, "checkpoint": prefix,
                    "source_nodes": len(full.node), "variables": len(variables),
                    "variable_bytes": int(sum(v.nbytes for v in values.values())),
                    **({"variables_from": prefix} if elsewhere else {}), **chosen_from,
                    **({"training_dropout_off": dropout_off} if dropout_off else {})},
        reference=reference,
        variable_values=values.__getitem__,
        external=external,
    )


def _variable_bytes(reader: Any, keys: Mapping[str, str], variables: list[Any]) -> dict[str, int]:
    """Variable node -> bytes in the checkpoint, for those that could stay outside the graph (numeric)."""
    if not variables:
        return {}
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    found = {v.name: keys.get(v.name, v.name) for v in variables}
    return {name: storable_bytes(shapes[key], dtypes[key]) for name, key in found.items() if key in shapes}


def open_reader(prefix: str) -> Any:
    """A CheckpointReader on exactly ``prefix`` (``tf.train.load_checkpoint`` would treat an empty
    prefix ``dir/`` as a directory and follow its possibly stale ``checkpoint`` state file)."""
    from tfopt._tf import tf

    try:
        return tf().compat.v1.train.NewCheckpointReader(prefix)
    except Exception as exc:  # DataLossError, NotFoundError, ...
        raise ModelFormatError(f"{prefix}: cannot read checkpoint ({str(exc).splitlines()[0][:200]}); "
                               "the .index or .data file may be truncated") from exc


class _SessionReference:
    """Runs the original (cut, unfrozen) graph in a TF1 session with checkpoint values assigned."""

    def __init__(self, graph_def: Any, values: Mapping[str, np.ndarray], fetches: list[str], names: list[str]):
        self._graph_def, self._values, self._fetches, self._names = graph_def, values, fetches, names
        self._session: Any = None

    def fed_at(self, graph_def: Any, tensors: Mapping[str, str], keep: Sequence[str]) -> _SessionReference:
        """The same checkpoint on ``graph_def``, the graph cut at an iterator's outputs (the new
        placeholders are the feeds: :func:`tfopt.loaders.pipeline_inputs.cut_model`); what builds the
        iterator is not imported (its ops may not exist in this TensorFlow)."""
        names = {n.name for n in graph_def.node}
        return _SessionReference(graph_def, {k: v for k, v in self._values.items() if k in names},
                                 self._fetches, self._names)

    def _open(self) -> Any:
        from tfopt._tf import tf

        t = tf()
        graph = t.Graph()
        with graph.as_default():
            t.graph_util.import_graph_def(self._graph_def, name="")
            assigns, feed = [], {}
            for name, value in self._values.items():
                op = graph.get_operation_by_name(name)
                # fed, not a Const in the graph: a value over 2 GB has no tensor proto
                given = value
                if value.dtype.kind != "O":  # strings stay constants (numpy has no TF dtype for them)
                    given = t.compat.v1.placeholder(value.dtype, value.shape)
                    feed[given] = value
                if op.type == "VarHandleOp":
                    assigns.append(t.raw_ops.AssignVariableOp(resource=op.outputs[0], value=given))
                else:
                    assigns.append(t.raw_ops.Assign(ref=op.outputs[0], value=given, validate_shape=False))
        session = t.compat.v1.Session(graph=graph)
        session.run(assigns, feed_dict=feed)
        return session

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = self._open()
        feed = {f"{k}:0" if ":" not in k else k: v for k, v in feeds.items()}
        from tfopt._tf import run_options

        return dict(zip(self._names, self._session.run(self._fetches, feed_dict=feed, options=run_options())))
