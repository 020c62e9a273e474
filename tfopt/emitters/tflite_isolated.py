"""TFLite's calibrating conversions of a graph that holds a loop, run in a child process.

Why: TFLite's own calibration (``int8`` and ``int16x8`` from calibration data, and the keep-float build,
which calibrates too) runs the graph in the converter's native code, and on a ``tf.while_loop`` it can crash
the process: in TensorFlow 2.21 a loop whose counter is a float compared with a float trip count
(``i < n``, ``i + 1.0``) ends the converting process with SIGSEGV (the same loop counting in int32
calibrates, and fp32 converts). A crash in tfopt's own process takes every target with it and leaves no
error, no report. In the child it is a :class:`~tfopt.errors.ConverterCrashError` for that target and
precision alone, naming the signal, the likely cause and the fix; the other targets are written and
verified (``tfopt convert`` exits 11), and the failed target's file is never half-written (the child
writes a temporary path that is renamed only after it exits cleanly).

Which conversions: only calibrating ones of a graph that holds a loop (``While``/``StatelessWhile`` in the
graph or its function library, or a TF1 loop's frame ops). The child is the large-model path's
(:func:`tfopt.emitters.large.run_converter_child`), which starts an interpreter, imports TensorFlow and traces
the model again: a tiny looping model's TFLite int8 took 10-12 s instead of 1.4 s (measured here, 2 shared cores),
which a conversion that cannot loop does not pay (no crash of TFLite's calibrator without a loop is known). The
native keep-float search's ranking runs TFLite's QuantizationDebugger, a Python object that cannot leave the
process: :func:`check_calibrates` calibrates the same model in a child first.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from tfopt.graph import LOOP_OPS, Model

CALIBRATING = ("int8", "int16x8")  # the precisions whose conversion runs the graph on calibration data


def isolated(model: Model, precision: str, calibration: Sequence[Any] | None, *, quantization_aware: bool) -> bool:
    """Whether this conversion goes to a child: it calibrates (``precision`` in :data:`CALIBRATING`, with data,
    not from a quantization-aware model's own ranges) a graph that holds a loop."""
    return precision in CALIBRATING and bool(calibration) and not quantization_aware and holds_loop(model.graph_def)


def holds_loop(graph_def: Any) -> bool:
    """A loop op (:data:`tfopt.graph.LOOP_OPS`) in the graph or in any function of its library."""
    if any(n.op in LOOP_OPS for n in graph_def.node):
        return True
    return any(n.op in LOOP_OPS for f in graph_def.library.function for n in f.node_def)


def emit_in_child(model: Model, path: str, *, precision: str, calibration: Sequence[dict[str, Any]],
                  options: dict[str, Any]) -> str:
    """Write ``path`` as :func:`tfopt.emitters.tflite.emit_tflite` does (``options``: its keyword flags), the
    conversion made in a child process; what the child's lowerings rewrote is recorded here as in process
    (:mod:`tfopt.emitters.rewrite_record`).

    Raises:
        ConverterCrashError: the converter crashed (the child was killed by a signal): the target, the
            precision, the signal, the loop as the likely cause, and the fix.
        ConversionError: the converter refused the model (its message, as in process).
    """
    import json

    import numpy as np

    from tfopt._io import atomic_path
    from tfopt._user_code import PROVENANCE_KEY
    from tfopt.emitters.large import run_converter_child
    from tfopt.emitters.rewrite_record import record_rewrites

    work = tempfile.mkdtemp(prefix="tfopt-tflite-child-")
    try:
        graph = os.path.join(work, "graph.pb")
        with open(graph, "wb") as f:
            f.write(model.graph_def.SerializeToString(deterministic=True))
        samples = os.path.join(work, "calibration.npz")
        arrays: dict[str, Any] = {f"{i}_{j}": np.asarray(sample[s.name])
                                  for i, sample in enumerate(calibration) for j, s in enumerate(model.inputs)}
        np.savez(samples, **arrays)
        job = {"converter": "tfopt.emitters.tflite:convert_job", "graph": graph, "calibration": samples,
               "samples": len(calibration), "precision": precision, "options": dict(options),
               "inputs": [dataclasses.asdict(s) for s in model.inputs],
               "outputs": [dataclasses.asdict(s) for s in model.outputs],
               "imports": model.provenance.get(PROVENANCE_KEY, []), "rewrites": os.path.join(work, "rewrites.json")}
        with atomic_path(path) as tmp:
            run_converter_child({**job, "out": tmp}, label=f"converting to tflite {precision}",
                                crash_hint=_crash_hint(precision))
        with open(job["rewrites"]) as f:  # the child wrote it once converted (tfopt.emitters.tflite.convert_job)
            record_rewrites(json.load(f))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def check_calibrates(model: Model, calibration: Sequence[dict[str, Any]]) -> None:
    """Before TFLite's QuantizationDebugger calibrates ``model`` in this process (the native keep-float search's
    per-layer ranking: the debugger is a Python object, it cannot run in a child), calibrate the same model on the
    same samples in a child, where the graph holds a loop: a crash there is the search's error, not this process's
    end. The file is thrown away.

    Raises:
        ConverterCrashError: TFLite's calibration crashed (see :func:`emit_in_child`).
    """
    if not holds_loop(model.graph_def):
        return
    work = tempfile.mkdtemp(prefix="tfopt-tflite-probe-")
    try:
        emit_in_child(model, os.path.join(work, "probe.tflite"), precision="int8", calibration=calibration, options={})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _crash_hint(precision: str) -> str:
    """The likely cause of a crash while TFLite calibrates a graph with a loop, and the way out."""
    instead = ("--quantizer tfopt (tfopt's int8 engine, the default: its ranges come from TensorFlow's own runs, "
               "and TFLite converts without calibrating)" if precision == "int8" else
               "another precision for tflite (tfopt's int8 engine builds int8 without TFLite's calibrator)")
    return (f"the graph holds a loop (tf.while_loop), and TFLite's own calibration crashes on some loops (in "
            f"TensorFlow 2.21: a loop counter that is a float compared with a float trip count). Use {instead}, "
            f"count the loop in int32, or leave {precision} out for tflite (--quantize)")
