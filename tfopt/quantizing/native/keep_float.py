"""Selective quantization: keep named layers in float, or (``auto``) the worst ones, one at a
time, until the accuracy drop (or the top-1 disagreement with the original) is within bound."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.targets import require_calibration


def selective(target: str, precision: str, model: Model, path: str, samples: Any, keep: Sequence[str],
              auto: float | None, labeled: Any, say: Callable[[Any], None],
              emit: Callable[[str, list[str], Any], str], *, opset: int | None = None,
              to_raw: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[str, list[str], list[dict[str, Any]]]:
    """Rank the layers (:func:`tfopt.quantizing.native.ranking.rank_layers`), then write ``path`` with
    ``emit(path, kept, converted)`` keeping ``keep`` in float, and with ``auto`` add the worst
    remaining layer until the drop is within ``auto`` points, measured on ``labeled`` (the eval data, a
    :class:`tfopt.verification.input_data.LabeledData`) or else the calibration samples. Returns (file, kept, ranking)."""
    from tfopt.quantizing.native.layer_targets import quantizer_for
    from tfopt.quantizing.native.ranking import rank_layers, resolve_layers
    from tfopt.verification.data_batches import join_samples

    require_calibration(samples)
    say(f"{target} {precision}: per-layer quantization error")
    quantizer = quantizer_for(target, precision, model, samples, opset)
    ranking = rank_layers(quantizer, model, samples, say)
    kept = resolve_layers(quantizer, keep, model)
    inputs, labels = (labeled.inputs, labeled.labels) if labeled is not None else (
        join_samples(samples[:64], model.inputs), None)
    while True:
        written = emit(path, list(kept), quantizer.converted)
        if auto is None:
            return written, kept, ranking
        drop = drop_points(target, model, written, inputs, labels, to_raw)
        say(f"{target} {precision} keeping {len(kept)} layer(s) in float: drop {drop:.2f} points")
        remaining = [r["layer"] for r in ranking if r["layer"] not in kept]
        if drop <= auto or not remaining:
            return written, kept, ranking
        kept.append(remaining[0])


def drop_points(target: str, model: Model, path: str, inputs: dict[str, np.ndarray], labels: np.ndarray | None,
                to_raw: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """Top-1 points lost by the artifact: against the labels, else against the original's classes
    (the class rule of :mod:`tfopt.verification.classes`), on every row of ``inputs`` in whole batches
    the graph takes (:func:`tfopt.verification.data_batches.batched`)."""
    from tfopt.runtimes import runner_for
    from tfopt.verification.data_batches import batched
    from tfopt.verification.verify import reference_runner

    original = reference_runner(model)
    bindings = model.bindings if model.reference is not None else {}
    runner = runner_for(target, path, model)
    raw = to_raw or (lambda v: v)
    name = model.outputs[0].name
    reference = lambda f: original({**f, **bindings})  # noqa: E731
    given = batched(reference, model.inputs, inputs, model.graph_def)  # the batches the graph takes, as verified
    ref = given.run(reference, [name])[name]
    got = given.run(lambda f: runner({k: raw(v) for k, v in f.items()}), [name])[name]
    from tfopt.verification.classes import sample_classes, threshold, top1

    cut = threshold(ref)
    if labels is not None:
        return top1(ref, labels, cut) - top1(got, labels, cut)
    return 100.0 * (1.0 - float(np.mean(sample_classes(ref, cut) == sample_classes(got, cut))))
