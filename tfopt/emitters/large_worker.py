"""The child process of :mod:`tfopt.emitters.large`: one converter on one serving SavedModel, then exit.

Run as ``python -m tfopt.emitters.large_worker JOB.json``; the job names the target, the precision,
the SavedModel, the output path and the signature's input and output names. Exit 0 with the
artifact written, else 1 with one line in ``error.txt`` beside the job (the parent raises it).

Each converter reads the table from the SavedModel's variables itself (TFLite's and OpenVINO's
SavedModel importers, tf2onnx's large-model freezing), so no GraphDef ever holds it; the child
exists so that what a converter allocates (and TensorFlow's allocator keeps) is returned to the
system when it ends, and the three targets' peaks do not add up in one process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SIGNATURE = "serving_default"


class JobError(Exception):
    """What the parent reports as the conversion's failure (one line)."""


def _tflite(job: dict[str, Any]) -> None:
    """TFLite's large-model form: every constant buffer after the flatbuffer in the same file,
    addressed by ``buffer_offset``/``buffer_size`` (a flatbuffer cannot exceed 2 GB; LiteRT reads
    the offsets). The converter then also skips its buffer de-duplication and metadata passes,
    which rebuild the whole model as Python objects."""
    from tfopt._tf import tf

    t = tf()
    converter = t.lite.TFLiteConverter.from_saved_model(job["savedmodel"], signature_keys=[SIGNATURE])
    converter._experimental_use_buffer_offset = True
    if job["precision"] in ("fp16", "dynamic"):
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    if job["precision"] == "fp16":
        converter.target_spec.supported_types = [t.float16]
    data = converter.convert()
    with open(job["out"], "wb") as f:
        f.write(data)


def _openvino(job: dict[str, Any]) -> None:
    """OpenVINO's TensorFlow frontend reads the SavedModel (variables included); ``dynamic`` is
    NNCF's INT8 weight compression, which covers a Gather's table as well as MatMul weights."""
    from tfopt._openvino import nncf, openvino
    from tfopt.emitters.openvino import _canonical_names

    ov = openvino()
    model = ov.convert_model(job["savedmodel"])
    if job["precision"] == "dynamic":
        model = nncf().compress_weights(model)
    _canonical_names(model)
    os.makedirs(job["out"])
    ov.save_model(model, os.path.join(job["out"], "model.xml"), compress_to_fp16=job["precision"] == "fp16")


def _onnx(job: dict[str, Any]) -> None:
    """tf2onnx's large-model mode: the frozen graph's big constants are kept out of the GraphDef
    (``compress_graph_def``) and out of the ModelProto (``ExternalTensorStorage``); they are written
    here into one data file beside the ``.onnx`` (8-byte aligned offsets), never into a protobuf."""
    import tf2onnx
    from tf2onnx import tf_loader

    from tfopt._tf import tf
    from tfopt.emitters.onnx_worker import _stable_hashes

    _stable_hashes(tf2onnx.graph.Node, tf2onnx.graph.Graph)  # reproducible output (see onnx_worker)
    if not hasattr(tf2onnx.graph.np, "product"):  # tf2onnx 1.17's large-model path calls NumPy 1's np.product
        tf2onnx.graph.np.product = tf2onnx.graph.np.prod  # (removed in NumPy 2): this child only
    tf2onnx.utils.INTERNAL_NAME = 1
    t = tf()
    imported = t.saved_model.load(job["savedmodel"])
    function = imported.signatures[SIGNATURE]
    inputs, outputs = _signature_tensors(function, job["inputs"], job["outputs"])
    rename = {**{tensor: name for name, tensor in inputs.items()}, **{tensor: name for name, tensor in outputs.items()}}
    ins, outs = list(inputs.values()), list(outputs.values())  # the caller's order, not the signature's
    with t.device("/cpu:0"):
        graph_def, tables = tf_loader.from_trackable(imported, function, ins, outs, True)
        del imported, function
        proto, storage = tf2onnx.convert._convert_common(
            graph_def, name=job["savedmodel"], opset=job["opset"], input_names=ins, output_names=outs,
            large_model=True, tensors_to_rename=rename, initialized_tables=tables)
    del graph_def
    float_path = job["out"] if job["precision"] == "fp32" else job["out"] + ".float.onnx"
    _save_external(proto, storage.name_to_tensor_data, float_path)
    del proto, storage
    if job["precision"] == "dynamic":
        _quantize_dynamic(float_path, job["out"])
    from tfopt.emitters.onnx_check import check_onnx_file

    check_onnx_file(job["out"], label=f"onnx {job['precision']} ({job['out']})")


