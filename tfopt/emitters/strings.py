"""String tensors a target's converter cannot express, named before the converter runs.

A string lookup table made constant (:mod:`tfopt.graphdef.tables`) compares the string input with the
table's keys (``Equal`` on ``tf.string``). TFLite has string ``EQUAL`` and ``GATHER``. OpenVINO's CPU
plugin has no string tensors: its converter accepts the graph and the runtime then refuses the input
("Unsupported data type: object"). tf2onnx converts ``Equal`` on strings by casting both sides to
integers (ONNX ``Equal`` takes strings only from opset 19, past tf2onnx's 18), an artifact that stops
in ONNX Runtime ("stoll"). Each case is a :class:`~tfopt.errors.ConversionError` naming the target,
the op and the string tensor, with what to do instead.
"""

from __future__ import annotations

from tfopt.errors import ConversionError
from tfopt.graph import Model

_DT_STRING = 7
_ONNX_CASTS = frozenset({"Equal", "NotEqual"})  # tf2onnx's handler casts string operands to int32


def _nodes(model: Model) -> list:
    return [*model.graph_def.node, *(n for f in model.graph_def.library.function for n in f.node_def)]


def check_string_compares(model: Model) -> None:
    """For tf2onnx: raise when ``model`` compares strings (tf2onnx casts them to integers)."""
    bad = next((n for n in _nodes(model) if n.op in _ONNX_CASTS and n.attr["T"].type == _DT_STRING), None)
    if bad is not None:
        raise ConversionError(
            f"onnx: {bad.op} '{bad.name}' compares strings, which tf2onnx converts by casting them to integers "
            "(ONNX Equal takes strings only from opset 19; a string lookup table made constant compares too). "
            "Convert to tflite, or feed the looked-up ids instead of the strings")


def check_no_strings(model: Model, target: str) -> None:
    """For a runtime without string tensors (OpenVINO): raise when ``model`` takes or computes any;
    ``target`` names it in the message."""
    strings = [s.name for s in model.inputs if s.dtype == "string"]
    reader = next((n for n in _nodes(model) if n.op not in ("Const", "Placeholder", "Identity")
                   and any(n.attr[k].type == _DT_STRING for k in ("T", "Tin", "Tparams", "dtype") if k in n.attr)),
                  None)
    if strings or reader is not None:
        what = f"input {', '.join(repr(s) for s in strings)} is tf.string" if strings else \
            f"{reader.op} '{reader.name}' computes on tf.string"  # type: ignore[union-attr]
        raise ConversionError(f"{target}: {what}, and OpenVINO has no string tensors. Convert to tflite, or feed "
                              "the ids a string lookup would give instead of the strings")
