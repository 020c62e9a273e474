"""The one table of deployment targets, and the precisions they build.

A :class:`Target` record says everything the rest of tfopt needs to know about a format: which precisions it builds,
the extra it needs, its file name in a ``tfopt convert`` directory, and the functions that emit it, run it and read
its weights. Those functions are named as ``"module:function"`` strings and imported when first called, so reading
the table imports no converter and no runtime. ``converting``, ``verify``, ``runtimes`` and ``report`` ask the
table; none of them switches on a target's name. A new target is one record here plus its own modules (ARCHITECTURE.md).

The functions a record names have one signature per role:

- ``emit(job: EmitJob) -> str``: write the artifact at ``job.path``; return the path written.
- ``runner(path, model, threads) -> Runner``: a :class:`tfopt.runtimes.base.Runner` for it.
- ``weights(path) -> Iterator[(name, numpy array)]``: its constant tensors (for the report).
- ``layer_quantizer(model, samples, precision, opset) -> LayerQuantizer``: per-layer quantization for
  keep-float (:mod:`tfopt.quantizing.native.layer_targets`).
- ``quantization_settings(precision) -> dict | None``: what a quantized artifact was built for
  (``"<target>_quantization"`` in ``manifest.json``).
- ``int8_ops(path) -> list[KernelOp]``: every op its runtime executes, in order, as :class:`tfopt.quantizing.
  int8_fusion.KernelOp` (:func:`tfopt.quantizing.int8_ops.count_quantized_ops`). Required when it builds int8.
- ``intermediates(path, model) -> Intermediates``: opened with its intermediate tensors kept (``tfopt debug compare``).
- ``repro(precision) -> (needs, source)``: what a standalone ``repro.py`` needs installed, and the
  source of its ``convert_and_run(graph_def, feeds)`` (``tfopt debug reduce``, :mod:`tfopt.debug.repro`).
- ``latency(path, threads) -> (run, specs)``: a bare call of it taking the inputs by position, and their
  ``(shape, dtype)`` (:mod:`tfopt.coverage.latency`).
- ``loops(path) -> bool``: the artifact holds a loop, which its runtime may never leave: a bounded run
  (``--verify-timeout``) goes to a child process killed at the bound (:mod:`tfopt.runtimes.child`).
  ``None``: its runtime is TensorFlow, whose runs stop at the bound in process (:func:`tfopt._tf.deadline`).

A record is added with :func:`register_target` (a plugin, a test); the built-in five are in :data:`TABLE` from the
start. Everything that lists targets (``--to``, ``tfopt debug compare``, ``tfopt debug reduce --target``) reads the
table when it is asked, so a registered target appears there.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tfopt.errors import OptionError, TargetError, did_you_mean

if TYPE_CHECKING:
    from tfopt.graph import Model


class Precision(str, Enum):
    """A numeric precision an artifact is built at. The value is the name users type and read."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"  # int8 weights, float activations (no calibration)
    INT8 = "int8"  # int8 weights and activations (calibrated)
    INT16X8 = "int16x8"  # int8 weights, int16 activations (calibrated)

    def __str__(self) -> str:
        return self.value

    @property
    def needs_calibration(self) -> bool:
        """Activation ranges come from data: int8 and int16x8 (unless the model is quantization-aware)."""
        return self in (Precision.INT8, Precision.INT16X8)

    @classmethod
    def parse(cls, text: str, option: str = "--quantize") -> Precision:
        """``text`` (or an alias of it) as a Precision; an :class:`OptionError` naming ``option`` otherwise."""
        name = ALIASES.get(text, text)
        try:
            return cls(name)
        except ValueError:
            raise OptionError(f"{option} {text}: choose from {', '.join(p.value for p in cls)}"
                              f".{did_you_mean(text, [p.value for p in cls])}") from None


ALIASES = {"none": "fp32"}  # tfopt < 0.2 called float32 "none"; manifests it wrote still say so
PRECISIONS = tuple(p.value for p in Precision)
NEEDS_CALIBRATION = frozenset(p.value for p in Precision if p.needs_calibration)


def require_calibration(calibration: Sequence[Any] | None) -> Sequence[Any]:
    """``calibration`` when there is some; else the one message of the rule "int8/int16x8 need calibration
    data" (``check_options`` says it before any work; an emitter called on its own, here)."""
    if not calibration:
        raise OptionError(NO_CALIBRATION)
    return calibration


NO_CALIBRATION = ("--quantize int8/int16x8 needs calibration data: pass --calibration DATA (.npz keyed by input "
                  "name, .npy, .tfrecord, an image directory, or module:function)")


