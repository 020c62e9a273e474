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
    :class:`tfopt.verification.input_data.LabeledData`) or else the calibration samples. Returns (file, kept, ranking).

    Every run of the original and of a candidate file is held to the bound in force (``--verify-timeout``,
    :mod:`tfopt.verification.deadline`): the original runs the samples first, in TensorFlow, before any converter
    calibrates or debugs on them in process (native code no bound stops).

    Raises:
        VerificationTimeoutError: a run did not end within the bound; names this search, the model and the option.
    """
    from tfopt.runtimes.bounded_stage import Stage, within

    stage = Stage(f"the keep-float search of {target} {precision} (--keep-float/--auto-keep-float)",
                  model=model.provenance.get("path") or "", inputs="pass --calibration (and --eval-data) data it ends on",
                  skip="leave out --keep-float/--auto-keep-float")
    with within(stage):
        return _selective(target, precision, model, path, samples, keep, auto, labeled, say, emit, opset, to_raw)


def _selective(target: str, precision: str, model: Model, path: str, samples: Any, keep: Sequence[str],
               auto: float | None, labeled: Any, say: Callable[[Any], None], emit: Callable[[str, list[str], Any], str],
               opset: int | None, to_raw: Callable[[np.ndarray], np.ndarray] | None) -> tuple[str, list[str], list[dict[str, Any]]]:
    from tfopt.quantizing.native.layer_targets import quantizer_for
    from tfopt.quantizing.native.ranking import expected_outputs, rank_layers, resolve_layers
    from tfopt.verification.data_batches import join_samples

    require_calibration(samples)
    expected = expected_outputs(model, samples)  # the original first: a loop the samples never leave stops here
    say(f"{target} {precision}: per-layer quantization error")
    quantizer = quantizer_for(target, precision, model, samples, opset)
    ranking = rank_layers(quantizer, model, samples, say, expected)
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
    from tfopt.verification.data_batches import batched
    from tfopt.verification.deadline import bounded_runner
    from tfopt.verification.verify import reference_runner

    original = reference_runner(model)
    bindings = model.bindings if model.reference is not None else {}
    raw = to_raw or (lambda v: v)
    name = model.outputs[0].name
    reference = lambda f: original({**f, **bindings})  # noqa: E731
    given = batched(reference, model.inputs, inputs, model.graph_def)  # the batches the graph takes, as verified
    ref = given.run(reference, [name])[name]
    runner = bounded_runner(target, path, model, original.seconds)  # its bound scaled by the original's time
    try:
        got = given.run(lambda f: runner({k: raw(v) for k, v in f.items()}), [name])[name]
    finally:
        runner.close()
    from tfopt.verification.classes import sample_classes, threshold, top1

    cut = threshold(ref)
    if labels is not None:
        return top1(ref, labels, cut) - top1(got, labels, cut)
    return 100.0 * (1.0 - float(np.mean(sample_classes(ref, cut) == sample_classes(got, cut))))
