"""Write what ``tfopt debug reduce`` found so a converter's maintainers can reproduce it.

``OUT/`` holds:

- ``reduced.pb``: the reduced frozen GraphDef (placeholders where it was cut);
- ``inputs.npz``: the values TensorFlow computed for those placeholders (keys: their names);
- ``converter_call.txt``: the converter call, and the error it raised or the numbers it got wrong;
- ``repro.py``: loads the two files, makes the same converter call with the converter's own API
  (no tfopt import: TensorFlow and the converter are all it needs), runs the artifact, and prints
  ``REPRODUCED: ...`` and exits 1 when the problem shows (for ``mismatch``: the artifact's
  outputs against TensorFlow's, per output), ``NOT REPRODUCED`` and exits 0 otherwise;
- ``reduce.json``: the search (every trial, conversions, seconds) for tools.

The converter calls are the ones tfopt's emitters make (:mod:`tfopt.emitters`), minus tfopt's
own rewrites before tf2onnx (``Erfc`` lowered, weight fake quants as QDQ) and the renaming after
each converter, which change no op a reduced graph is likely to hold.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tfopt.debug.check import Check, outcome_dict
from tfopt.verification.nonfinite import to_json

TFLITE = '''
def convert_and_run(graph_def, feeds):
    """tf.lite.TFLiteConverter on the frozen graph as one concrete function (builtin ops only)."""
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    function = wrapped.prune([wrapped.graph.get_tensor_by_name(t) for t in INPUTS],
                             [wrapped.graph.get_tensor_by_name(t) for t in OUTPUTS])
    holder = tf.Module()
    holder.function = function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trackable_obj=holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
{precision}    flatbuffer = converter.convert()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    result = runner(**{{name.rsplit(":", 1)[0]: value for name, value in zip(INPUTS, feeds)}})
    return [result[f"output_{{i}}"] for i in range(len(OUTPUTS))]
'''

TFLITE_PRECISION = {
    "fp32": "",
    "fp16": "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "    converter.target_spec.supported_types = [tf.float16]\n",
    "dynamic": "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n",
    "int8": "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "    converter.representative_dataset = lambda: iter([feeds])  # calibrated on the real inputs\n",
    "int16x8": "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
               "    converter.representative_dataset = lambda: iter([feeds])\n"
               "    converter.target_spec.supported_ops = [\n"
               "        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,\n"
               "        tf.lite.OpsSet.TFLITE_BUILTINS]\n",
}

ONNX = '''
def convert_and_run(graph_def, feeds):
    """tf2onnx.convert.from_graph_def, then ONNX Runtime (CPU)."""
    import onnxruntime as ort
    import tf2onnx

    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=INPUTS, output_names=OUTPUTS, opset={opset})
{precision}    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(OUTPUTS, dict(zip(INPUTS, feeds)))
'''

_ONNX_STATIC = '''    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):  # calibrated on the real inputs
        def __init__(self):
            self.samples = iter([dict(zip(INPUTS, feeds))])

        def get_next(self):
            return next(self.samples, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quant.onnx")
        onnx.save_model(proto, src)
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.{activation}, weight_type=QuantType.QInt8, reduce_range={reduce})
        proto = onnx.load_model(dst)
'''

ONNX_PRECISION = {
    "fp32": "",
    "fp16": "    from onnxruntime.transformers.float16 import convert_float_to_float16\n\n"
            "    proto = convert_float_to_float16(proto, keep_io_types=True)\n",
    "dynamic": "    import tempfile\n\n    import onnx\n    from onnxruntime.quantization import QuantType, quantize_dynamic\n\n"
               "    with tempfile.TemporaryDirectory() as tmp:\n"
               "        src, dst = os.path.join(tmp, \"float.onnx\"), os.path.join(tmp, \"quant.onnx\")\n"
               "        onnx.save_model(proto, src)\n"
               "        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, reduce_range=True)\n"
               "        proto = onnx.load_model(dst)\n",
    "int8": _ONNX_STATIC.format(activation="QInt8", reduce="True"),
    "int16x8": _ONNX_STATIC.format(activation="QInt16", reduce="False"),
}

OPENVINO = '''
def convert_and_run(graph_def, feeds):
    """openvino.convert_model on reduced.pb, then the CPU plugin at f32 inference precision."""
    import tempfile

    import openvino as ov

    model = ov.convert_model(os.path.join(HERE, "reduced.pb"))
{precision}    with tempfile.TemporaryDirectory() as tmp:  # save and read back, as an IR on disk is what gets deployed
        xml = os.path.join(tmp, "model.xml")
        ov.save_model(model, xml, compress_to_fp16={fp16})
        core = ov.Core()
        compiled = core.compile_model(core.read_model(xml), "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})
    result = compiled(dict(zip(INPUTS, feeds)))
    return [result[compiled.output(name)] for name in OUTPUTS]
'''

OPENVINO_PRECISION = {
    "fp32": "", "fp16": "",
    "dynamic": "    import nncf\n\n    model = nncf.compress_weights(model)\n",
    "int8": "    import nncf  # calibrated on the real inputs\n\n"
            "    model = nncf.quantize(model, nncf.Dataset([feeds], lambda sample: sample), subset_size=1)\n",
}

SCRIPT = '''"""Reproduce a {converter} problem that `tfopt debug reduce` found ({check}, {precision}).

