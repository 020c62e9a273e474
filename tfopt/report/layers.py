"""Per-layer quantization error, worst first, and the keep-float search built on it.

Ranking is by *sensitivity*: each layer is quantized alone (every other layer kept in float,
through the TFLite converter's own QuantizationDebugger denylist) and the model's output error is
measured, ``rmse(output) / rms(float output)``. That answers "which layer did it" directly. The
debugger's per-tensor statistics are kept too (``error_in_steps = sqrt(mse) / scale``), but they
cannot rank: a layer whose outlier weights blow up its range also gets coarse steps, so its error
*in steps* looks small while its output is ruined.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from tfopt.graph import Model


def tflite_debugger(model: Model, calibration: Sequence[dict[str, Any]], keep_float: Sequence[str] = ()) -> Any:
    """A QuantizationDebugger over the full-int8 conversion of ``model`` (``keep_float`` denylisted)."""
    from tfopt._tf import tf
    from tfopt.runtimes.tensorflow import concrete_function

    t = tf()
    function = concrete_function(model)
    holder = t.Module()
    holder.function = function
    converter = t.lite.TFLiteConverter.from_concrete_functions([function], trackable_obj=holder)
    converter.optimizations = [t.lite.Optimize.DEFAULT]

    def dataset() -> Any:
        return ([sample[s.name] for s in model.inputs] for sample in calibration)

    converter.representative_dataset = dataset
    options = t.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float)) if keep_float else None
    return t.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset, debug_options=options)


def tflite_layer_errors(model: Model, calibration: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{layer, op, output_error, error_in_steps, mse, max_abs_error}]`` per quantized layer, worst first."""
    import os
    import tempfile

    import numpy as np

    from tfopt.runtimes.tflite import TFLiteRunner
    from tfopt.verify import reference_runner

    debugger = tflite_debugger(model, calibration)
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        mse, scale = float(row["mean_squared_error"]), float(row["scale"] or 0)
        rows.append({"layer": row["tensor_name"], "op": row["op_name"],
                     "error_in_steps": math.sqrt(mse) / scale if scale else 0.0, "mse": mse,
                     "max_abs_error": float(row["max_abs_error"])})
    original = reference_runner(model)
    bindings = model.bindings if model.reference is not None else {}
    name = model.outputs[0].name
    expected = np.concatenate([np.asarray(original({**x, **bindings})[name]) for x in calibration])
    scale_ref = float(np.sqrt(np.mean(expected.astype(np.float64) ** 2))) or 1.0
    layers: list[str] = [str(r["layer"]) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            others = [layer for layer in layers if layer != row["layer"]]
            path = os.path.join(tmp, "alone.tflite")
            with open(path, "wb") as f:
                f.write(tflite_debugger(model, calibration, others).get_nondebug_quantized_model())
            runner = TFLiteRunner(path, model.inputs, model.outputs)
            got = np.concatenate([runner(x)[name] for x in calibration])
            row["output_error"] = float(np.sqrt(np.mean((got - expected) ** 2))) / scale_ref
    return sorted(rows, key=lambda r: -r["output_error"])


def resolve_tflite_layers(names: Sequence[str], ranking: Sequence[dict[str, Any]]) -> list[str]:
    """Map user names (a TF node name, or TFLite's fused ``a;b;c`` tensor name) to TFLite names."""
    from tfopt.errors import OptionError, did_you_mean

    known = [r["layer"] for r in ranking]
    out: list[str] = []
    for name in names:
        match = [k for k in known if k == name or name in k.split(";")]
        if not match:
            raise OptionError(f"--keep-float {name}: not a quantized layer.{did_you_mean(name, known)} "
                              f"Layers, worst first: {', '.join(known[:8])}")
        out.extend(m for m in match if m not in out)
    return out