def precision_name(text: str) -> str:
    """The display name of a precision as it was written (an alias such as ``none`` -> ``fp32``)."""
    return ALIASES.get(text, text)


@dataclass(frozen=True)
class EmitJob:
    """What an emitter gets: the graphs, where to write, and the options that concern it.

    Attributes:
        portable: folded, unfused graph (what TFLite, ONNX and OpenVINO read).
        runtime: the same plus TF-only fusion (what ``pb``/``savedmodel`` get).
        path: where to write (inside the temporary OUTDIR).
        precision: a :class:`Precision` value.
        calibration: finite calibration samples (a list of feed dicts), or ``None``.
        quantize: the :class:`tfopt.options.QuantizeOptions` in force (int8_io, opset, ...).
        quantization_aware: the graph carries fake-quant ops (QAT): int8 uses their ranges.
        keep_float: layers to leave in float (selective quantization).
        converted: a float conversion to start from (ONNX proto, ``ov.Model``), or ``None``.
        accuracy_control: :class:`tfopt.emitters.openvino.AccuracyControl`, or ``None``.
    """

    portable: Model
    runtime: Model
    path: str
    precision: str
    calibration: Any = None
    quantize: Any = None
    quantization_aware: bool = False
    keep_float: Sequence[str] = ()
    converted: Any = None
    accuracy_control: Any = None