Needs only {needs}. Run: python repro.py
It loads reduced.pb and inputs.npz (the values TensorFlow computed where the graph was cut),
converts as tfopt did, runs the artifact and {what}.
Exit 1 and "REPRODUCED": the problem shows; exit 0: it does not.
"""

import os
import sys

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = {inputs!r}
OUTPUTS = {outputs!r}
CHECK = {check_kind!r}
TOL = {tol!r}  # mismatch: max|artifact - tensorflow| / max|tensorflow|, per output
EXPECTED_ERROR = {expected!r}  # what tfopt saw


def load():
    graph_def = tf.compat.v1.GraphDef()
    with open(os.path.join(HERE, "reduced.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    with np.load(os.path.join(HERE, "inputs.npz")) as data:
        feeds = [data[name.rsplit(":", 1)[0]] for name in INPUTS]
    return graph_def, feeds


def tensorflow_outputs(graph_def, feeds):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(OUTPUTS, dict(zip(INPUTS, feeds)))

{convert}

def first_line(exc):
    """The message's first line, and its first line that names an error if that is another."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if line.startswith("--") or "error" in line.lower()]
    shown = lines[:1] + [line for line in telling[:1] if line not in lines[:1]]
    return " | ".join(line[:300] for line in shown)


def relative_error(got, expected):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return float("inf")
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    diff = np.where(same, 0.0, np.abs(got - expected))
    if not np.all(np.isfinite(diff)):
        return float("inf")
    finite = np.abs(expected[np.isfinite(expected)])
    return float(diff.max(initial=0.0)) / max(float(finite.max(initial=0.0)), 1e-12)


def main():
    graph_def, feeds = load()
    try:
        got = convert_and_run(graph_def, feeds)
    except Exception as exc:  # the converter or the runtime raised
        print(f"{{'REPRODUCED' if CHECK == 'fails' else 'NOT REPRODUCED (it raised instead)'}}: "
              f"{{type(exc).__name__}}: {{first_line(exc)}}")
        return 1 if CHECK == "fails" else 0
    if CHECK == "fails":
        print("NOT REPRODUCED: converted and ran without an error")
        return 0
    worst = 0.0
    for name, value, reference in zip(OUTPUTS, got, tensorflow_outputs(graph_def, feeds)):
        error = relative_error(value, reference)
        worst = max(worst, error)
        print(f"{{name}}: max abs error {{error:.3g}} of the output's scale "
              f"(artifact max {{np.nanmax(np.abs(value)):.4g}}, TensorFlow max {{np.nanmax(np.abs(reference)):.4g}})")
    print(f"{{'REPRODUCED' if worst > TOL else 'NOT REPRODUCED'}}: worst error {{worst:.3g}} (TOL {{TOL:g}})")
    return 1 if worst > TOL else 0


if __name__ == "__main__":
    sys.exit(main())
