"""TFLite, ONNX and OpenVINO artifacts of a model over 2 GB, from its serving SavedModel (ONNX also
from its frozen graph: :func:`emit_onnx_from_graph`, what ``tfopt convert`` uses).

A GraphDef (protobuf) cannot hold 2 GB, so a large model reaches the emitters as a TF2 SavedModel
whose large tensors are ``tf.Variable`` s (:func:`tfopt.external.write_serving_savedmodel`), and
each converter reads them from the checkpoint itself:

=========  ===============================================  ============================================
target     artifact                                         large-model form
=========  ===============================================  ============================================
tflite     ``model.tflite``                                 buffers after the flatbuffer, addressed by
                                                            offset (``_experimental_use_buffer_offset``)
onnx       ``model.onnx`` + ``model.onnx.data``             ONNX external data (tf2onnx's large-model
                                                            mode), checked by path (checker + ORT)
openvino   directory: ``model.xml`` + ``model.bin``         the ``.bin`` has no size limit
=========  ===============================================  ============================================

Precisions: ``fp32``; ``fp16`` (tflite, openvino); ``dynamic`` (int8 weights, float activations)
in all three, and each gathers rows straight from an int8 table: TFLite's ``GATHER`` on int8 then
``DEQUANTIZE``, ONNX Runtime's ``Gather`` on int8 then ``DequantizeLinear`` (per-tensor scale), OpenVINO's
INT8 weight compression (per-row scale, the dequantizing multiply after the gather). So the table
shrinks 4x in every target. ONNX has no ``fp16`` here: ONNX Runtime's float16 converter needs the
whole model as one protobuf.

Every conversion runs in a child process (:mod:`tfopt.emitters.large_worker`), one at a time, so
what a converter allocates is returned when it ends and the peak memory of all three targets is
the largest single one's, not their sum.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfopt._io import atomic_path
from tfopt._user_code import PROVENANCE_KEY
from tfopt.errors import ConversionError, ConverterCrashError, OptionError, ProtobufLimitError

if TYPE_CHECKING:
    from tfopt.graph import Model
    from tfopt.targets import EmitJob, Target

SIGNATURE = "serving_default"


def emit_from_savedmodel(target: str, savedmodel_dir: str, path: str, *, precision: str,
                         input_names: Sequence[str], output_names: Sequence[str], opset: int | None = None,
                         quantization_aware: bool = False, int8_io: bool = False,
                         input_tensors: Sequence[str] = (), output_tensors: Sequence[str] = (),
                         imports: Sequence[Sequence[str]] = ()) -> str:
    """Write ``target``'s artifact of the serving SavedModel ``savedmodel_dir`` at ``path``.

    Args:
        target: ``tflite``, ``onnx`` or ``openvino``.
        savedmodel_dir: a TF2 SavedModel with a ``serving_default`` signature whose arguments are
            ``input_names`` and whose output keys are ``output_names``.
        path: the artifact: a ``.tflite``, a ``.onnx`` (its data file is ``path + ".data"``), or
            the IR's directory for OpenVINO.
        precision: one of the target record's ``large_precisions`` (``none`` is ``fp32``).
        input_names, output_names: the model's, in its order. The artifacts name their tensors
            so (ONNX also orders them so); runners pair them by name.
        opset: ONNX opset (default :data:`tfopt.emitters.onnx.DEFAULT_OPSET`).
        quantization_aware: the SavedModel holds fake quants (tfopt's int8 engine's graph): ``int8``
            converts from their ranges, with no calibration data (TFLite).
        int8_io: ``int8`` with int8 inputs and outputs.
        input_tensors, output_tensors: the frozen graph's tensors of those inputs and outputs: OpenVINO's
            ports carry them too, as the frozen-graph path's do (``out:0`` beside ``out``).
        imports: the user's modules the model's loading imported (``Model.provenance``'s
            :data:`tfopt._user_code.PROVENANCE_KEY`): the child imports them before it converts.

    Returns:
        The file written (OpenVINO: ``path/model.xml``).

    Raises:
        OptionError: an unknown target.
        ProtobufLimitError: a precision the target cannot write for a large model (the reason).
        ConversionError: the converter failed (its message), or the signature lacks a name.
    """
    from tfopt.emitters.onnx import DEFAULT_OPSET

    record = _record(target)
    precision = check_large_precision(target, precision, quantization_aware=quantization_aware)
    _check_signature(savedmodel_dir, input_names, output_names)
    job = {"target": target, "converter": record.large_converter, "precision": precision, "int8_io": int8_io,
           "saved_model": os.path.abspath(savedmodel_dir), "inputs": list(input_names), "outputs": list(output_names),
           "opset": opset or DEFAULT_OPSET, "input_tensors": list(input_tensors), "output_tensors": list(output_tensors),
           "imports": [list(i) for i in imports]}
    return _emit_in_child(record, job, path, precision)


def _record(target: str) -> Target:
    """``target``'s record; OptionError unless it has a large-model form (``Target.large_converter``)."""
    from tfopt.targets import TABLE

    record = TABLE.get(target)
    if record is None or record.large_converter is None:
        able = [t.name for t in TABLE.values() if t.large_converter is not None]
        raise OptionError(f"large models convert to {', '.join(able)}, not '{target}'")
    return record


