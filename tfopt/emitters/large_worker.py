"""The child process of :mod:`tfopt.emitters.large`: one converter on one large model, then exit.

Run as ``python -m tfopt.emitters.large_worker JOB.json``; the job names the target, the precision,
the model (a serving SavedModel; for ONNX also a frozen GraphDef with ``ImmutableConst`` tables and
their files), the output path and the input and output names. Exit 0 with the artifact written,
else 1 with one line in ``error.txt`` beside the job (the parent raises it).

TFLite's and OpenVINO's SavedModel importers read the table from the SavedModel's variables; for
ONNX the table's file is copied into the external data as it is, never loaded (:func:`convert_onnx`). No
GraphDef ever holds it; the child
exists so that what a converter allocates (and TensorFlow's allocator keeps) is returned to the
system when it ends, and the three targets' peaks do not add up in one process.

The same child runs TFLite's calibrating conversions of a graph that holds a loop (any size:
:mod:`tfopt.emitters.tflite_isolated`, converter ``tfopt.emitters.tflite:convert_job``), so that a crash in the
converter's native code is that target's typed error (the parent reads the signal), not tfopt's end.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from tfopt._user_code import import_recorded

SIGNATURE = "serving_default"


class JobError(Exception):
    """What the parent reports as the conversion's failure (one line)."""


def convert_tflite(job: dict[str, Any]) -> None:
    """TFLite's large-model form: every constant buffer after the flatbuffer in the same file,
    addressed by ``buffer_offset``/``buffer_size`` (a flatbuffer cannot exceed 2 GB; LiteRT reads
    the offsets). The converter then also skips its buffer de-duplication and metadata passes,
    which rebuild the whole model as Python objects."""
    from tfopt._tf import tf

    t = tf()
    converter = t.lite.TFLiteConverter.from_saved_model(job["saved_model"], signature_keys=[SIGNATURE])
    converter._experimental_use_buffer_offset = True
    if job["precision"] in ("fp16", "dynamic", "int8"):  # int8: the engine's fake quants give the ranges
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    if job["precision"] == "fp16":
        converter.target_spec.supported_types = [t.float16]
    if job["precision"] == "int8" and job.get("int8_io"):
        converter.inference_input_type = converter.inference_output_type = t.int8
    data = converter.convert()
    from tfopt.emitters.tflite_names import name_offset_outputs

    with open(job["out"], "wb") as f:
        for part in name_offset_outputs(data):  # output tensors named as the signature keys (the model's names)
            f.write(part)


def convert_openvino(job: dict[str, Any]) -> None:
    """OpenVINO's TensorFlow frontend reads the SavedModel (variables included); ``dynamic`` is
    NNCF's INT8 weight compression, which covers a Gather's table as well as MatMul weights."""
    from tfopt._openvino import nncf, openvino
    from tfopt.emitters.openvino import _canonical_names
    from tfopt.emitters.openvino_outputs import name_signature_ports
    from tfopt.emitters.openvino_precise import keep_integer_casts_precise

    ov = openvino()
    model = ov.convert_model(job["saved_model"])
    # the names the frozen-graph path gives: graph tensors beside signature keys, outputs of their own
    name_signature_ports(model, list(zip(job["inputs"], job.get("input_tensors") or job["inputs"])),
                         list(zip(job["outputs"], job.get("output_tensors") or job["outputs"])))
    if job["precision"] == "dynamic":
        model = nncf().compress_weights(model)
    _canonical_names(model)
    os.makedirs(job["out"])
    ov.save_model(model, os.path.join(job["out"], "model.xml"), compress_to_fp16=job["precision"] == "fp16")
    keep_integer_casts_precise(os.path.join(job["out"], "model.xml"))  # as the in-process emitter's IR