'''

def tflite_repro(precision: str) -> tuple[str, str]:
    """What a TFLite ``repro.py`` needs installed, and its ``convert_and_run`` at ``precision``."""
    return "TensorFlow (and ai-edge-litert, or tf.lite.Interpreter)", TFLITE.format(precision=TFLITE_PRECISION[precision])


def onnx_repro(precision: str) -> tuple[str, str]:
    """What an ONNX ``repro.py`` needs installed, and its ``convert_and_run`` at ``precision``."""
    from tfopt.emitters.onnx import DEFAULT_OPSET

    return ("TensorFlow, tf2onnx and onnxruntime",
            ONNX.format(opset=DEFAULT_OPSET, precision=ONNX_PRECISION[precision]))


def openvino_repro(precision: str) -> tuple[str, str]:
    """What an OpenVINO ``repro.py`` needs installed, and its ``convert_and_run`` at ``precision``."""
    return ("TensorFlow (for the inputs and the reference), openvino (and nncf for int8/dynamic)",
            OPENVINO.format(precision=OPENVINO_PRECISION[precision], fp16=precision == "fp16"))


def converter_source(target: str, precision: str) -> str:
    """The ``convert_and_run`` function repro.py holds for ``target`` at ``precision`` (its record's ``repro``)."""
    return _repro(target, precision)[1]


def _repro(target: str, precision: str) -> tuple[str, str]:
    from tfopt.targets import TABLE

    record = TABLE.get(target)
    if record is None or record.repro is None:
        raise ValueError(f"no repro for target {target!r}")
    needs_and_source: tuple[str, str] = record.call("repro", precision)
    return needs_and_source


def repro_script(result: Any, target: str, precision: str, check: Check) -> str:
    """The text of ``repro.py`` for a :class:`tfopt.debug.reduce.ReduceResult`."""
    from tfopt.targets import TABLE

    model = result.cut.model
    what = ("prints the error it raises" if check.kind == "fails"
            else "compares its outputs with TensorFlow's on the same inputs")
    needs, source = _repro(target, precision)
    return SCRIPT.format(converter=TABLE[target].converter, check=check.describe(), precision=precision,
                         needs=needs, what=what, inputs=[s.tensor for s in model.inputs],
                         outputs=[s.tensor for s in model.outputs], check_kind=check.kind, tol=check.tol,
                         expected=result.outcome.describe(), convert=source)


def converter_call(result: Any, target: str, precision: str, check: Check) -> str:
    """The text of ``converter_call.txt``: the call, and what it gave."""
    model, outcome = result.cut.model, result.outcome
    lines = [f"target {target}, precision {precision}, check {check.describe()}",
             f"graph  reduced.pb: {len(result.cut.kept)} op(s) kept of {result.ops_before}: {', '.join(result.cut.kept)}",
             "inputs " + ", ".join(f"{s.tensor} {s.dtype}{list(s.shape or ())}" for s in model.inputs)
             + "  (inputs.npz: TensorFlow's values there)",
             "outputs " + ", ".join(s.tensor for s in model.outputs), "",
             "the call (as in repro.py):", converter_source(target, precision).strip(), ""]
    if outcome.raised:
        lines += [f"it fails at {outcome.stage}: {outcome.error_type}: {outcome.message}", "", "full message:",
                  outcome.detail]
    else:
        lines += [f"it runs, but its outputs differ from TensorFlow's by more than TOL {check.tol:g} of their scale:"]
        lines += [f"  {name}: {error:.4g}" for name, error in outcome.errors]
    lines += ["", f"the full model gave: {result.reference.describe()}"]
    return "\n".join(lines) + "\n"


def write_repro(result: Any, out: str, target: str, precision: str, check: Check) -> None:
    """Write ``OUT/`` (files in the module docstring) atomically: all of it or nothing."""
    from tfopt._io import atomic_path

    model = result.cut.model
    with atomic_path(out, directory=True) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "reduced.pb"), "wb") as f:
            f.write(model.graph_def.SerializeToString(deterministic=True))
        np.savez(os.path.join(tmp, "inputs.npz"), **{s.name: result.cut.feeds[s.name] for s in model.inputs})
        with open(os.path.join(tmp, "converter_call.txt"), "w") as f:
            f.write(converter_call(result, target, precision, check))
        with open(os.path.join(tmp, "repro.py"), "w") as f:
            f.write(repro_script(result, target, precision, check))
        with open(os.path.join(tmp, "reduce.json"), "w") as f:
            json.dump(to_json(summary(result, target, precision, check)), f, indent=2, default=str, allow_nan=False)


def summary(result: Any, target: str, precision: str, check: Check) -> dict[str, Any]:
    """``reduce.json``: what was searched, what was found, every trial."""
    return {"target": target, "precision": precision, "check": check.describe(), "ops_before": result.ops_before,
            "ops_after": len(result.cut.kept), "kept": list(result.cut.kept), "conversions": result.conversions,
            "seconds": round(result.seconds, 2), "complete": result.complete,
            "reference": outcome_dict(result.reference), "outcome": outcome_dict(result.outcome),
            "steps": [{"phase": s.phase, "ops": s.ops, "reproduced": s.reproduced, "seconds": round(s.seconds, 3),
                       "outcome": s.outcome} for s in result.steps]}
