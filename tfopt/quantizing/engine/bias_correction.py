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
(:func:`tfopt.passes._bias_correction.propagated_corrections`; ``report.passes`` counts what ran).
With one batch (the engine's case: every sample in one array) the correction is computed inside the
graph and the whole pass is one run (:func:`tfopt.passes._bias_correction.in_graph_corrections`). That
sequential core is shared with the cluster snap (:mod:`tfopt.passes.cluster_weights`).

The returned model keeps its float weights; only biases change (a BiasAdd is created for a layer
that has none). ``W̃`` here is the engine's own weight grid (:mod:`tfopt.quantizing.engine.weight_grid`:
``q = clip(⌊w/Δ + ½⌋, −L, L)``, ``Δ = max(max|w|, MIN_AMAX)/L`` per output channel for conv and
depthwise layers with ``per_channel=True``, per tensor for MatMul or throughout), so the shift
measured is the one the fake-quant graph then has.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.graph import (
    Model,
    consumers,
    node_map,
)
from tfopt.graphdef.order import topological_rank
from tfopt.passes._bias_correction import PassCount, sequential_corrections
from tfopt.passes._correction_graph import in_graph_means
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


def bias_free_layers(graph_def: Any) -> list[str]:
    """The quantizable layers whose bias is zero or absent (what ``new_biases=False`` leaves alone)."""
    return [layer.op.name for layer in quantizable_layers(graph_def)[0] if not _has_bias(layer)]


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
                 skip: Collection[str] = (), float_means: dict[str, np.ndarray] | None = None,
                 new_biases: bool = True) -> tuple[Model, BiasCorrectionReport]:
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
        new_biases: False: a layer whose float bias is zero or absent has its weights quantized
            but is not corrected, so it stays without a bias (``report.skips`` names it); the shift
            of its rounding reaches the next corrected layer, whose ``E[y − ỹ]`` includes it.

    Returns:
        ``(model, report)``: float weights, corrected biases; ``report.corrections`` holds each
        layer's ``E[y − ỹ]`` by its original name. Cost (``report.passes``): one pass over
        ``samples`` for the float model and about one for the quantized model, in two sessions
        (see :func:`tfopt.passes._bias_correction.sequential_corrections`).

    Raises:
        OptionError: no samples, or samples missing one of the model's inputs.
    """
    batches = sample_batches(samples, model.inputs)
    report = BiasCorrectionReport(per_channel, len(batches))
    work = copy_graph(model.graph_def)
    layers, report.skips = quantizable_layers(work)
    layers = [layer for layer in layers if layer.op.name not in skip]
    corrected = layers if new_biases else [layer for layer in layers if _has_bias(layer)]
    report.skips += [Skip(layer.op.name, "no bias in the float layer: not corrected (no_new_bias)")
                     for layer in layers if not any(layer is c for c in corrected)]
    if not corrected:
        return model, report
    names = [layer.op.name for layer in corrected]
    targets = {} if float_means is None else float_means
    missing = [n for n in names if n not in targets]
    if missing and len(batches) == 1:  # summed in the graph: nothing of activation size copied out
        targets.update(in_graph_means(model, [layer for layer in corrected if layer.op.name in missing], batches[0]))
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
    deltas = sequential_corrections(model.replace(graph_def=work), corrected, targets, batches, report.passes)
    for name, layer in zip(names, corrected):
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


def _has_bias(layer: Layer) -> bool:
    """Whether ``layer`` adds a bias that is not zero everywhere."""
    return layer.bias is not None and bool(np.any(const_array(layer.bias)))
