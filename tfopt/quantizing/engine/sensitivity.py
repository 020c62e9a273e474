"""Per-layer sensitivity on the engine's graph, and ``--auto-keep-float``'s choice of float layers.

The unit is a *quantized group*: what one range covers (:func:`tfopt.quantizing.engine.placement.range_groups`)
— a layer with its bias and fused activation, a fused composite (GELU, Swish, LayerNorm...), or a
requantizing op (``Add``, ``ConcatV2``, ``Mean``...). Keeping a group in float removes its fake
quants, so every target runs it in float: one decision, the same in all targets.

**Rank** (:func:`rank_groups`). Each group is quantized *alone* — fake quants on it, every other
group float — and the fake-quant graph runs in TensorFlow on the calibration samples::

    output_error(g) = rms(y_g − y) / rms(y)        (the first output; y float, y_g with g alone in int8)

the number :mod:`tfopt.quantizing.native.ranking` ranks a converter's own quantizer by, computed here without
a converter: the engine's graph is what each target executes. Ranking uses the recipe's range
method, equalization and weight grid, not its measured transforms (bias correction, AdaRound): those
depend on which layers are quantized and would be re-measured for every group.

**Choose** (:func:`choose_float_layers`). The worst group is kept in float, one at a time, until the
top-1 drop (against labels; without labels, the top-1 disagreement with the float model, in points)
is within the bound. Each step first measures the full recipe's fake-quant graph in TensorFlow
(cheap: one graph run); once that is within the bound, each target's real artifact is measured
(``measure``), and while any target is over the bound the next worst group is added. The kept set
is the same for every target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.terminal.progress import Step
from tfopt.verification.classes import predicted, sample_classes, threshold

MAX_SAMPLES = 64  # samples the ranking and the simulated drop run on (the ranking repeats per group)


def groups(model: Model) -> list[tuple[str, str]]:
    """``(name, op)`` of each quantized group, in graph order: the name is the group's first node
    (a ``--keep-float`` name that covers the group, :func:`tfopt.quantizing.engine.placement.kept_nodes`)."""
    from tfopt.graph import node_map
    from tfopt.quantizing.engine.placement import range_groups

    nodes = node_map(model.graph_def)
    seen: dict[tuple[str, ...], None] = {}
    for group, _ in range_groups(model):
        seen.setdefault(group, None)
    return [(group[0], nodes[group[0]].op) for group in seen]


def rank_groups(engine: Any, recipe: Any, *, kept: Sequence[str] = (),
                say: Callable[[Any], None] = lambda _e: None) -> list[dict[str, Any]]:
    """``[{layer, op, output_error}]``, worst first: each group of ``engine.model`` quantized alone
    by ``recipe`` without its measured transforms (see the module doc); ``kept`` groups are not ranked."""
    plain = replace(recipe, bias_correction=False, adaround=False)
    feeds = _feeds(engine)
    expected = _run(engine.model, feeds)
    names = [g for g in groups(engine.model) if g[0] not in set(kept)]
    rows = []
    for index, (name, op) in enumerate(names):
        say(Step("tfopt int8: each layer quantized alone", index + 1, len(names)))
        others = [n for n, _ in names if n != name] + list(kept)
        quantized, _ = engine.quantize(plain, keep_float=others)
        rows.append({"layer": name, "op": op, "output_error": _relative_error(_run(quantized, feeds), expected)})
    return sorted(rows, key=lambda r: -r["output_error"])


def choose_float_layers(engine: Any, recipe: Any, bound: float, ranking: Sequence[Mapping[str, Any]], *,
                        kept: Sequence[str] = (), labels: Mapping[str, Any] | None = None,
                        measure: Callable[[list[str]], dict[str, float]] | None = None,
                        say: Callable[[Any], None] = lambda _e: None) -> tuple[list[str], list[dict[str, Any]]]:
    """The groups to keep in float, and each step's measurements.

    Args:
        engine: the :class:`tfopt.quantizing.engine.quantize.Engine`.
        recipe: the full recipe the artifacts are built with.
        bound: the largest drop allowed, in top-1 points.
        ranking: :func:`rank_groups`' rows, worst first.
        kept: groups the user keeps in float (``--keep-float``), kept throughout.
        labels: ``{"inputs": {name: array}, "labels": array}`` to score against; else the
            calibration samples, scored by agreement with the float model.
        measure: ``measure(kept) -> {target: drop}``: each target's real artifact with ``kept`` in
            float (a target that cannot say, NaN, is left out).

    Returns:
        ``(kept, steps)``; each step ``{"kept": n, "simulated_drop": d, "targets": {t: drop}?}``.
    """
    feeds = labels["inputs"] if labels is not None else _feeds(engine)
    truth = np.asarray(labels["labels"]) if labels is not None else None
    scores = _run(engine.model, feeds)
    cut = threshold(scores)  # a one-score classifier's boundary, from the float model
    reference = _classes(scores, truth, cut)
    chosen, steps = list(kept), []
    remaining = [r["layer"] for r in ranking if r["layer"] not in chosen]
    confirming = False
    while True:
        quantized, _ = engine.quantize(recipe, keep_float=chosen)
        step: dict[str, Any] = {"kept": len(chosen), "layers": list(chosen),
                                "simulated_drop": _drop(_classes(_run(quantized, feeds), truth, cut), reference, truth)}
        drop = step["simulated_drop"]
        if drop <= bound and measure is not None:
            confirming = True
        if confirming and measure is not None:
            step["targets"] = measure(list(chosen))
            drop = max([drop, *(d for d in step["targets"].values() if np.isfinite(d))])
        steps.append(step)
        say(f"tfopt int8 keeping {len(chosen)} layer(s) in float: drop {drop:.2f} points"
            + (" (every target measured)" if "targets" in step else " (simulated in TensorFlow)"))
        if drop <= bound or not remaining:
            return chosen, steps
        chosen.append(remaining.pop(0))


# --- helpers ----------------------------------------------------------------------------------------

def _feeds(engine: Any) -> dict[str, np.ndarray]:
    from tfopt.verification.data_batches import sample_axes, take_rows

    samples = {k: np.asarray(v) for k, v in engine.samples.items()}
    return take_rows(samples, 0, MAX_SAMPLES, sample_axes(samples, engine.model.inputs))  # on each batch axis


def _run(model: Model, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """The first output on every sample: one run of them all when the graph takes it, else whole
    batches of the batch it takes (:func:`tfopt.verification.data_batches.batched`: a fixed batch, or
    towers that split it), as verification feeds given data."""
    from tfopt.runtimes.tensorflow import GraphRunner
    from tfopt.verification.data_batches import batched

    runner = GraphRunner(model.replace(reference=None))
    name = model.outputs[0].name
    try:
        try:
            return np.asarray(runner(feeds)[name])
        except Exception:  # a fixed batch (or towers, or an op that will not batch): the batches it takes
            return batched(runner, model.inputs, feeds, model.graph_def).run(runner, [name])[name]
    finally:
        runner.close()


def _classes(values: np.ndarray, truth: np.ndarray | None, cut: float) -> np.ndarray:
    return predicted(values, truth, cut) if truth is not None else sample_classes(values, cut)


def _drop(got: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
    if labels is not None:
        return 100.0 * (float(np.mean(reference == labels)) - float(np.mean(got == labels)))
    return 100.0 * (1.0 - float(np.mean(got == reference)))


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    from tfopt.quantizing.native.layer_targets import relative_error

    return relative_error(got, expected)