@dataclass(frozen=True)
class Target:
    """One deployment format.

    Attributes:
        name: the ``--to`` name and the ``format`` in manifests and reports.
        precisions: what it builds; a float-only target (``float_only``) builds fp32 whatever ``--quantize`` says.
        file: its path in a ``tfopt convert`` directory; ``{precision}`` is replaced.
        emit, runner, weights: ``"module:function"`` (signatures in the module docstring).
        suffixes, marker: file name endings that identify a single artifact of this format; a file
            inside a directory artifact that identifies it (``model.xml``).
        run_file: the file inside a directory artifact that runners open (``""``: the directory).
        companions: sibling files that belong to the artifact (an IR's ``.bin``), replacing the suffix.
        extra: the module it needs (``pip install 'tfopt[<name>]'``); ``None``: always there.
        distributions: packages whose versions ``manifest.json`` records.
        graph: ``"portable"`` or ``"runtime"`` (see :mod:`tfopt.conversion.convert`).
        converter, runtime_name: named in error messages. keep_float: precisions that support keeping
            layers in float; ``layer_quantizer`` builds them.
        qat_int8_as: for a quantization-aware graph, int8 is the conversion at this precision
            (the fake quants become the format's own quantize ops); ``None``: the emitter handles it.
        takes_preprocess: the artifact can bake input preprocessing in (``--ov-mean-values``...).
        quantization_settings: ``"module:function"`` recorded in the manifest, or ``None``.
        runtime_settings: ``"module:function"`` giving how its artifacts are run to get the verified
            numbers (``runtime_settings`` in the manifest and report), or ``None``.
        engine_weight_bits: the widest weights tfopt's int8 engine gives this target (7: OpenVINO's CPU plugin
            saturates int16 pair sums of 8-bit weights on CPUs without VNNI; ONNX Runtime's fast symmetric
            kernels do too, see :mod:`tfopt.emitters.onnx_weight_quant`).
        engine_new_biases: False: the engine gives no layer with a zero or no bias one (OpenVINO: its kernels pay
            a per-channel add for it; ``no_new_bias`` in :class:`tfopt.quantizing.engine.quantize.Recipe`).
        engine_fixed_ranges, engine_float_ops: ``(TF op, range)``, the output range its int8 kernel of the op always
            has (TFLite's SOFTMAX ``(0, 255/256)``; ``"input"``: its input's); TF ops it runs in float (OpenVINO's
            Softmax). The engine gives them that range, or none (:mod:`tfopt.quantizing.engine.kernel_ranges`).
        accuracy_control: precisions its emitter builds under ``--accuracy-control`` (its converter's own
            keep-float search, given :attr:`EmitJob.accuracy_control`); tfopt's int8 engine leaves those to it.
        fixed_shapes: ``"module:function"`` ``(path, model) -> {input: shape} | None``: inputs whose
            open batch the written file fixes (recorded as the artifact's ``fixed_shapes``), or ``None``.
        large: ``"module:function"`` ``(record, job) -> path``: writes the artifact of a model whose
            large tensors are outside its GraphDef (:mod:`tfopt.external`), or ``None`` (no such form).
        large_converter: ``"module:function"`` the large-model child process runs with the job
            (:mod:`tfopt.emitters.large_worker`), or ``None``. large_precisions: the precisions ``large``
            writes; ``large_note``: why not the others.
        ahead: ``"module:function"`` ``(model, opset) -> bool``: sends the float conversion of the portable graph
            to a helper process before the other targets are built, collected when this target's artifact is
            emitted (``tfopt convert``'s overlap), or ``None``.
        approximations: ``"module:function"`` ``(graph_def) -> [str]``: the ops of the graph this target
            computes only approximately, with the cause and the way out; verification names them when an
            output differs (``None``: none known).
        int8_ops, intermediates, repro, latency, loops: ``"module:function"`` (signatures in the module
            docstring): int8 kernel counting, ``tfopt debug compare``, ``tfopt debug reduce``'s ``repro.py``,
            the corpus's latency harness, bounded runs. ``None``: no such role.
    """

    name: str
    precisions: tuple[str, ...]
    file: str
    emit: str
    runner: str
    weights: str
    suffixes: tuple[str, ...] = ()
    marker: str | None = None
    run_file: str = ""
    companions: tuple[str, ...] = ()
    extra: str | None = None
    distributions: tuple[str, ...] = ()
    graph: str = "portable"
    converter: str = "TensorFlow"
    runtime_name: str = "TensorFlow"
    float_only: bool = False
    keep_float: tuple[str, ...] = ()
    layer_quantizer: str | None = None
    qat_int8_as: str | None = None
    takes_preprocess: bool = False
    quantization_settings: str | None = None
    runtime_settings: str | None = None
    engine_weight_bits: int = 8
    engine_new_biases: bool = True
    engine_fixed_ranges: tuple[tuple[str, tuple[float, float] | str], ...] = ()
    engine_float_ops: tuple[str, ...] = ()
    accuracy_control: tuple[str, ...] = ()
    int8_ops: str | None = None
    intermediates: str | None = None
    repro: str | None = None
    latency: str | None = None
    fixed_shapes: str | None = None
    large: str | None = None
    large_converter: str | None = None
    large_precisions: tuple[str, ...] = ()
    large_note: str = ""
    ahead: str | None = None
    approximations: str | None = None
    loops: str | None = None

    def artifact_path(self, precision: str) -> str:
        """The artifact's path relative to OUTDIR, e.g. ``model.int8.tflite``."""
        return self.file.format(precision=precision_name(precision))

    def companion_files(self, path: str) -> list[str]:
        """The sibling files of the artifact file ``path`` (an ONNX model's ``.onnx.data``, an IR's
        ``.bin``): ``path`` with its suffix replaced by each of :attr:`companions`, existing or not."""
        suffix = next((s for s in self.suffixes if path.endswith(s)), os.path.splitext(path)[1])
        stem = path[: len(path) - len(suffix)]
        return [stem + companion for companion in self.companions]

    def available(self) -> bool:
        """Whether its extra is installed (checked without importing it)."""
        return self.extra is None or importlib.util.find_spec(self.extra) is not None

    def call(self, role: str, *args: Any, **kwargs: Any) -> Any:
        """Import and call the function this record names for ``role`` (``"emit"``, ``"runner"``...)."""
        spec = getattr(self, role)
        if spec is None:
            raise OptionError(f"{self.name} has no {role.replace('_', ' ')}")
        module, _, function = spec.partition(":")
        return getattr(importlib.import_module(module), function)(*args, **kwargs)


ROLES = ("emit", "runner", "weights", "layer_quantizer", "quantization_settings", "runtime_settings", "int8_ops",
         "intermediates", "repro", "latency", "fixed_shapes", "large", "large_converter", "ahead", "approximations",
         "loops")  # the fields naming a "module:function"


def _graphdef(name: str, file: str, emit: str, **where: Any) -> Target:
    """A TensorFlow-runtime artifact: the runtime graph, always fp32, run and read by TensorFlow."""
    return Target(name, precisions=("fp32",), file=file, emit=emit, runner="tfopt.runtimes.tensorflow:open_artifact",
                  weights="tfopt.runtimes.tensorflow:read_weights", graph="runtime", float_only=True,
                  distributions=("tensorflow",), **where)


