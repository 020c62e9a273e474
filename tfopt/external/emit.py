"""TFLite, ONNX and OpenVINO artifacts of a model with tensors outside its graph.

TFLite's and OpenVINO's converters read a SavedModel's variables from its checkpoint, neither reads
``ImmutableConst`` files: for them the model is written once as a serving SavedModel
(:func:`serving_savedmodel`, one per graph, kept beside the external tensors) and each converts
from it (``tfopt.emitters.large.emit_from_savedmodel``). ONNX converts the frozen graph itself
(``tfopt.emitters.large.emit_onnx_from_graph``): ONNX external data is the same raw bytes as the
external files, so the table is copied, never loaded in TensorFlow (a SavedModel loaded and frozen
again held about five copies of it), and ``--to onnx`` alone writes no serving SavedModel.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from tfopt.errors import ConversionError
from tfopt.graph import Model


def serving_savedmodel(model: Model) -> str:
    """The serving SavedModel of ``model`` (written on first use, in the external tensors' directory)."""
    from tfopt.external.serving import write_serving_savedmodel

    key = hashlib.sha256(model.graph_def.SerializeToString(deterministic=True)
                         + repr([(s.name, s.tensor) for s in [*model.inputs, *model.outputs]]).encode()).hexdigest()
    path = os.path.join(model.external.directory, f"serving-{key[:16]}")
    if not os.path.isdir(path):
        write_serving_savedmodel(model, path)
    return path


def emit_large(target: str, job: Any) -> str:
    """Write ``job``'s artifact for ``target`` through the record's ``large`` role.

    Raises:
        ConversionError: the target cannot write the model (its own reason, e.g. a precision it has
            no large-model form of).
    """
    from tfopt.errors import OptionError
    from tfopt.targets import TABLE

    record = TABLE[target]
    if record.large is None:
        raise ConversionError(f"{target} has no form for a model over 2 GB; "
                              f"choose from {', '.join(t.name for t in TABLE.values() if t.large)}")
    try:
        written: str = record.call("large", record, job)
    except OptionError as exc:  # known only once the model is loaded: this artifact fails, the others are built
        raise ConversionError(str(exc)) from exc
    return written


def via_savedmodel(record: Any, job: Any) -> str:
    """The ``large`` role of targets whose converter reads a SavedModel's variables (TFLite, OpenVINO):
    :func:`tfopt.emitters.large.emit_from_savedmodel` of the model's serving SavedModel."""
    from tfopt.emitters.large import emit_from_savedmodel

    model = job.portable
    written: str = emit_from_savedmodel(record.name, serving_savedmodel(model), job.path, precision=job.precision,
                                        input_names=[s.name for s in model.inputs],
                                        output_names=[s.name for s in model.outputs],
                                        opset=getattr(job.quantize, "opset", None))
    return written
