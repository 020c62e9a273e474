"""Selective quantization: keep the worst layers in float until the accuracy drop is within bound."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import Model


def selective_tflite(model: Model, path: str, samples: Any, keep: Sequence[str], auto: float | None,
                      eval_data: str | None, say: Callable[[str], None]) -> tuple[str, list[str], list[dict[str, Any]]]:
    """TFLite int8 with layers kept in float: the given ones, then (``auto``) the worst ones, one at
    a time, until the drop is within ``auto`` points."""
    from tfopt.emitters.tflite import emit_tflite
    from tfopt.report.build import eval_arrays
    from tfopt.report.layers import resolve_tflite_layers, tflite_layer_errors

    if not samples:
        raise OptionError("--keep-float/--auto-keep-float need calibration data: pass --calibration DATA")
    ranking = tflite_layer_errors(model, samples)
    kept = resolve_tflite_layers(keep, ranking)
    inputs, labels = eval_arrays(eval_data, model) if eval_data else (
        {s.name: np.concatenate([x[s.name] for x in samples[:64]]) for s in model.inputs}, None)
    while True:
        emit_tflite(model, path, precision="int8", calibration=samples, keep_float=kept)
        if auto is None:
            return path, kept, ranking
        drop = _drop_points(model, path, inputs, labels)
        say(f"tflite int8 keeping {len(kept)} layer(s) in float: drop {drop:.2f} points")
        remaining = [r["layer"] for r in ranking if r["layer"] not in kept]
        if drop <= auto or not remaining:
            return path, kept, ranking
        kept.append(remaining[0])


def _drop_points(model: Model, path: str, inputs: dict[str, np.ndarray], labels: np.ndarray | None) -> float:
    """Top-1 points lost by the artifact: against the labels, else against the original's argmax."""
    from tfopt.converting import runner_for
    from tfopt.verify import reference_runner

    original = reference_runner(model)
    bindings = model.bindings if model.reference is not None else {}
    runner = runner_for("tflite", path, model)
    name = model.outputs[0].name
    n = len(next(iter(inputs.values())))
    ref = np.concatenate([original({**{k: v[i:i + 1] for k, v in inputs.items()}, **bindings})[name] for i in range(n)])
    got = np.concatenate([runner({k: v[i:i + 1] for k, v in inputs.items()})[name] for i in range(n)])
    if labels is not None:
        return 100.0 * (float(np.mean(ref.argmax(-1) == labels)) - float(np.mean(got.argmax(-1) == labels)))
    return 100.0 * (1.0 - float(np.mean(ref.argmax(-1) == got.argmax(-1))))