def convert_onnx(job: dict[str, Any]) -> None:
    """tf2onnx on a frozen graph with every big constant kept out of it: each is appended to the
    data file beside the ``.onnx`` and becomes a Placeholder, tf2onnx converts that small graph
    (its large-model mode puts any other constant over 1,024 values in the same file), and the
    placeholders' ONNX inputs become external initializers again. tf2onnx never holds a table:
    converting one in its large-model mode alone peaks at about 7 copies of it (measured: 0.9 GB
    over the imports for a 128 MB table).

    The frozen graph is either the pipeline's own (``job["graph"]``: a GraphDef whose large tensors
    are ``ImmutableConst`` nodes over raw files, :func:`_frozen_graph`), so TensorFlow never loads
    the table, or a serving SavedModel's signature frozen here (:func:`_frozen_savedmodel`)."""
    import tf2onnx

    from tfopt._tf import tf
    from tfopt.emitters.tf2onnx_hashes import stable_hashes

    stable_hashes(tf2onnx.graph.Node, tf2onnx.graph.Graph)  # reproducible output (see onnx_worker)
    _fresh_node_protos(tf2onnx.graph.Node)
    if not hasattr(tf2onnx.graph.np, "product"):  # tf2onnx 1.17's large-model path calls NumPy 1's np.product
        tf2onnx.graph.np.product = tf2onnx.graph.np.prod  # (removed in NumPy 2): this child only
    tf2onnx.utils.INTERNAL_NAME = 1
    float_path = job["out"] if job["precision"] == "fp32" else job["out"] + ".float.onnx"
    with tf().device("/cpu:0"), open(float_path + ".data", "wb") as data:
        source = _frozen_graph if "graph" in job else _frozen_savedmodel
        graph_def, tables, ins, outs, rename, streamed = source(job, data)
        streamed.update(_stream_out_constants(graph_def, data))
        proto, storage = tf2onnx.convert._convert_common(
            graph_def, name=job.get("saved_model", "model"), opset=job["opset"], input_names=ins + sorted(streamed),
            output_names=outs, large_model=True, tensors_to_rename=rename, initialized_tables=tables)
        del graph_def
        _inputs_to_initializers(proto.graph, streamed, os.path.basename(float_path) + ".data")
        _save_external(proto, storage.name_to_tensor_data, float_path, data)
    del proto, storage
    if job["precision"] == "dynamic":
        _quantize_dynamic(float_path, job["out"])
    from tfopt.emitters.onnx_check import check_onnx_file

    check_onnx_file(job["out"], label=f"onnx {job['precision']} ({job['out']})")


def _frozen_savedmodel(job: dict[str, Any], data: Any) -> tuple[Any, Any, list[str], list[str], dict[str, str],
                                                                dict[str, dict[str, Any]]]:
    """The serving SavedModel's signature, frozen by tf2onnx's loader (the variables are loaded)."""
    from tf2onnx import tf_loader

    from tfopt._tf import tf

    imported = tf().saved_model.load(job["saved_model"])
    function = imported.signatures[SIGNATURE]
    inputs, outputs = _signature_tensors(function, job["inputs"], job["outputs"])
    rename = {**{tensor: name for name, tensor in inputs.items()}, **{tensor: name for name, tensor in outputs.items()}}
    ins, outs = list(inputs.values()), list(outputs.values())  # the caller's order, not the signature's
    graph_def, tables = tf_loader.from_trackable(imported, function, ins, outs, True)
    return graph_def, tables, ins, outs, rename, {}


def _frozen_graph(job: dict[str, Any], data: Any) -> tuple[Any, Any, list[str], list[str], dict[str, str],
                                                            dict[str, dict[str, Any]]]:
    """The pipeline's frozen GraphDef, its ``ImmutableConst`` nodes streamed out (:func:`_stream_out_external`)."""
    from tfopt._tf import graph_def_class

    graph_def = graph_def_class()()
    with open(job["graph"], "rb") as f:
        graph_def.ParseFromString(f.read())
    tensors = {**dict(zip(job["input_tensors"], job["inputs"])), **dict(zip(job["output_tensors"], job["outputs"]))}
    streamed = _stream_out_external(graph_def, job["external"], data)
    return graph_def, None, list(job["input_tensors"]), list(job["output_tensors"]), tensors, streamed