def _signature_tensors(function: Any, input_names: list[str], output_names: list[str]) -> tuple[dict[str, str],
                                                                                                   dict[str, str]]:
    """``{name: graph tensor}`` for the signature's inputs and outputs, in the caller's order. A
    signature function's input placeholders carry the argument names; its outputs are a dict keyed
    by output name, flattened in key order into ``function.outputs`` (which is why outputs are
    paired by name, never by position)."""
    placeholders = {tensor.name.split(":")[0]: tensor.name for tensor in function.inputs
                    if tensor.dtype.name != "resource"}
    structured = function.structured_outputs
    if not isinstance(structured, dict):
        raise JobError(f"signature '{SIGNATURE}' returns {type(structured).__name__}, not a dict of named outputs")
    for kind, wanted, have in (("input", input_names, placeholders), ("output", output_names, structured)):
        missing = [n for n in wanted if n not in have]
        if missing:
            raise JobError(f"signature '{SIGNATURE}' has no {kind} named {', '.join(missing)}; its {kind}s are "
                           f"{', '.join(sorted(have))}")
    flat = dict(zip(sorted(structured), function.outputs))  # a signature's outputs: a flat dict
    return ({n: placeholders[n] for n in input_names}, {n: flat[n].name for n in output_names})


def _save_external(proto: Any, data: dict[str, bytes], path: str) -> None:
    """Write ``proto`` to ``path`` and every external tensor into ``path + ".data"``, one after
    another at 8-byte-aligned offsets; each tensor's ``external_data`` then names that file."""
    from onnx import TensorProto

    location = os.path.basename(path) + ".data"
    offset = 0
    with open(path + ".data", "wb") as f:
        for tensor in _initializers(proto.graph):
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            key = next(e.value for e in tensor.external_data if e.key == "location")
            blob = data.pop(key)  # released as it is written: the file holds it now
            f.write(b"\0" * (-offset % 8))
            offset += -offset % 8
            f.write(blob)
            del tensor.external_data[:]
            for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(blob)))):
                tensor.external_data.add(key=k, value=v)
            offset += len(blob)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString(deterministic=True))


def _initializers(graph: Any) -> Any:
    """Every initializer, in Loop/Scan/If bodies too (tf2onnx stores theirs externally alike)."""
    from tfopt.emitters.onnx_scopes import graphs

    for sub, _ in graphs(graph):
        yield from sub.initializer
        for node in sub.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t


def _quantize_dynamic(src: str, dst: str) -> None:
    """ONNX Runtime's dynamic quantization with tfopt's settings (:func:`~tfopt.emitters.onnx.quantization_settings`):
    a constant ``Gather`` table becomes int8 with a ``DequantizeLinear`` after the gather, MatMul
    weights int8; written with external data (the quantizer's ``use_external_data_format``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tfopt.emitters.onnx import quantization_settings

    settings = quantization_settings("dynamic") or {}
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, reduce_range=settings["reduce_range"],
                     use_external_data_format=True)
    for leftover in (src, src + ".data"):
        os.remove(leftover)


CONVERTERS = {"tflite": _tflite, "onnx": _onnx, "openvino": _openvino}


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        job = json.load(f)
    try:
        CONVERTERS[job["target"]](job)
    except Exception as exc:  # every converter's own exception types: one line for the parent
        message = " ".join(str(exc).split()) or type(exc).__name__
        with open(os.path.join(os.path.dirname(argv[0]), "error.txt"), "w") as f:
            f.write(f"{type(exc).__name__}: {message[:600]}" if not isinstance(exc, JobError) else message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
