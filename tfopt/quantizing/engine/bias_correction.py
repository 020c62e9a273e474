"""Empirical bias correction of weight quantization (Nagel et al. 2019, section 4.2).

Quantizing a layer's weights, ``W̃ = W + ε``, shifts the mean of its output::

    E[ỹ] = E[W̃x] = E[y] + ε·E[x]

and that shift, unlike the noise around it, survives every later average (pooling, the
classifier's logits) and grows through the layers. The correction measures it and moves it into
the bias, per output channel k::

    b'_k = b_k + E[y_k − ỹ_k]

Empirically, sequentially: layers are visited producers first; ``y`` is the layer's output in the
float model and ``ỹ`` the same layer's output in the model whose weights are all quantized and
whose *earlier* layers' biases are already corrected. So ``ỹ`` is computed from the quantized
model's own input to the layer, and the correction also absorbs the mean shift that reaches the
layer from above. Expectations are over the calibration samples and every spatial position.
``ỹ`` depends only on the layers upstream, so one pass of the quantized model computes them all:
each layer's corrected output ``ỹ + δ`` is fed to the layers below instead of being recomputed
(:func:`propagated_corrections`; ``report.passes`` counts what ran). With one batch (the engine's
case: every sample in one array) the correction is computed inside the graph and the whole pass is
one run (:func:`in_graph_corrections`).

The returned model keeps its float weights; only biases change (a BiasAdd is created for a layer
that has none). ``W̃`` here is the engine's own weight grid (:mod:`tfopt.quantizing.engine.weight_grid`:
``q = clip(⌊w/Δ + ½⌋, −L, L)``, ``Δ = max(max|w|, MIN_AMAX)/L`` per output channel for conv and
depthwise layers with ``per_channel=True``, per tensor for MatMul or throughout), so the shift
measured is the one the fake-quant graph then has.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.graph import (
    Model,
    TensorSpec,
    canonical_tensor,
    consumers,
    is_control,
    node_map,
    tensor_node,
)
from tfopt.graphdef.order import topological_rank
from tfopt.passes._linear import add_bias, const_array, set_const
from tfopt.passes.base import Skip, copy_graph
from tfopt.quantizing.engine._channels import (
    LAYER_OPS,
    Layer,
    Samples,
    as_layer,
    channel_stats,
    out_channels,
    sample_batches,
)
from tfopt.quantizing.engine.correction_graph import correction_graph, in_graph_means
from tfopt.quantizing.engine.weight_grid import LEVELS, weight_grid


def quantizable_layers(graph_def: Any) -> tuple[list[Layer], list[Skip]]:
    """Every Conv2D / DepthwiseConv2dNative / MatMul, producers first, and why the others are not."""
    nodes, users = node_map(graph_def), consumers(graph_def)
    rank = topological_rank(graph_def)
    layers: list[Layer] = []
    skips: list[Skip] = []
    for node in sorted((n for n in graph_def.node if n.op in LAYER_OPS), key=lambda n: rank[n.name]):
        layer = as_layer(nodes, users, node)
        if isinstance(layer, Layer):
            layers.append(layer)
        else:
            skips.append(Skip(node.name, f"weights not quantized: {layer}"))
    return layers, skips


def fake_quantize_weights(model: Model, *, per_channel: bool = True, levels: int = LEVELS) -> Model:
    """``model`` with every quantizable layer's weights on the engine's weight grid (values, not fake quants)."""
    graph_def = copy_graph(model.graph_def)
    for layer in quantizable_layers(graph_def)[0]:
        w = const_array(layer.weights)
        set_const(layer.weights, weight_grid(w, layer.op.op, per_channel=per_channel, levels=levels).quantize(w))
    return model.replace(graph_def=graph_def)


@dataclass
class CorrectedLayer:
    """One layer's correction ``E[y − ỹ]``, summarised."""

    layer: str
    op: str
    channels: int
    max_abs: float
    mean_abs: float
    bias_created: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in self.__dict__.items()}


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


@dataclass
class BiasCorrectionReport:
    per_channel: bool
    batches: int
    layers: list[CorrectedLayer] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    corrections: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # layer -> E[y − ỹ]
    passes: PassCount = field(default_factory=PassCount)

    def as_dict(self) -> dict[str, Any]:
        return {"per_channel": self.per_channel, "batches": self.batches,
                "layers": [row.as_dict() for row in self.layers], "skips": [str(s) for s in self.skips],
                "passes": self.passes.as_dict()}


