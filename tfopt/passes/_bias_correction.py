"""Sequential empirical bias correction: each layer's mean output shift, measured with every
earlier layer already corrected, moved into its bias (shared by the int8 engine's
:mod:`tfopt.quantizing.engine.bias_correction` and the cluster snap, :mod:`tfopt.passes.cluster_weights`).

A layer whose weights were changed (rounded to a grid, snapped to N shared values) outputs ``ỹ``
where the float model outputs ``y``; per output channel k::

    δ_k = E[y_k] − E[ỹ_k],        b'_k = b_k + δ_k

``E[y]`` is the float model's (given); ``ỹ`` is computed in the changed model on its own input to
the layer, with the layers above already corrected, so δ also absorbs the shift that reaches the
layer from above. Expectations are over the samples and every spatial position. ``ỹ`` depends only
on the layers upstream, so one pass of the changed model computes every δ: each corrected output
``ỹ + δ`` is fed to the layers below (:func:`propagated_corrections`), or, with one batch, computed
inside the graph (:func:`in_graph_corrections`). ``report.passes``-style costs: :class:`PassCount`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.graph import (
    Model,
    TensorSpec,
    canonical_tensor,
    is_control,
    tensor_node,
)
from tfopt.passes._linear import Linear


@dataclass
class PassCount:
    """What the correction ran in TensorFlow: the measure of its cost that does not depend on the machine.

    ``node_runs`` counts the quantized graph's nodes one batch evaluates, summed over its runs: a
    run fed the corrected outputs of the layers above evaluates only the nodes between them and its
    layer, so the whole correction is ``node_runs / graph_nodes`` ≈ one pass of the quantized model
    (a node computed once per batch), not one pass per layer.
    """

    sessions: int = 0  # TF sessions opened (graph imports)
    runs: int = 0  # session runs, every batch counted
    node_runs: int = 0  # quantized-graph nodes one batch evaluates, summed over the layers' runs
    graph_nodes: int = 0  # nodes of the quantized graph

    @property
    def quantized_passes(self) -> float:
        """Quantized-model passes per batch the correction cost (``node_runs / graph_nodes``)."""
        return self.node_runs / max(self.graph_nodes, 1)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "quantized_passes": round(self.quantized_passes, 3)}



def propagated_corrections(quantized: Model, layers: Sequence[Linear], expected: Mapping[str, np.ndarray],
                           batches: Sequence[Mapping[str, Any]], count: PassCount) -> dict[str, np.ndarray]:
    """Each layer's ``E[y] − E[ỹ]``, ``ỹ`` computed in ``quantized`` with every earlier layer corrected.

    Sequential correction without re-running the model per layer: layers are visited producers
    first, and the corrected output of a visited layer, ``ỹ_j + δ_j`` (its bias output when it has
    a bias, else the layer's own), is kept per batch and *fed* to the runs below it; TensorFlow
    prunes each run to the nodes between those feeds and the layer, so every node is evaluated
    about once per batch. ``ỹ_i`` depends only on the layers upstream of ``i``, all visited
    before it, so this equals correcting and re-running layer by layer (up to float32 rounding of
    ``(ỹ + b) + δ`` against ``ỹ + (b + δ)``). A kept output is dropped after its last reader.

    Args:
        quantized: the graph with quantized weights and uncorrected biases; never modified.
        layers: the layers to correct, producers first (their ``op`` names are nodes of ``quantized``).
        expected: layer name -> ``E[y]`` per output channel in the float model.
        batches: the calibration feeds.
        count: updated with the session, runs and nodes evaluated.
    """
    from tfopt.graph import ancestors
    from tfopt.runtimes.tensorflow import GraphRunner

    out_of = {layer.op.name: (layer.bias_add.name if layer.bias_add is not None else layer.op.name)
              for layer in layers}
    plan: list[tuple[str, list[str], list[str]]] = []  # (layer, kept outputs fed, model inputs fed)
    visited: set[str] = set()
    for layer in layers:
        fed: set[str] = set()

        def is_fed(_consumer: Any, ref: str, fed: set[str] = fed) -> bool:
            node = tensor_node(ref)
            if node in visited and not is_control(ref):
                fed.add(node)
                return True
            return False
        reached = ancestors(quantized.graph_def, [layer.op.name], skip_edge=is_fed)
        plan.append((layer.op.name, sorted(fed), [s.name for s in quantized.inputs if s.node in reached]))
        visited.add(out_of[layer.op.name])
    last_read = {node: i for i, (_, fed_nodes, _) in enumerate(plan) for node in fed_nodes}
    tensors = sorted({f"{n}:0" for n in [*out_of, *out_of.values()]})
    runner = GraphRunner(quantized.replace(outputs=[TensorSpec(t, t, "float32", None) for t in tensors]))
    count.sessions += 1
    count.graph_nodes = len(quantized.graph_def.node)
    kept: dict[str, list[np.ndarray]] = {}
    deltas: dict[str, np.ndarray] = {}
    try:
        for i, (name, fed_nodes, inputs) in enumerate(plan):
            fetch = sorted({f"{name}:0", f"{out_of[name]}:0"})
            count.node_runs += evaluated(quantized, fetch, [f"{f}:0" for f in fed_nodes])
            total, n, outs = 0.0, 0, []
            for b, batch in enumerate(batches):
                feeds = {**{f"{f}:0": kept[f][b] for f in fed_nodes}, **{k: batch[k] for k in inputs}}
                got = dict(zip(fetch, runner.fetch(fetch, feeds)))
                flat = got[f"{name}:0"].reshape(-1, got[f"{name}:0"].shape[-1])
                total, n = total + flat.sum(axis=0, dtype=np.float64), n + len(flat)  # no float64 copy
                outs.append(got[f"{out_of[name]}:0"])
                count.runs += 1
            deltas[name] = expected[name] - total / n
            if last_read.get(out_of[name], -1) > i:
                for out in outs:  # in place: an activation of every sample is large
                    out += deltas[name].astype(out.dtype)
                kept[out_of[name]] = outs
            for f in fed_nodes:
                if last_read[f] == i:
                    del kept[f]
    finally:
        runner.close()
    return deltas


def in_graph_corrections(quantized: Model, layers: Sequence[Linear], expected: Mapping[str, np.ndarray],
                         batches: Sequence[Mapping[str, Any]], count: PassCount) -> dict[str, np.ndarray]:
    """:func:`propagated_corrections` for one batch, in one run of the quantized graph: each layer's
    correction is computed inside the graph and added to its output there, for every consumer::

        δ_i = E[y_i] − Σ ỹ_i / n     (Σ over the rows [n, C] of ỹ_i in float64 blocks: :mod:`._correction_graph`)
        ỹ_i + δ_i                    (float32, ``δ_i`` cast as the per-layer runs add it)

    With one batch, ``E[ỹ_i]`` is that batch's mean, known as soon as ``ỹ_i`` is computed, so the
    layers below read the corrected output in the same run: the same numbers as feeding it back
    (up to the block sums' rounding, bounded in :mod:`._correction_graph`), without one run per layer, each pruning and planning the graph
    anew and copying every activation out of TensorFlow and back in. ``count``: one session, one run.
    """
    from tfopt.passes._correction_graph import correction_graph
    from tfopt.runtimes.tensorflow import GraphRunner

    work, fetch = correction_graph(quantized, layers, expected)
    count.sessions += 1
    count.graph_nodes = len(quantized.graph_def.node)
    count.node_runs += evaluated(quantized, [f"{layer.op.name}:0" for layer in layers], [])
    runner = GraphRunner(quantized.replace(graph_def=work,
                                           outputs=[TensorSpec(t, t, "float64", None) for t in fetch.values()]))
    try:
        values = runner.fetch(list(fetch.values()), batches[0])
        count.runs += 1
    finally:
        runner.close()
    return dict(zip(fetch, values))


def evaluated(model: Model, fetch: Sequence[str], feeds: Collection[str]) -> int:
    """How many nodes of ``model`` a run fetching ``fetch`` and feeding the tensors ``feeds``
    evaluates: the fetches' ancestors, not looking above a fed tensor (TensorFlow's pruning)."""
    from tfopt.graph import ancestors

    fed = set(feeds)
    return len(ancestors(model.graph_def, fetch, skip_edge=lambda _node, ref: not is_control(ref) and canonical_tensor(ref) in fed))


def sequential_corrections(changed: Model, layers: Sequence[Linear], expected: Mapping[str, np.ndarray],
                           batches: Sequence[Mapping[str, Any]], count: PassCount | None = None
                           ) -> dict[str, np.ndarray]:
    """Each layer's ``δ = E[y] − E[ỹ]`` (layer name -> per-channel vector, float64), earlier layers
    corrected: in one run with one batch (:func:`in_graph_corrections`), else one pass that feeds each
    corrected output on (:func:`propagated_corrections`).

    Args:
        changed: the model with the changed weights and uncorrected biases; never modified.
        layers: the layers to correct, producers first (their ``op`` names are nodes of ``changed``).
        expected: layer name -> ``E[y]`` per output channel in the float model.
        batches: the calibration feeds (a list of ``{input name: array}``).
        count: updated with the sessions, runs and nodes evaluated.
    """
    correct = in_graph_corrections if len(batches) == 1 else propagated_corrections
    return correct(changed, layers, expected, batches, count if count is not None else PassCount())
