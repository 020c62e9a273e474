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


def serving_key(model: Model) -> str:
    """What a serving SavedModel of ``model`` is keyed by: its graph with no external tensor's file
    named (the node's name, dtype and shape say which tensor it is; where the file lies does not:
    the graph just frozen and the same graph read back from a store get one key), and its input and
    output names."""
    from tfopt.external.tensors import EXTERNAL_OP

    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    for node in graph_def.node:
        if node.op == EXTERNAL_OP:
            del node.attr["memory_region_name"]
    return hashlib.sha256(graph_def.SerializeToString(deterministic=True)
                          + repr([(s.name, s.tensor) for s in [*model.inputs, *model.outputs]]).encode()).hexdigest()


def serving_savedmodel(model: Model) -> str:
    """The serving SavedModel of ``model``: one already provided (``model.external.savedmodels``,
    e.g. the fleet's cache entry), else written on first use where the external tensors allow it
    (:meth:`~tfopt.external.ExternalTensors.scratch`), never into a shared store."""
    from tfopt.external.serving import write_serving_savedmodel

    key = serving_key(model)
    known = model.external.savedmodels.get(key)
    if known is not None and os.path.isdir(known):
        return known
    path = os.path.join(model.external.scratch(), f"serving-{key[:16]}")
    if not os.path.isdir(path):
        import gc

        write_serving_savedmodel(model, path)
        gc.collect()  # its variables (the tables, in memory) before a converter child reads them from the files
    model.external.savedmodels[key] = path
    return path


def reads_serving_savedmodel(target: str, precision: str) -> bool:
    """Whether ``target`` at ``precision`` converts a large model from its serving SavedModel."""
    from tfopt.targets import TABLE

    record = TABLE.get(target)
    return (record is not None and record.large == f"{__name__}:via_savedmodel"
            and ("fp32" if precision == "none" else precision) in record.large_precisions)


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
    from tfopt._user_code import PROVENANCE_KEY
    from tfopt.emitters.large import check_large_precision, emit_from_savedmodel

    model, qat = job.portable, bool(job.quantization_aware)
    check_large_precision(record.name, job.precision, quantization_aware=qat)  # before the SavedModel is written
    written: str = emit_from_savedmodel(record.name, serving_savedmodel(model), job.path, precision=job.precision,
                                        input_names=[s.name for s in model.inputs],
                                        output_names=[s.name for s in model.outputs],
                                        input_tensors=[s.tensor for s in model.inputs],
                                        output_tensors=[s.tensor for s in model.outputs],
                                        opset=getattr(job.quantize, "opset", None), quantization_aware=qat,
                                        int8_io=bool(getattr(job.quantize, "int8_io", False)),
                                        imports=model.provenance.get(PROVENANCE_KEY, []))
    return written