_BUILT_IN = (
    _graphdef("pb", "model.pb", "tfopt.emitters.frozen_graph:emit", suffixes=(".pb",)),
    _graphdef("savedmodel", "savedmodel", "tfopt.emitters.savedmodel:emit", marker="saved_model.pb"),
    Target("tflite", precisions=PRECISIONS, file="model.{precision}.tflite", emit="tfopt.emitters.tflite:emit",
           runner="tfopt.runtimes.tflite:open_runner", weights="tfopt.runtimes.tflite:read_weights",
           suffixes=(".tflite",), extra="ai_edge_litert", distributions=("ai-edge-litert",),
           converter="the LiteRT converter", runtime_name="the LiteRT interpreter", keep_float=("int8",),
           layer_quantizer="tfopt.quantizing.native.layer_targets:tflite_quantizer",
           int8_ops="tfopt.quantizing.int8_ops:tflite_ops", intermediates="tfopt.debug.run_tflite:open_intermediates",
           repro="tfopt.debug.repro:tflite_repro", latency="tfopt.coverage.latency:open_tflite",
           fixed_shapes="tfopt.emitters.tflite:fixed_shapes", large="tfopt.external.emit:via_savedmodel",
           large_converter="tfopt.emitters.large_worker:convert_tflite",
           large_precisions=("fp32", "fp16", "dynamic", "int8"), loops="tfopt.runtimes.tflite:has_loop",
           engine_fixed_ranges=(("Softmax", (0.0, 255 / 256)), ("Sigmoid", (0.0, 255 / 256)),
                                ("Tanh", (-1.0, 127 / 128)), ("LogSoftmax", (-255 / 16, 0.0)), ("AvgPool", "input"))),
    Target("onnx", precisions=PRECISIONS, file="model.{precision}.onnx", emit="tfopt.emitters.onnx:emit",
           runner="tfopt.runtimes.onnx:open_runner", weights="tfopt.runtimes.onnx:read_weights",
           suffixes=(".onnx",), companions=(".onnx.data",), extra="tf2onnx", distributions=("tf2onnx", "onnx", "onnxruntime"),
           converter="tf2onnx", runtime_name="ONNX Runtime", keep_float=("int8", "int16x8"),
           layer_quantizer="tfopt.quantizing.native.layer_targets:onnx_quantizer", qat_int8_as="fp32",
           quantization_settings="tfopt.emitters.onnx:quantization_settings", engine_weight_bits=7,
           int8_ops="tfopt.quantizing.int8_ops:onnx_ops", intermediates="tfopt.debug.run_onnx:open_intermediates",
           repro="tfopt.debug.repro:onnx_repro", latency="tfopt.coverage.latency:open_onnx",
           large="tfopt.emitters.large:onnx_from_graph", large_converter="tfopt.emitters.large_worker:convert_onnx",
           ahead="tfopt.emitters.onnx:convert_ahead", approximations="tfopt.emitters.onnx_resize:approximate_ops",
           large_precisions=("fp32", "dynamic"), loops="tfopt.runtimes.onnx:has_loop",
           large_note="ONNX Runtime's float16 converter needs the whole model in one protobuf (2 GB at most)"),
    Target("openvino", precisions=("fp32", "fp16", "dynamic", "int8"), file="openvino.{precision}",
           emit="tfopt.emitters.openvino:emit", runner="tfopt.runtimes.openvino:open_runner",
           weights="tfopt.runtimes.openvino:read_weights", suffixes=(".xml",), marker="model.xml",
           run_file="model.xml", companions=(".bin",), extra="openvino", distributions=("openvino", "nncf"),
           converter="OpenVINO's converter", runtime_name="the OpenVINO runtime", keep_float=("int8",),
           layer_quantizer="tfopt.quantizing.native.layer_targets:openvino_quantizer", qat_int8_as="fp32",
           takes_preprocess=True, engine_weight_bits=7, engine_new_biases=False, engine_float_ops=("Softmax",),
           runtime_settings="tfopt.runtimes.openvino:runtime_settings",
           accuracy_control=("int8",), int8_ops="tfopt.quantizing.int8_ops:openvino_ops",
           intermediates="tfopt.debug.run_openvino:open_intermediates", repro="tfopt.debug.repro:openvino_repro",
           latency="tfopt.coverage.latency:open_openvino", large="tfopt.external.emit:via_savedmodel",
           large_converter="tfopt.emitters.large_worker:convert_openvino", large_precisions=("fp32", "fp16", "dynamic"),
           loops="tfopt.runtimes.openvino:has_loop"),
)
_RECORDS: dict[str, Target] = {t.name: t for t in _BUILT_IN}
TABLE: Mapping[str, Target] = MappingProxyType(_RECORDS)  # read-only: add with register_target
NAMES = tuple(TABLE)  # the built-in targets; names() includes registered ones