def check_large_precision(target: str, precision: str, *, quantization_aware: bool = False) -> str:
    """``precision`` as the child takes it (``none`` is ``fp32``).

    Raises:
        OptionError: ``target`` has no large-model form.
        ProtobufLimitError: the target cannot write ``precision`` for a model with tensors outside
            its graph: why, and what to do instead. ``int8`` is the int8 engine's graph
            (``quantization_aware``) only: a converter's own int8 calibrates a model it holds whole.
    """
    record = _record(target)
    precision = "fp32" if precision == "none" else precision
    if precision in record.large_precisions and (precision != "int8" or quantization_aware):
        return precision
    if precision == "int8":
        why = (f"{record.converter}'s own int8 quantizer calibrates the model in one piece; tfopt's int8 engine "
               "(--int8-recipe, the default) builds it from the engine's fake-quant graph")
    else:
        why = record.large_note or f"its converter reads such a model from a SavedModel and writes {', '.join(record.large_precisions)}"
    able = [t.name for t in _large_targets() if precision in t.large_precisions]
    raise ProtobufLimitError(
        f"{record.name} {precision} for a model whose tensors are kept outside its graph (over 2 GB, or at or above "
        f"--external-threshold): not available ({why}). Instead: {', '.join(f'--to {t}' for t in able) or 'no target'}"
        f" for {precision}, another --quantize for {record.name} ({', '.join(record.large_precisions)}), or, for a model "
        "under 2 GB, a higher --external-threshold")


def _large_targets() -> list[Target]:
    from tfopt.targets import TABLE

    return [t for t in TABLE.values() if t.large_converter is not None]


def _emit_in_child(record: Target, job: dict[str, Any], path: str, precision: str) -> str:
    """Run ``job`` in the child, writing ``path`` atomically (with the companion files a
    single-file artifact has, e.g. ONNX's external data, each renamed before the model)."""
    directory = record.marker is not None
    with atomic_path(path, directory=directory) as tmp:
        run_converter_child({**job, "out": tmp}, label=f"{record.name} {precision} ({path})")
        if not directory:
            for made, final in zip(record.companion_files(tmp), record.companion_files(path)):
                if not os.path.exists(made):
                    raise ConversionError(f"{path}: the converter wrote no {os.path.basename(final)}")
                os.replace(made, final)  # the data file first, so the model never lacks it
    return os.path.join(path, record.run_file) if record.run_file else path


def onnx_from_graph(record: Target, job: EmitJob) -> str:
    """The ``large`` role of the onnx record: :func:`emit_onnx_from_graph` of ``job``."""
    return emit_onnx_from_graph(job.portable, job.path, precision=job.precision,
                                opset=getattr(job.quantize, "opset", None))


def emit_onnx_from_graph(model: Model, path: str, *, precision: str, opset: int | None = None) -> str:
    """Write ``model``'s ONNX artifact at ``path`` (its data file is ``path + ".data"``) from its
    frozen GraphDef, whose large tensors are ``ImmutableConst`` nodes over ``model.external``'s raw
    files: the child turns each into a Placeholder for tf2onnx and copies its file into the data
    file, where the ONNX initializer points (``location``/``offset``/``length``). No TensorFlow
    process loads the table, and no serving SavedModel is written.

    Raises:
        ProtobufLimitError: a precision onnx cannot write for a large model (its ``large_precisions``).
        ConversionError: tf2onnx failed, or the file fails ONNX's checker or ONNX Runtime.
    """
    from tfopt.emitters.onnx import DEFAULT_OPSET, _lower_for_tf2onnx
    from tfopt.external.tensors import external_nodes

    record = _record("onnx")
    precision = check_large_precision(record.name, precision)
    external = model.external
    graph_def = _lower_for_tf2onnx(model.graph_def)
    files = {n.name: external[n.name].path for n in external_nodes(graph_def) if external is not None
             and n.name in external}
    work = tempfile.mkdtemp(prefix="tfopt-large-graph-")
    try:
        graph = os.path.join(work, "graph.pb")
        with open(graph, "wb") as f:
            f.write(graph_def.SerializeToString(deterministic=True))
        job = {"target": record.name, "converter": record.large_converter, "precision": precision, "graph": graph,
               "external": files,
               "inputs": [s.name for s in model.inputs], "outputs": [s.name for s in model.outputs],
               "input_tensors": [s.tensor for s in model.inputs], "output_tensors": [s.tensor for s in model.outputs],
               "opset": opset or DEFAULT_OPSET, "imports": model.provenance.get(PROVENANCE_KEY, [])}
        _emit_in_child(record, job, path, precision)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def artifact_files(target: str, path: str) -> list[str]:
    """Every file of an artifact written by :func:`emit_from_savedmodel` (what its size counts):
    a directory artifact's files (the IR's ``.xml`` and ``.bin``), else the file and its companions
    that exist (the ``.onnx`` and its data file)."""
    from tfopt.targets import TABLE

    record = TABLE[target]
    if record.marker is not None:
        directory = os.path.dirname(path) if record.run_file and path.endswith(record.run_file) else path
        return sorted(os.path.join(directory, f) for f in os.listdir(directory))
    return [path, *(p for p in record.companion_files(path) if os.path.exists(p))]


