"""The model's output names on a ``.tflite``'s outputs: its signature's keys and its tensors.

The converter takes the frozen graph as one concrete function returning a flat list and goes through a
temporary SavedModel (:mod:`tfopt.emitters.tflite_saved`); the SavedModel's signature names that list's
entries ``output_0``, ``output_1``..., and its signature wrapper calls the function, so every output
tensor of the flatbuffer is ``PartitionedCall:i`` whatever the model calls it (every model, every
loader: a Keras 2 ``.h5`` with two ``Lambda`` heads as much as a frozen ``.pb``). ONNX and OpenVINO
carry the model's output names; a deployer reading a ``.tflite`` through LiteRT
(``get_signature_runner()``'s output keys, ``get_output_details()``'s names) saw positions.

:func:`name_outputs` renames after conversion, in every precision and path (keep-float int8 too):

    signature output ``output_i`` -> the model's i-th output name (its key in the runner's dict)
    the tensor it points at       -> the same name (unless it is also an input, or an earlier output's)

The flatbuffer is rebuilt through the schema's object API, as the converter's own last passes
(buffer de-duplication, metadata) rebuild it.

A model past ``--external-threshold`` is converted from its serving SavedModel, whose signature keys are
already the model's output names (:mod:`tfopt.emitters.large_worker`), in TFLite's large-model form:
every constant buffer after the flatbuffer, addressed by ``Buffer.offset`` / ``Buffer.size`` from the start
of the file (and ``Operator.large_custom_options_offset`` likewise), 16-byte aligned, the metadata
``buffer_location: outside flatbuffers`` marking the form. :func:`name_offset_outputs` names each output
tensor by its signature key there: the flatbuffer alone is rebuilt (the buffers hold no data in it), the
appended data is kept byte for byte and moved by the change of the flatbuffer's length, rounded to 16,
and every offset is moved by the same amount (a 64-bit field is written either way, so the rebuilt
flatbuffer's length does not depend on the offsets' values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_POSITION = re.compile(r"output_(\d+)")


def name_outputs(data: bytes, names: Sequence[str]) -> bytes:
    """``data`` (a ``.tflite`` of one signature whose outputs are ``output_0..n-1``, the model's order)
    with each output's signature key and tensor named ``names[i]``; unchanged when the signature is
    not that (already named, or not one signature)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.util import _convert_model_from_object_to_bytearray

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    signatures = model.signatureDefs or []
    if len(signatures) != 1 or not signatures[0].outputs:
        return data
    signature = signatures[0]
    positions = [_POSITION.fullmatch(_text(out.name)) for out in signature.outputs]
    if sorted(int(m.group(1)) for m in positions if m) != list(range(len(names))) or len(positions) != len(names):
        return data
    ordered = sorted(zip(signature.outputs, positions), key=lambda pair: int(pair[1].group(1)))  # type: ignore[union-attr]
    for out, match in ordered:
        out.name = names[int(match.group(1))].encode()  # type: ignore[union-attr]
    _name_tensors(model, [out for out, _ in ordered])
    return bytes(_convert_model_from_object_to_bytearray(model))


def _name_tensors(model: Any, outputs: Sequence[Any]) -> bool:
    """Name each signature output's tensor (``outputs``, in the model's order) by its key, unless it is
    an input's (a pass-through keeps the input's name) or an earlier output's; whether a name changed."""
    subgraph = model.subgraphs[model.signatureDefs[0].subgraphIndex]
    inputs = set(subgraph.inputs if subgraph.inputs is not None else [])
    named: set[int] = set()
    changed = False
    for out in outputs:
        if out.tensorIndex not in inputs and out.tensorIndex not in named:
            changed |= subgraph.tensors[out.tensorIndex].name != out.name
            subgraph.tensors[out.tensorIndex].name = out.name
            named.add(out.tensorIndex)
    return changed


ALIGNMENT = 16  # of the data appended after the flatbuffer (TFLite's exporter aligns to 16)


def name_offset_outputs(data: bytes) -> list[bytes | memoryview]:
    """The parts of ``data`` (a ``.tflite`` in the large-model form, one signature whose output keys are the
    model's output names) to write in order, with each output tensor named by its key (module
    docstring); ``[data]`` when it is not that form or nothing changes."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.util import _convert_model_from_object_to_bytearray

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    signatures = model.signatureDefs or []
    if len(signatures) != 1 or not signatures[0].outputs:
        return [data]
    if not _name_tensors(model, signatures[0].outputs):
        return [data]
    offsets = _offset_holders(model)
    if not offsets:  # no appended data: the ordinary form
        return [bytes(_convert_model_from_object_to_bytearray(model))]
    start = min(getattr(holder, field) for holder, field in offsets)
    head = bytes(_convert_model_from_object_to_bytearray(model))
    shift = _aligned(len(head)) - start
    for holder, field in offsets:
        setattr(holder, field, getattr(holder, field) + shift)
    head = bytes(_convert_model_from_object_to_bytearray(model))
    if _aligned(len(head)) - start != shift:  # a 64-bit field has one length whatever its value
        raise ValueError("the rebuilt TFLite flatbuffer changed length with its buffer offsets")
    return [head, bytes(_aligned(len(head)) - len(head)), memoryview(data)[start:]]


def _offset_holders(model: Any) -> list[tuple[Any, str]]:
    """``(object, field)`` of every absolute offset of data appended after the flatbuffer (0 and 1 are
    TFLite's sentinels, not offsets)."""
    holders: list[tuple[Any, str]] = [(b, "offset") for b in model.buffers or [] if b.offset > 1]
    for subgraph in model.subgraphs or []:
        holders += [(op, "largeCustomOptionsOffset") for op in subgraph.operators or []
                    if op.largeCustomOptionsOffset > 1]
    return holders


def _aligned(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