def _stream_out_external(graph_def: Any, files: dict[str, str], data: Any) -> dict[str, dict[str, Any]]:
    """Append each ``ImmutableConst`` node's file (``files``: node name -> path) to ``data`` (8-byte
    aligned, :data:`COPY_CHUNK` at a time) and turn the node into a Placeholder of its dtype and
    shape. The file is the tensor's raw C-order bytes in the machine's order and ONNX external data
    is raw little-endian bytes in the same order, so the bytes are copied unchanged (on a
    little-endian machine; a big-endian one is refused)."""
    import shutil

    import numpy as np
    from onnx.helper import np_dtype_to_tensor_dtype

    from tfopt._tf import tf

    if sys.byteorder != "little":
        raise JobError("ONNX external data is little-endian: convert a model over 2 GB to onnx on a little-endian CPU")
    streamed = {}
    for node in graph_def.node:
        if node.op != "ImmutableConst":
            continue
        if node.name not in files:
            raise JobError(f"ImmutableConst node '{node.name}' has no external tensor file")
        dims = [d.size for d in node.attr["shape"].shape.dim]
        numpy_dtype = np.dtype(tf().dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype)
        length = int(np.prod(dims, dtype=np.int64)) * numpy_dtype.itemsize
        if os.path.getsize(files[node.name]) != length:
            raise JobError(f"{files[node.name]} holds {os.path.getsize(files[node.name])} bytes, not the "
                           f"{length} of node '{node.name}' ({numpy_dtype.name}{dims})")
        offset = _align(data)
        with open(files[node.name], "rb") as src:
            shutil.copyfileobj(src, data, COPY_CHUNK)
        streamed[f"{node.name}:0"] = {"dtype": np_dtype_to_tensor_dtype(numpy_dtype), "dims": dims,
                                      "offset": offset, "length": length}
        node.op = "Placeholder"  # it has the dtype and shape attributes a Placeholder takes already
        del node.attr["memory_region_name"]
    return streamed


def _align(data: Any) -> int:
    """Pad ``data`` with zeros to the next multiple of 8 bytes: the offset where a tensor starts."""
    offset = int(data.tell()) + (-data.tell() % 8)
    data.write(b"\0" * (offset - data.tell()))
    return offset


COPY_CHUNK = 16 << 20  # how much of an external tensor's file is in memory while it is copied
STREAMED_BYTES = 1 << 20  # a constant this big goes to the data file before tf2onnx sees the graph


def _stream_out_constants(graph_def: Any, data: Any) -> dict[str, dict[str, Any]]:
    """Append each big Const's bytes to ``data`` (8-byte aligned) and turn the node into a
    Placeholder of its dtype and shape: ``{"node:0": {dtype, dims, offset, length}}``."""
    import numpy as np
    from onnx.helper import np_dtype_to_tensor_dtype

    from tfopt._tf import tf

    streamed = {}
    for node in graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        if tensor is None or len(tensor.tensor_content) < STREAMED_BYTES:
            continue
        offset = _align(data)
        data.write(tensor.tensor_content)
        dims = [d.size for d in tensor.tensor_shape.dim]
        numpy_dtype = np.dtype(tf().dtypes.as_dtype(tensor.dtype).as_numpy_dtype)
        streamed[f"{node.name}:0"] = {"dtype": np_dtype_to_tensor_dtype(numpy_dtype),
                                      "dims": dims, "offset": offset, "length": len(tensor.tensor_content)}
        dtype, shape = tensor.dtype, tensor.tensor_shape
        node.op = "Placeholder"
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(shape)
        del node.attr["value"]
    return streamed