def names() -> tuple[str, ...]:
    """Every target's name, built-in and registered, in table order."""
    return tuple(TABLE)


def with_role(role: str) -> list[Target]:
    """The targets whose record names a function for ``role`` (e.g. ``"intermediates"``), in table order."""
    return [t for t in TABLE.values() if getattr(t, role) is not None]


def register_target(record: Target) -> Target:
    """Add ``record`` to the table: ``--to``, ``tfopt.convert``, verify, the report, ``tfopt debug``
    and int8 kernel counting then know it. Nothing is imported: its functions are checked for
    form here and imported when first called.

    Raises:
        TargetError: the name is taken; a role is not ``"module:function"``; a role its
            precisions need is missing (``int8_ops`` for int8, ``layer_quantizer`` for
            ``keep_float``); ``keep_float``/``accuracy_control``/``qat_int8_as`` name a precision
            it does not build or that is unknown; or a suffix or marker already identifies another
            target's files.
    """
    problems = _problems(record)
    if problems:
        raise TargetError(f"register_target({record.name!r}): {'; '.join(problems)}")
    _RECORDS[record.name] = record
    return record


def unregister_target(name: str) -> None:
    """Remove a target :func:`register_target` added (the built-in ones stay).

    Raises:
        TargetError: ``name`` is built in, or was never registered.
    """
    if name in NAMES or name not in _RECORDS:
        why = "is built in" if name in NAMES else "is not registered"
        raise TargetError(f"unregister_target({name!r}): {name} {why}")
    del _RECORDS[name]


def _problems(t: Target) -> list[str]:
    """What is wrong with a record, one phrase each (empty: it can be registered)."""
    out = []
    if not t.name or not t.name.replace("_", "").replace("-", "").isalnum():
        out.append("the name must be letters, digits, '-' or '_'")
    if t.name in TABLE:
        out.append(f"a target named {t.name} exists; choose another name or unregister_target() it first")
    for role in ROLES:
        spec = getattr(t, role)
        module, _, function = (spec or "").partition(":")
        if spec is not None and not (module and function.isidentifier()):
            out.append(f"{role}={spec!r} is not 'module:function'")
    unknown = sorted(set(t.precisions) - set(PRECISIONS))
    if not t.precisions or unknown:
        out.append(f"precisions must be some of {', '.join(PRECISIONS)}" + (f", not {', '.join(unknown)}" if unknown else ""))
    for field in ("keep_float", "accuracy_control", "large_precisions"):
        if not set(getattr(t, field)) <= set(t.precisions):
            out.append(f"{field} {', '.join(getattr(t, field))}: it builds only {', '.join(t.precisions)}")
    if t.qat_int8_as is not None and t.qat_int8_as not in t.precisions:
        out.append(f"qat_int8_as {t.qat_int8_as}: it builds only {', '.join(t.precisions)}")
    if t.keep_float and t.layer_quantizer is None:
        out.append("keep_float needs layer_quantizer='module:function'")
    if bool(t.large_precisions) != (t.large is not None):
        out.append("large and large_precisions go together (a model over 2 GB: how, and in which precisions)")
    if "int8" in t.precisions and not t.float_only and t.int8_ops is None:
        out.append("int8 needs int8_ops='module:function' (which kernels its runtime runs)")
    if "{precision}" not in t.file and len(t.precisions) > 1 and not t.float_only:
        out.append(f"file {t.file!r} must hold {{precision}}: it builds several")
    for other in TABLE.values():
        shared = set(t.suffixes) & set(other.suffixes)
        if shared or (t.marker is not None and t.marker == other.marker):
            out.append(f"{', '.join(sorted(shared)) or t.marker} already identifies {other.name}'s files")
    return out


def target(name: str, option: str = "--to") -> Target:
    """The record for ``name``; an :class:`OptionError` naming ``option`` and the closest name otherwise."""
    try:
        return TABLE[name]
    except KeyError:
        raise OptionError(f"{option} {name}: choose from {', '.join(TABLE)}.{did_you_mean(name, TABLE)}") from None


def available_targets() -> list[str]:
    """Every target whose extra is installed, in table order."""
    return [t.name for t in TABLE.values() if t.available()]


def target_of_file(path: str) -> Target | None:
    """The target a single artifact file or directory is, from its name or its marker file."""
    for t in TABLE.values():
        if os.path.isdir(path) and t.marker and os.path.exists(os.path.join(path, t.marker)):
            return t
    if os.path.isfile(path):
        return next((t for t in TABLE.values() if path.endswith(t.suffixes) and t.suffixes), None)
    return None
