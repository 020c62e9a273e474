"""``tfopt inspect``'s two subjects: a deployment artifact (``.tflite``, ``.onnx``, an OpenVINO IR or its
directory), measured here as the report measures artifacts (bytes, gzip bytes, each weight tensor's unique values
and sparsity), or a model, described by what loading finds (:func:`tfopt.loaders.inspect_model.inspect_model`).
The choice sits here, above both: a loader never imports the report to measure an artifact."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def inspect_path(path: Any, **options: Any) -> dict[str, Any]:
    """Describe the artifact or the model at ``path`` without changing it (``options``: load options as for
    :func:`tfopt.load`, for a model). A path that does not exist is a model's, named as missing."""
    from tfopt.loaders.inspect_model import inspect_model

    path = os.fspath(path)
    if not os.path.exists(path) or not _is_artifact(path):
        return inspect_model(path, **options)
    from tfopt.loaders import unreadable

    try:
        return inspect_artifact(path)
    except PermissionError as exc:  # a file of the artifact this user may not read
        raise unreadable(exc, path) from exc


def _is_artifact(path: str) -> bool:
    """A converted file or IR directory (a ``.pb`` or a SavedModel is a model: inspected as one)."""
    return path.endswith((".tflite", ".onnx", ".xml")) or os.path.exists(os.path.join(path, "model.xml"))


def inspect_artifact(path: str) -> dict[str, Any]:
    """A deployment artifact (.tflite, .onnx, OpenVINO IR): its bytes, gzip bytes, and per weight
    tensor the unique values and sparsity (what clustering and pruning change)."""
    from tfopt.report.build import artifact_format, artifact_sizes
    from tfopt.report.weights import weight_stats

    fmt, run_path = artifact_format(path)
    size, gzipped = artifact_sizes(fmt, run_path)
    weights = weight_stats(fmt, run_path)
    total = sum(int(np.prod(w["shape"])) for w in weights)
    return {"format": fmt, "path": path, "bytes": size, "gzip_bytes": gzipped, "weight_tensors": len(weights),
            "weights": total, "zeros": round(sum(w["sparsity"] * int(np.prod(w["shape"])) for w in weights)
                                             / max(total, 1), 4),
            "weight_table": weights}