def _inputs_to_initializers(graph: Any, streamed: dict[str, dict[str, Any]], location: str) -> None:
    """The streamed constants' graph inputs become initializers whose data is in ``location``."""
    from onnx import TensorProto

    kept = [i for i in graph.input if i.name not in streamed]
    found = {i.name for i in graph.input} & set(streamed)
    if found != set(streamed):
        raise JobError(f"tf2onnx dropped the inputs {', '.join(sorted(set(streamed) - found))} standing for big constants")
    del graph.input[:]
    graph.input.extend(kept)
    for name in sorted(streamed):
        info = streamed[name]
        tensor = graph.initializer.add(name=name, data_type=info["dtype"], dims=info["dims"])
        tensor.data_location = TensorProto.EXTERNAL
        for key in ("location", "offset", "length"):
            tensor.external_data.add(key=key, value=location if key == "location" else str(info[key]))


def _fresh_node_protos(node_class: Any) -> None:
    """Rebuild each node's ``NodeProto`` on every ``update_proto`` instead of clearing it (this child only).

    Why: tf2onnx's optimizers call ``update_proto`` after each pass (13 passes x 3 iterations), which
    clears the node's attributes and appends them again. With the upb protobuf runtime a cleared
    sub-message stays in its parent's arena until the parent is freed, so each call left another
    copy of a Const's tensor behind: a 128 MB table grew the process by 128 MB per pass (4.3 GB
    after optimizing, measured), a 2.2 GB table ran out of any memory. A new NodeProto per call
    frees the old one with its arena: one copy at a time."""
    from onnx import NodeProto

    original = node_class.update_proto

    def update_proto(self: Any, external_tensor_storage: Any = None) -> None:
        old = self._op
        fresh = NodeProto(name=old.name, op_type=old.op_type, domain=old.domain, doc_string=old.doc_string)
        self._op = fresh
        del old
        original(self, external_tensor_storage)

    node_class.update_proto = update_proto


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


def _save_external(proto: Any, data: dict[str, bytes], path: str, out: Any) -> None:
    """Write ``proto`` to ``path`` and append every tensor tf2onnx stored externally to ``out``
    (``path + ".data"``), 8-byte aligned; each tensor's ``external_data`` then names that file."""
    from onnx import TensorProto

    location = os.path.basename(path) + ".data"
    for tensor in _initializers(proto.graph):
        if tensor.data_location != TensorProto.EXTERNAL or any(e.key == "offset" for e in tensor.external_data):
            continue  # not external, or one of the streamed constants (already in the file)
        key = next(e.value for e in tensor.external_data if e.key == "location")
        blob = data.pop(key)  # released as it is written: the file holds it now
        offset = _align(out)
        out.write(blob)
        del tensor.external_data[:]
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(blob)))):
            tensor.external_data.add(key=k, value=v)
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
    # the quantizer writes the data file through a private temporary file (mode 0600): give it
    # the model file's mode, so whoever may read the model may read its weights
    os.chmod(dst + ".data", os.stat(dst).st_mode & 0o777)
    for leftover in (src, src + ".data"):
        os.remove(leftover)


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        job = json.load(f)
    try:
        import_recorded(job.get("imports", ()))  # what the model's loading needed: its ops, its types
        module, _, function = job["converter"].partition(":")  # the target record's large_converter
        getattr(importlib.import_module(module), function)(job)
    except Exception as exc:  # every converter's own exception types: one line for the parent
        message = " ".join(str(exc).split()) or type(exc).__name__
        with open(os.path.join(os.path.dirname(argv[0]), "error.txt"), "w") as f:
            f.write(f"{type(exc).__name__}: {message[:600]}" if not isinstance(exc, JobError) else message)
        return 1
    return 0


if __name__ == "__main__":
    from tfopt._tf import tf

    tf()  # TensorFlow without Keras 3 (the converters read SavedModels and GraphDefs): a third of its import
    sys.exit(main(sys.argv[1:]))