def bias_correct(model: Model, samples: Samples, *, per_channel: bool = True, levels: int = LEVELS,
                 skip: Collection[str] = (), float_means: dict[str, np.ndarray] | None = None
                 ) -> tuple[Model, BiasCorrectionReport]:
    """Empirical bias correction of int8 weight quantization (see the module doc).

    Args:
        model: a frozen, BatchNorm-folded model; never modified.
        samples: calibration data, ``{input name: array}`` (first axis = samples) or a list of
            such dicts.
        per_channel: the weight quantizer the engine will use: per output channel (default) or
            per tensor.
        levels: its steps of ``max|w|`` (127; 63 for 7-bit weights).
        skip: layer (op) names the engine keeps in float: their weights stay float here too, and
            their biases are not corrected (a float layer has no rounding shift of its own).
        float_means: layer name -> ``E[y]`` of ``model`` on ``samples``, kept by a caller that
            corrects the same model for another weight grid: the layers found there are not
            measured again, the others are measured and added to it.

    Returns:
        ``(model, report)``: float weights, corrected biases; ``report.corrections`` holds each
        layer's ``E[y − ỹ]`` by its original name. Cost (``report.passes``): one pass over
        ``samples`` for the float model and about one for the quantized model, in two sessions
        (see :func:`propagated_corrections`; one run each with one batch: :func:`in_graph_corrections`).

    Raises:
        OptionError: no samples, or samples missing one of the model's inputs.
    """
    batches = sample_batches(samples, model.inputs)
    report = BiasCorrectionReport(per_channel, len(batches))
    work = copy_graph(model.graph_def)
    layers, report.skips = quantizable_layers(work)
    layers = [layer for layer in layers if layer.op.name not in skip]
    if not layers:
        return model, report
    names = [layer.op.name for layer in layers]
    targets = {} if float_means is None else float_means
    missing = [n for n in names if n not in targets]
    if missing and len(batches) == 1:
        targets.update(in_graph_means(model, [layer for layer in layers if layer.op.name in missing], batches[0]))
        report.passes.sessions, report.passes.runs = 1, 1
    elif missing:
        expected = channel_stats(model, [f"{n}:0" for n in missing], batches)
        targets.update({n: expected[f"{n}:0"][0] for n in missing})
        report.passes.sessions, report.passes.runs = 1, len(batches)
    floats = {}
    for layer in layers:
        floats[layer.weights.name] = const_array(layer.weights)
        grid = weight_grid(floats[layer.weights.name], layer.op.op, per_channel=per_channel, levels=levels)
        set_const(layer.weights, grid.quantize(floats[layer.weights.name]))
    correct = in_graph_corrections if len(batches) == 1 else propagated_corrections
    deltas = correct(model.replace(graph_def=work), layers, targets, batches, report.passes)
    for name, layer in zip(names, layers):
        delta = deltas[name]
        # Look the layer up again: an earlier layer's new BiasAdd changed the graph around it.
        nodes = node_map(work)
        fresh = as_layer(nodes, consumers(work), nodes[name])
        created = add_bias(work, fresh if isinstance(fresh, Layer) else layer, delta)
        report.corrections[name] = delta
        report.layers.append(CorrectedLayer(name, layer.op.op, out_channels(layer), float(np.abs(delta).max()),
                                            float(np.abs(delta).mean()), created))
    nodes = node_map(work)
    for weights_name, value in floats.items():
        set_const(nodes[weights_name], value)
    return model.replace(graph_def=work), report


def propagated_corrections(quantized: Model, layers: Sequence[Layer], expected: Mapping[str, np.ndarray],
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


def in_graph_corrections(quantized: Model, layers: Sequence[Layer], expected: Mapping[str, np.ndarray],
                         batches: Sequence[Mapping[str, Any]], count: PassCount) -> dict[str, np.ndarray]:
    """:func:`propagated_corrections` for one batch, in one run of the quantized graph: each layer's
    correction is computed inside the graph and added to its output there, for every consumer::

        δ_i = E[y_i] − Σ ỹ_i / n     (Σ over the rows [n, C] of ỹ_i in float64 blocks: :mod:`.correction_graph`)
        ỹ_i + δ_i                    (float32, ``δ_i`` cast as the per-layer runs add it)

    With one batch, ``E[ỹ_i]`` is that batch's mean, known as soon as ``ỹ_i`` is computed, so the
    layers below read the corrected output in the same run: the same numbers as feeding it back
    (up to the block sums' rounding, bounded in :mod:`.correction_graph`), without one run per layer, each pruning and planning the graph
    anew and copying every activation out of TensorFlow and back in. ``count``: one session, one run.
    """
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
