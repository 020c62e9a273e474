"""Run a frozen :class:`~tfopt.graph.Model` with the TensorFlow runtime (one session, reused)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import graph_session, run_options, tf
from tfopt.graph import Model, TensorSpec
from tfopt.passes._layer_norm_epsilon import layer_norms_fused


class GraphRunner:
    """``runner(feeds) -> {output name: array}``; feeds keyed by input name (or placeholder name).

    Pairing: a frozen graph's specs *are* its tensor names (:attr:`TensorSpec.tensor`), so there is
    nothing to guess; a spec naming a tensor the graph lacks fails on import.
    ``rewrites=False``: grappler off, the graph runs as written (:func:`tfopt._tf.graph_session`).
    """

    def __init__(self, model: Model, *, extra_feeds: Mapping[str, Any] | None = None, rewrites: bool = True):
        t = tf()
        self.inputs, self.outputs = list(model.inputs), list(model.outputs)
        self._graph = t.Graph()
        keep = sorted({s.tensor.split(":")[0] for s in [*model.inputs, *model.outputs]}
                      | {n.name for n in model.graph_def.node if n.op.startswith("Placeholder")})  # fed by name
        with self._graph.as_default():
            # A session with oneDNN would fuse layer norms with epsilon 0.001: fused here, rightly.
            t.graph_util.import_graph_def(layer_norms_fused(model.graph_def, keep), name="")
        self._session = graph_session(self._graph, model.graph_def, rewrites=rewrites)
        self._inputs = {s.name: s.tensor for s in model.inputs}
        self._outputs = [(s.name, s.tensor) for s in model.outputs]
        self._extra = {f"{k}:0": v for k, v in (extra_feeds or {}).items()}

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = self.fetch([t for _, t in self._outputs], feeds)
        return {name: v for (name, _), v in zip(self._outputs, values)}

    def fetch(self, tensors: Sequence[str], feeds: Mapping[str, Any]) -> list[np.ndarray]:
        """``tensors`` (names of the model's outputs' tensors) computed from ``feeds``, which may
        also feed any of them: TensorFlow runs only the nodes between the feeds and the fetches."""
        feed = dict(self._extra)
        for key, value in feeds.items():
            feed[self._inputs.get(key, key if ":" in key else f"{key}:0")] = value
        return [np.asarray(v) for v in self._session.run(list(tensors), feed_dict=feed, options=run_options())]

    def close(self) -> None:
        self._session.close()


def wrapped_graph(graph_def: Any) -> Any:
    """``graph_def`` imported into a ``wrap_function``, its library functions named after their content
    (:mod:`tfopt.graphdef.function_names`): TensorFlow registers them process-wide, and another graph
    converted in this process may hold a different function under the same name."""
    from tfopt.graphdef.function_names import content_named

    t = tf()
    named = content_named(graph_def)
    return t.compat.v1.wrap_function(lambda: t.compat.v1.import_graph_def(named, name=""), [])


def concrete_function(model: Model) -> Any:
    """The frozen graph as a TF2 ConcreteFunction taking the inputs positionally, in order."""
    wrapped = wrapped_graph(model.graph_def)
    return wrapped.prune([wrapped.graph.get_tensor_by_name(s.tensor) for s in model.inputs],
                         [wrapped.graph.get_tensor_by_name(s.tensor) for s in model.outputs])


def open_artifact(path: str, model: Model, threads: int | None = None) -> GraphRunner:
    """The ``pb``/``savedmodel`` targets' runner (:mod:`tfopt.targets`). A GraphDef has no
    signature: its outputs are named, or a multi-output graph would be ambiguous."""
    from tfopt.loaders import load

    frozen = load(path, outputs=[s.tensor for s in model.outputs]) if os.path.isfile(path) else load(path)
    return GraphRunner(frozen.replace(inputs=_signature_inputs(path, model, frozen), outputs=model.outputs))


def _signature_inputs(path: str, model: Model, frozen: Model) -> list[TensorSpec]:
    """``model``'s inputs at the artifact's tensors: a SavedModel's signature argument is the input's
    name as TensorFlow allows it (:func:`tfopt.external.serving.serving_arg_name`: ``IteratorGetNext/output_0``
    is ``IteratorGetNext_output_0``), a placeholder of that name in the frozen signature."""
    from tfopt.external.serving import serving_arg_name
    from tfopt.runtimes.base import pair_by_name

    nodes = {n.name for n in frozen.graph_def.node}
    moved = [s for s in model.inputs if s.node not in nodes]
    paired = pair_by_name("input", path, moved, frozen.inputs, lambda s: {s.name},
                          lambda s: {s.name, serving_arg_name(s.name)}) if moved else {}
    return [dataclasses.replace(s, tensor=paired[s.name].tensor) if s.name in paired else s for s in model.inputs]


def read_weights(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every constant tensor of the artifact: ``(name, values)`` (see :mod:`tfopt.report.weights`)."""
    from tfopt._tf import const_value
    from tfopt.loaders import load

    for node in load(path).graph_def.node:
        if node.op == "Const":
            yield node.name, np.asarray(const_value(node))
