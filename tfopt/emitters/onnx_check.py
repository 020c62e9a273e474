"""Every ``.onnx`` tfopt writes is a valid model that ONNX Runtime loads, checked before it is published.

tfopt rewrites what tf2onnx writes (canonical names, weight QDQ folding, ORT fast paths) and hands
it to ONNX Runtime's quantizers; a rewrite that forgets a Loop body leaves a file that tf2onnx
itself would have written correctly, and the user learns it only when the runtime refuses it. So
the emitter checks its own output, twice: ONNX's checker with ``full_check`` (single assignment
across subgraphs, topological order in each, strict shape inference) and an ONNX Runtime session
(graph optimisations off: the check is that the runtime accepts the graph, not its fusions).
"""

from __future__ import annotations

import logging
from typing import Any

from tfopt.errors import ConversionError

log = logging.getLogger(__name__)


def check_onnx_file(path: str, *, label: str) -> None:
    """Raise unless ``path`` passes ``onnx.checker.check_model(full_check=True)`` and loads in ONNX Runtime.

    Args:
        path: the ``.onnx`` (with its external data beside it, if any).
        label: what the file is, for the message (``"onnx fp32"``).

    Raises:
        ConversionError: naming the file, the check that failed and its message.
    """
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(_without_unranked_outputs(path), full_check=True)
    except Exception as exc:  # onnx's ValidationError / InferenceError: one message either way
        raise ConversionError(_message(label, "ONNX's checker (full_check)", exc) + _unknown_rank(path)) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ConversionError(_message(label, "ONNX Runtime", exc)) from None


def _without_unranked_outputs(path: str) -> Any:
    """What ONNX's checker reads: the file itself, or, when some graph outputs have no rank (an
    output whose rank depends on the data: tf2onnx's ``If`` of branches of different ranks), the
    model without those outputs' declarations. The checker requires a shape on every interface
    value, ONNX Runtime does not, and every node (the ones producing those outputs too) is still
    checked. Inputs of unknown rank stay an error: the user can give their shapes."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return path  # the checker reads external data by path only: the file as written
    unranked = [v.name for v in model.graph.output
                if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    if not unranked:
        return model  # loaded once: the checker takes the proto
    log.warning("%s: output %s has no rank in the ONNX file (it depends on the data); ONNX Runtime runs it, "
                "and tools that need a rank on every output will not", path, ", ".join(unranked))
    kept = [v for v in model.graph.output if v.name not in unranked]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return model


def _unknown_rank(path: str) -> str:
    """What to do when the file's interface has a tensor of unknown rank: ONNX requires a shape (a
    rank) on the main graph's inputs and outputs, and no shape means a rank nobody knows — tf2onnx
    writes such a file itself when TensorFlow cannot tell the rank (a ``tf.squeeze`` without axes on
    a shape with unknown dimensions, a ``Reshape`` to a computed shape)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    names = [v.name for v in [*graph.input, *graph.output]
             if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    if not names:
        return ""
    return (f" (of unknown rank in the graph: {', '.join(names)}; give the inputs' shapes with --inputs NAME:SHAPE, "
            "or give the op that loses the rank, e.g. a tf.squeeze, its axis)")


def _message(label: str, check: str, exc: Exception) -> str:
    first = " ".join(str(exc).split())[:400]
    return (f"{label}: the written model fails {check}: {first}. This is a tfopt bug (tf2onnx's own file may load): "
            "report it with the model; meanwhile leave onnx out of --to or try another --opset")
