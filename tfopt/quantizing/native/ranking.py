"""Per-layer quantization error, worst first, for every quantizing target.

Ranking is by *sensitivity*: each layer is quantized alone (every other layer kept in float
through the target's own mechanism, see :mod:`tfopt.quantizing.native.layer_targets`) and the model's first
output is compared with the float model's on the calibration samples:
``output_error = rmse(output - float output) / rms(float output)``. That answers "which layer did
it" directly. Alongside it, ``tensor_error`` compares each layer's own output tensor in the fully
quantized model with the float model's (ONNX, OpenVINO): where error appears and how it grows.
It cannot rank on its own: error made early flows into every later tensor.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.graph import Model, node_map
from tfopt.quantizing.native.layer_targets import LayerQuantizer, relative_error
from tfopt.terminal.progress import Step


@dataclass(frozen=True)
class Expected:
    """The original's first output over the samples, and its longest call (what a candidate's bound scales)."""

    values: np.ndarray
    seconds: float


def expected_outputs(model: Model, samples: Sequence[dict[str, Any]]) -> Expected:
    """The original's first output over ``samples``, each call held to the bound in force
    (:class:`tfopt.verification.deadline.BoundedReference`: a ``While`` stops at it, in TensorFlow)."""
    from tfopt.verification.verify import reference_runner

    original = reference_runner(model)
    bindings = model.bindings if model.reference is not None else {}
    name = model.outputs[0].name
    values = np.concatenate([np.asarray(original({**x, **bindings})[name]) for x in samples])
    return Expected(values, original.seconds)


def rank_layers(quantizer: LayerQuantizer, model: Model, samples: Sequence[dict[str, Any]],
                say: Callable[[Any], None] = lambda _m: None, expected: Expected | None = None) -> list[dict[str, Any]]:
    """``[{layer, op, output_error, tensor_error?, ...debugger stats}]``, worst first. ``expected``: the original's
    outputs on ``samples`` (:func:`expected_outputs`) when already run. Each candidate's call is held to the bound
    scaled by the original's time (:func:`tfopt.verification.deadline.bounded_runner`)."""
    from tfopt.verification.deadline import artifact_ends, bounded_runner

    expected = expected or expected_outputs(model, samples)
    name = model.outputs[0].name
    names = [row["layer"] for row in quantizer.layers]
    rows = []
    label = f"{quantizer.target} {quantizer.precision}: each layer quantized alone"
    with tempfile.TemporaryDirectory() as tmp:
        for i, layer in enumerate(quantizer.layers):
            say(Step(label, i + 1, len(names)))
            path = quantizer.build(os.path.join(tmp, f"alone{i}"), [n for n in names if n != layer["layer"]])
            runner = bounded_runner(quantizer.target, path, model, expected.seconds)
            try:
                got = np.concatenate([runner(x)[name] for x in samples])
            finally:
                runner.close()
            rows.append({"layer": layer["layer"], "op": layer["op"],
                         "output_error": relative_error(got, expected.values), **quantizer.stats.get(layer["layer"], {})})
        if quantizer.tensor_errors is not None and rows:
            every = quantizer.build(os.path.join(tmp, "all"), [])
            artifact_ends(quantizer.target, every, model, samples, expected.seconds)  # tensor_errors runs it in process
            errors = quantizer.tensor_errors(every)
            for row in rows:
                row["tensor_error"] = errors.get(row["layer"])
    return sorted(rows, key=lambda r: -r["output_error"])


def resolve_layers(quantizer: LayerQuantizer, names: Sequence[str], model: Model) -> list[str]:
    """Map user names to the target's layer names. A name may be the layer's own name, one of its
    aliases (TF tensor names, a TFLite fused ``a;b;c`` part), a ``/``-suffix of one
    (``dense_1/MatMul``), or any TF node the layer computes through (a Relu or BiasAdd after a
    MatMul: the first quantizable layer up its data inputs)."""
    from tfopt.errors import OptionError, did_you_mean

    nodes = node_map(model.graph_def)
    out: list[str] = []
    for name in names:
        match = _match(quantizer.layers, name)
        seen, frontier = {name}, [name]
        while not match and frontier:  # walk up the TF graph's data inputs, nearest first
            node = nodes.get(frontier.pop(0))
            for ref in (node.input if node is not None else []):
                parent = ref.split(":")[0].lstrip("^")
                if parent not in seen and not ref.startswith("^"):
                    seen.add(parent)
                    frontier.append(parent)
                    match = match or _match(quantizer.layers, parent)
        if not match:
            known = [row["layer"] for row in quantizer.layers]
            raise OptionError(f"--keep-float {name}: not a quantized layer of the {quantizer.target} "
                              f"{quantizer.precision} model.{did_you_mean(name, known)} Its layers: "
                              f"{', '.join(known[:8])}{' ...' if len(known) > 8 else ''}")
        out.extend(m for m in match if m not in out)
    return out


def _match(layers: Sequence[dict[str, Any]], name: str) -> list[str]:
    return [row["layer"] for row in layers
            if any(a == name or a.endswith("/" + name) or name.endswith("/" + a) for a in row["aliases"])]
