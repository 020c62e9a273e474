"""Measure each artifact against the original model on the same inputs.

Per artifact and output: max/mean absolute error, relative error ``max|a−r| / max|r|``, cosine
similarity of the flattened outputs, and top-1 agreement (same argmax on the last axis). With
labels: top-1/top-5 accuracy (integer labels) or MAE/RMSE (float labels), and the drop from the
original in points. Latency: median and p90 over ``runs`` timed calls after 3 warm-up calls,
batch 1, with the thread count stated.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import numpy as np

from tfopt.graph import Model


def measure(outdir: str, reference: Callable[[Mapping[str, Any]], dict[str, Any]], model: Model, artifacts: list[dict[str, Any]],
            *, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None, runs: int = 20,
            threads: int | None = None, progress: Callable[[Any], None] | None = None,
            metric: Callable[[np.ndarray, np.ndarray], float] | None = None) -> dict[str, Any]:
    """Build the report dict (see the README's report schema). ``metric(predictions, labels)``
    replaces the built-in accuracy: a score, higher is better; the drop is reference - artifact."""
    from tfopt.converting import runner_for
    from tfopt.progress import Step

    threads = threads or os.cpu_count() or 1
    expected = _batched(reference, inputs, [s.name for s in model.outputs])
    reference_latency = _latency(_single_call(reference, inputs), runs)
    ref_accuracy = _accuracy(expected[model.outputs[0].name], labels, metric) if labels is not None else None
    rows = []
    for index, artifact in enumerate(artifacts):
        if progress is not None:
            progress(Step("measuring artifacts", index + 1, len(artifacts)))
        try:  # the original answered these inputs above: a runtime that rejects them is at fault
            runner = runner_for(artifact["format"], os.path.join(outdir, artifact["path"]), model, threads=threads)
            got = _batched(runner, inputs, [s.name for s in model.outputs])
        except Exception as exc:
            _blame_runtime(exc, artifact, inputs)
        fidelity = _fidelity(expected, got)
        accuracy = _accuracy(got[model.outputs[0].name], labels, metric) if labels is not None else None
        rows.append({
            "format": artifact["format"], "precision": artifact["precision"], "path": artifact["path"],
            "bytes": artifact["bytes"], "gzip_bytes": artifact.get("gzip_bytes"), "fidelity": fidelity,
            "accuracy": accuracy, "accuracy_drop": _drop(ref_accuracy, accuracy),
            "latency_ms": {**_latency(_single_call(runner, inputs), runs), "threads": threads},
        })
    return {"reference": {"latency_ms": {**reference_latency, "threads": "tensorflow default"},
                          "accuracy": ref_accuracy},
            "samples": len(next(iter(inputs.values()))), "artifacts": rows}


def _blame_runtime(exc: Exception, artifact: dict[str, Any], inputs: dict[str, np.ndarray]) -> NoReturn:
    from tfopt.errors import ConversionError, TfoptError
    from tfopt.verify import RUNTIME

    if isinstance(exc, TfoptError):
        raise exc
    shapes = ", ".join(f"{k}:{'x'.join(map(str, (1, *v.shape[1:])))}" for k, v in inputs.items())
    raise ConversionError(f"running {artifact['format']} {artifact['precision']} in "
                          f"{RUNTIME.get(artifact['format'], 'TensorFlow')}: {artifact['path']} does not run at "
                          f"{shapes}, where the original model runs ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]})") from exc


def _single_call(run: Callable[[Mapping[str, Any]], Any], inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
    first = {k: v[:1] for k, v in inputs.items()}
    return lambda: run(first)


def _batched(run: Callable[[Mapping[str, Any]], dict[str, Any]], inputs: dict[str, np.ndarray],
             names: list[str]) -> dict[str, np.ndarray]:
    """One sample at a time (every runtime accepts batch 1), concatenated."""
    n = len(next(iter(inputs.values())))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(n):
        out = run({k: v[i:i + 1] for k, v in inputs.items()})
        for k in names:
            parts[k].append(np.asarray(out[k], dtype=np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def _fidelity(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst case over the outputs."""
    max_abs, mean_abs, rel, cos, agree = 0.0, 0.0, 0.0, 1.0, 1.0
    for name, ref in expected.items():
        val = got[name]
        err = np.abs(val - ref)
        max_abs = max(max_abs, float(err.max()))
        mean_abs = max(mean_abs, float(err.mean()))
        rel = max(rel, float(err.max() / max(np.abs(ref).max(), 1e-12)))
        a, b = ref.ravel(), val.ravel()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos = min(cos, float(a @ b / denom) if denom else 1.0)
        if ref.ndim >= 2 and ref.shape[-1] > 1:
            agree = min(agree, float(np.mean(ref.argmax(-1) == val.argmax(-1))))
    return {"max_abs_err": max_abs, "mean_abs_err": mean_abs, "rel_err": rel, "cosine": cos, "top1_agreement": agree}


def _accuracy(output: np.ndarray, labels: np.ndarray,
              metric: Callable[[np.ndarray, np.ndarray], float] | None = None) -> dict[str, float]:
    if metric is not None:
        return {"score": float(metric(output, labels))}
    if np.issubdtype(labels.dtype, np.integer):
        top5 = np.argsort(-output, axis=-1)[:, :5]
        return {"top1": float(np.mean(output.argmax(-1) == labels)),
                "top5": float(np.mean([label in row for label, row in zip(labels, top5)]))}
    diff = output.reshape(labels.shape) - labels
    return {"mae": float(np.mean(np.abs(diff))), "rmse": float(np.sqrt(np.mean(diff ** 2)))}


def _drop(reference: dict[str, float] | None, value: dict[str, float] | None) -> float | None:
    """Points lost: top-1 percentage points for classifiers, the MAE increase for regression."""
    if reference is None or value is None:
        return None
    if "score" in reference:
        return reference["score"] - value["score"]
    if "top1" in reference:
        return 100.0 * (reference["top1"] - value["top1"])
    return value["mae"] - reference["mae"]


def _latency(call: Callable[[], Any], runs: int) -> dict[str, Any]:
    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median": statistics.median(times), "p90": times[min(len(times) - 1, int(0.9 * len(times)))], "runs": runs}
