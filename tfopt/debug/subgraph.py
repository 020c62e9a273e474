"""Cut a frozen graph down to a kept set of ops, fed with the values TensorFlow really computed.

Given the ops to keep (any subset of the graph's ops; ``Const`` and placeholder nodes are never
"kept", they come along or are replaced), the cut is a valid :class:`tfopt.graph.Model`:

- every tensor ``t`` that a kept op reads from outside the set becomes a ``Placeholder`` of
  ``t``'s dtype and its concrete shape, fed with ``t``'s value in the *full* graph on the given
  inputs (so a mismatch found in the cut is the one the full model has, not one made-up inputs
  invent); a ``Const`` a kept op reads is copied in instead;
- its outputs are the kept ops' tensors that an op outside the set reads, plus the original
  outputs the set computes;
- its expected outputs are those tensors' values in the full graph.

A cut tensor's placeholder keeps the producer's node name (port 0) or ``<node>_<port>``, so kept
ops need no rewiring and names in converter messages still point into the original graph.
Control edges from outside the set are dropped (a frozen graph's only control edges order
side-effect-free ops), and so are colocation attributes (``_class``), which would name nodes the
cut no longer has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import GraphError
from tfopt.graph import (
    PLACEHOLDER_OPS,
    Model,
    TensorSpec,
    canonical_tensor,
    is_control,
    tensor_node,
    tensor_port,
    validate,
)

# Nodes the search never keeps or removes: constants come along with their readers, placeholders
# and NoOps (control-only) are replaced or dropped.
LEAF_OPS = frozenset({"Const", "NoOp"}) | PLACEHOLDER_OPS
_FEEDABLE = "biufc"  # numpy kinds a placeholder can be fed with (bool, ints, floats, complex)


@dataclass(frozen=True)
class Cut:
    """A subgraph as a Model, with the real values it is fed and the values it must give.

    Attributes:
        model: the subgraph (inputs named by their placeholders, outputs by their tensors' nodes).
        feeds: input name -> the value TensorFlow computed for that tensor in the full graph.
        expected: output name -> the value TensorFlow computed for it in the full graph.
        kept: the ops kept, in topological order.
    """

    model: Model
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    kept: tuple[str, ...]


class TensorValues:
    """Every tensor's value in the full graph on one set of inputs, computed on demand and cached."""

    def __init__(self, model: Model, feeds: Mapping[str, np.ndarray]):
        from tfopt._tf import graph_session, tf

        t = tf()
        self._graph = t.Graph()
        with self._graph.as_default():
            t.graph_util.import_graph_def(model.graph_def, name="")
        self._session = graph_session(self._graph, model.graph_def)
        self._model, self._named = model, {s.name: np.asarray(feeds[s.name]) for s in model.inputs}
        self._feeds = {s.tensor: np.asarray(feeds[s.name]) for s in model.inputs}
        self._cache: dict[str, np.ndarray] = {canonical_tensor(k): v for k, v in self._feeds.items()}

    def get(self, tensors: Iterable[str]) -> dict[str, np.ndarray]:
        """``{tensor: value}`` for ``"node:port"`` names; the missing ones in one session run.

        Raises:
            VerificationTimeoutError: that run did not end within the bound in force (``--verify-timeout``).
        """
        wanted = [canonical_tensor(t) for t in tensors]
        missing = sorted({t for t in wanted if t not in self._cache})
        for tensor in missing:  # a TensorList/handle cannot leave the session, let alone be fed back
            dtype = self._graph.get_tensor_by_name(tensor).dtype
            if dtype.name in ("variant", "resource"):
                raise GraphError(f"cannot cut at tensor '{tensor}': its {dtype.name} value cannot be fed")
        if missing:  # held to the bound in force (--verify-timeout), as every run of the model
            from tfopt._tf import run_options
            from tfopt.verification.deadline import BoundedReference

            run = BoundedReference(lambda _: dict(zip(missing, self._session.run(
                missing, feed_dict=self._feeds, options=run_options()))), self._model.graph_def, self._model.inputs)
            self._cache.update({t: np.asarray(v) for t, v in run(self._named).items()})
        return {t: self._cache[t] for t in wanted}

    def close(self) -> None:
        self._session.close()


class Cutter:
    """Cuts one frozen model; :attr:`ops` is what a search may keep, in topological order."""

    def __init__(self, model: Model, feeds: Mapping[str, np.ndarray]):
        from tfopt.graphdef.order import canonical_order

        graph = type(model.graph_def)()
        graph.CopyFrom(model.graph_def)
        canonical_order(graph)
        self.model = model
        self._graph = graph
        self._nodes = {n.name: n for n in graph.node}
        self.ops: list[str] = [n.name for n in graph.node if n.op not in LEAF_OPS]
        self.names: frozenset[str] = frozenset(self._nodes)
        self._readers: dict[str, set[str]] = {}  # canonical tensor -> ops reading it (data edges)
        for node in graph.node:
            for ref in node.input:
                if not is_control(ref):
                    self._readers.setdefault(canonical_tensor(ref), set()).add(node.name)
        self._model_outputs = [canonical_tensor(s.tensor) for s in model.outputs]
        self._produced: dict[str, list[str]] = {}  # op -> its tensors anything reads, by port
        for tensor in sorted({*self._readers, *self._model_outputs}, key=lambda t: (tensor_node(t), tensor_port(t))):
            self._produced.setdefault(tensor_node(tensor), []).append(tensor)
        self.values = TensorValues(model, feeds)

    def cut(self, kept: Iterable[str]) -> Cut:
        """The subgraph of ``kept`` (op names) as a :class:`Cut`.

        Raises:
            GraphError: a kept name is not an op of the graph, the set computes nothing read
                outside it, or a tensor entering it cannot be fed (a resource or string).
        """
        keep = set(kept)
        unknown = sorted(keep - set(self.ops))
        if unknown:
            raise GraphError(f"cannot cut at {', '.join(unknown[:5])}: not ops of the graph")
        order = [name for name in self.ops if name in keep]
        cut_inputs: dict[str, str] = {}  # canonical tensor -> placeholder name
        consts: list[str] = []
        body = []
        taken = set(keep)
        for name in order:
            node = _copy_node(self._nodes[name])
            refs = []
            for ref in self._nodes[name].input:
                producer = tensor_node(ref)
                if is_control(ref):
                    if producer in keep:
                        refs.append(ref)
                elif producer in keep:
                    refs.append(ref)
                elif self._nodes[producer].op == "Const":
                    if producer not in taken:
                        consts.append(producer)
                        taken.add(producer)
                    refs.append(ref)
                else:
                    tensor = canonical_tensor(ref)
                    if tensor not in cut_inputs:
                        cut_inputs[tensor] = _free_name(tensor, taken)
                        taken.add(cut_inputs[tensor])
                    refs.append(cut_inputs[tensor])
            del node.input[:]
            node.input.extend(refs)
            body.append(node)
        outputs = self._outputs_of(order, keep)
        if not outputs:
            raise GraphError(f"cannot cut at {', '.join(order[:5])}: nothing outside the set reads what it computes")
        values = self.values.get([*cut_inputs, *outputs])
        graph = type(self._graph)()
        graph.versions.CopyFrom(self._graph.versions)
        graph.library.CopyFrom(self._graph.library)
        inputs: list[TensorSpec] = []
        feeds: dict[str, np.ndarray] = {}
        for tensor, name in cut_inputs.items():
            value = values[tensor]
            if value.dtype.kind not in _FEEDABLE:
                raise GraphError(f"cannot cut at tensor '{tensor}': its {value.dtype} value cannot be fed")
            graph.node.append(_placeholder(name, value))
            inputs.append(TensorSpec(name, f"{name}:0", str(value.dtype), tuple(value.shape)))
            feeds[name] = value
        for name in consts:
            graph.node.append(_copy_node(self._nodes[name], drop_control=True))
        graph.node.extend(body)
        validate(graph)
        specs = []
        expected: dict[str, np.ndarray] = {}
        for tensor in outputs:
            name = tensor_node(tensor) if tensor_port(tensor) == 0 else f"{tensor_node(tensor)}_{tensor_port(tensor)}"
            value = values[tensor]
            specs.append(TensorSpec(name, tensor, str(value.dtype), tuple(value.shape)))
            expected[name] = value
        provenance = {"format": "graphdef", "path": None, "cut_from": self.model.provenance.get("path"),
                      "kept_ops": len(order)}
        model = Model(graph_def=graph, inputs=inputs, outputs=specs, provenance=provenance)
        return Cut(model, feeds, expected, tuple(order))

    def _outputs_of(self, order: Sequence[str], keep: set[str]) -> list[str]:
        """Kept ops' tensors read outside the set, or original outputs; in op then port order."""
        model_outputs = set(self._model_outputs)
        found = []
        for name in order:
            for tensor in self._produced.get(name, ()):
                if tensor in model_outputs or self._readers.get(tensor, set()) - keep:
                    found.append(tensor)
        return found

    def close(self) -> None:
        self.values.close()


def _copy_node(node: Any, *, drop_control: bool = False) -> Any:
    new = type(node)()
    new.CopyFrom(node)
    if "_class" in new.attr:
        del new.attr["_class"]
    if drop_control:
        refs = [r for r in new.input if not is_control(r)]
        del new.input[:]
        new.input.extend(refs)
    return new


def _free_name(tensor: str, taken: set[str]) -> str:
    """The producer's name for port 0, ``<node>_<port>`` otherwise; suffixed until unused."""
    node, port = tensor_node(tensor), tensor_port(tensor)
    base = node if port == 0 else f"{node}_{port}"
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _placeholder(name: str, value: np.ndarray) -> Any:
    from tensorflow.core.framework import node_def_pb2

    from tfopt._tf import tf

    node = node_def_pb2.NodeDef(name=name, op="Placeholder")
    node.attr["dtype"].type = tf().as_dtype(value.dtype).as_datatype_enum
    node.attr["shape"].shape.CopyFrom(tf().TensorShape(value.shape).as_proto())
    return node