def artifact_bytes(target: str, path: str) -> int:
    """The artifact's size on disk, external data included."""
    return sum(os.path.getsize(p) for p in artifact_files(target, path))


def _check_signature(savedmodel_dir: str, input_names: Sequence[str], output_names: Sequence[str]) -> None:
    """Raise unless ``serving_default`` takes exactly ``input_names`` and returns ``output_names``
    (read from ``saved_model.pb`` alone: the variables are not loaded)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(savedmodel_dir, "saved_model.pb")
    if not os.path.isfile(pb):
        raise ConversionError(f"{savedmodel_dir}: not a SavedModel (no saved_model.pb)")
    saved = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        saved.ParseFromString(f.read())
    signature = next((m.signature_def[SIGNATURE] for m in saved.meta_graphs if SIGNATURE in m.signature_def), None)
    if signature is None:
        raise ConversionError(f"{savedmodel_dir}: no '{SIGNATURE}' signature to convert")
    for kind, wanted, have in (("inputs", input_names, signature.inputs), ("outputs", output_names, signature.outputs)):
        if sorted(wanted) != sorted(have):
            raise ConversionError(f"{savedmodel_dir}: signature '{SIGNATURE}' {kind} are {', '.join(sorted(have))}, "
                                  f"not {', '.join(wanted)}: write it with the model's names "
                                  "(tfopt.external.write_serving_savedmodel)")


def run_converter_child(job: dict[str, object], *, label: str, crash_hint: str = "") -> None:
    """Run one conversion in ``python -m tfopt.emitters.large_worker`` (``job["converter"]``: the
    ``"module:function"`` it calls with ``job``); its stderr is logged at INFO and its last lines go into
    the error when it fails. The large-model path runs every conversion so, and the TFLite emitter its
    calibrating conversions of a graph that holds a loop (:mod:`tfopt.emitters.tflite_isolated`).

    Raises:
        ConverterCrashError: the child was killed by a signal (a crash in the converter's native code):
            names the signal, ``label``, and ``crash_hint`` (the likely cause and the fix).
        ConversionError: the converter failed (its message in ``error.txt``), or the child exited otherwise.
    """
    import logging
    import signal

    from tfopt.emitters.onnx_worker import HASH_SEED

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfopt's parent
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED,
           "PYTHONPATH": os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = tempfile.mkdtemp(prefix="tfopt-large-")
    try:
        spec = os.path.join(work, "job.json")
        with open(spec, "w") as f:
            json.dump(job, f)
        with open(os.path.join(work, "log.txt"), "w+") as log:
            code = subprocess.call([sys.executable, "-m", "tfopt.emitters.large_worker", spec], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            log.seek(0)
            text = log.read()
        if text.strip():
            logging.getLogger(__name__).info("%s (child process):\n%s", label, text.rstrip())
        if code < 0:  # killed by a signal: a crash in native code (SIGSEGV, SIGABRT), or the system's OOM killer (SIGKILL)
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = crash_hint or ("out of memory?" if name == "SIGKILL" else "a crash in the converter's native code")
            raise ConverterCrashError(f"{label}: the converter crashed (its process was killed by {name}; nothing was "
                                      f"written): {why}", signal_name=name)
        if code != 0:
            error = os.path.join(work, "error.txt")
            if os.path.exists(error):
                with open(error) as f:
                    message = f.read().strip()
            else:
                tail = [line.strip() for line in text.splitlines() if line.strip()][-3:]
                message = f"the converter process exited with {code} (out of memory?): {' | '.join(tail)}"
            raise ConversionError(f"{label}: {message}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
