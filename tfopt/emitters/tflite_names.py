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
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
    subgraph = model.subgraphs[signature.subgraphIndex]
    inputs = set(subgraph.inputs if subgraph.inputs is not None else [])
    named: set[int] = set()
    for out, match in sorted(zip(signature.outputs, positions), key=lambda pair: int(pair[1].group(1))):  # type: ignore[union-attr]
        name = names[int(match.group(1))]  # type: ignore[union-attr]
        out.name = name.encode()
        if out.tensorIndex not in inputs and out.tensorIndex not in named:  # a pass-through keeps the input's name
            subgraph.tensors[out.tensorIndex].name = name.encode()
            named.add(out.tensorIndex)
    return bytes(_convert_model_from_object_to_bytearray(model))


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
