"""TFLite flatbuffer through the TFLite converter, from the frozen, folded (unfused) graph.

Precisions: ``fp32``, ``fp16`` (float16 weights), ``dynamic`` (int8 weights, float
activations), ``int8`` (full integer from calibration data, float fallback for ops without an int8
kernel unless ``int8_io``), ``int16x8`` (int16 activations, int8 weights). Select-TF ops only with
``allow_tf_ops``; otherwise an error names the ops the builtins lack. Ops the builtins lack but
that have an exact decomposition into them (``Asinh``, ``MaxPool3D``, ``MaxPoolWithArgmax``...) are
lowered first (:mod:`tfopt.emitters.tflite_lower`), in every precision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tfopt._io import atomic_path
from tfopt._tf import tf
from tfopt.emitters.tflite_batch import pin_batch
from tfopt.errors import ConversionError, OptionError
from tfopt.graph import Model
from tfopt.targets import require_calibration

if TYPE_CHECKING:
    from tfopt.targets import EmitJob

_TENSOR_LISTS = "Lowering tensor list ops is failed"  # the converter's words for a TensorList it cannot lower


def emit_tflite(model: Model, path: str, *, precision: str = "fp32", calibration: Sequence[dict[str, Any]] | None = None,
                int8_io: bool = False, allow_tf_ops: bool = False, quantization_aware: bool = False,
                keep_float: Sequence[str] = (), sparse: bool = False, isolate: bool = True) -> str:
    """Write a ``.tflite``. A quantization-aware model (fake-quant ops) converts to int8 from its own
    ranges, without calibration data. ``keep_float`` (int8 only) names layers left in float:
    TFLite's own selective quantization (QuantizationDebugger's denylist), with ``int8_io``,
    ``allow_tf_ops`` and ``sparse`` applied as in the plain int8 build. ``sparse`` (a pruned
    model) adds the converter's sparsity-aware encoding, which stores a tensor sparse where that
    is smaller (it pays off from roughly 70-80% zeros). A calibrating conversion of a graph that holds a
    loop runs in a child process (``isolate``; :mod:`tfopt.emitters.tflite_isolated`): TFLite's calibrator
    can crash on a loop, and then only this artifact fails (:class:`~tfopt.errors.ConverterCrashError`)."""
    from tfopt.emitters.tflite_isolated import emit_in_child, isolated
    from tfopt.emitters.tflite_names import name_outputs

    if isolate and isolated(model, precision, calibration, quantization_aware=quantization_aware):
        return emit_in_child(model, path, precision=precision, calibration=require_calibration(calibration),
                             options={"int8_io": int8_io, "allow_tf_ops": allow_tf_ops, "keep_float": list(keep_float),
                                      "sparse": sparse})

    model, not_lowered = _lowered(model)
    if keep_float and precision == "int8" and calibration:
        data = _with_pinned_batch(model, precision, lambda m: _keep_float_int8(
            m, calibration, keep_float, int8_io=int8_io, allow_tf_ops=allow_tf_ops, sparse=sparse), not_lowered)
    else:
        data = _with_pinned_batch(model, precision, lambda m: _convert(
            m, precision, calibration, int8_io=int8_io, allow_tf_ops=allow_tf_ops,
            quantization_aware=quantization_aware, sparse=sparse), not_lowered)
    data = name_outputs(data, [s.name for s in model.outputs])  # the model's names, not PartitionedCall:i
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def _convert(model: Model, precision: str, calibration: Sequence[dict[str, Any]] | None, *, int8_io: bool,
             allow_tf_ops: bool, quantization_aware: bool, sparse: bool) -> bytes:
    """One conversion of ``model`` (the converter's exceptions propagate)."""
    t = tf()
    converter = _converter(model)
    builtins = t.lite.OpsSet.TFLITE_BUILTINS
    ops = [builtins]
    if precision == "fp16":
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [t.float16]
    elif precision == "dynamic":
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    elif precision == "int8" and quantization_aware:
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        if int8_io:
            converter.inference_input_type = t.int8
            converter.inference_output_type = t.int8
    elif precision in ("int8", "int16x8"):
        calibration = require_calibration(calibration)
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[s.name] for s in model.inputs] for sample in calibration)
        if precision == "int16x8":
            ops = [t.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            if not int8_io:
                ops.append(builtins)
        elif int8_io:
            ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = t.int8
            converter.inference_output_type = t.int8
    elif precision not in ("fp32", "none"):
        raise OptionError(f"tflite: unknown precision '{precision}'")
    if sparse:
        converter.optimizations = [*converter.optimizations, t.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if allow_tf_ops:
        ops.append(t.lite.OpsSet.SELECT_TF_OPS)
        # Recurrent layers' TensorList ops then stay TF ops instead of failing to lower.
        converter._experimental_lower_tensor_list_ops = False
    converter.target_spec.supported_ops = ops
    return bytes(converter.convert())


def _lowered(model: Model) -> tuple[Model, dict[str, str]]:
    """``model`` with the ops TFLite lacks lowered into builtins where exact
    (:func:`tfopt.emitters.tflite_lower.lower_for_builtins`), and ``{op type: why not}`` for the
    ones left (the error names them if the converter then refuses them)."""
    from tfopt.emitters.converter_lower import lower_for_converter, ops_by_label
    from tfopt.emitters.rewrite_record import record_rewrites
    from tfopt.emitters.tflite_lower import lower_for_builtins

    lowered = lower_for_converter(model.graph_def, rows_only=True)  # TFLite's MEAN sums in one run
    lowered.report()
    if lowered.provenance():
        model = model.replace(graph_def=lowered.graph_def, provenance={**model.provenance, **lowered.provenance()})
    result = lower_for_builtins(model)
    if result.changed:  # the artifact's record (tfopt.emitters.rewrite_record)
        record_rewrites({"lowered_for_builtins": result.model.provenance["lowered_for_builtins"]})
    op_of = ops_by_label(model.graph_def)
    return result.model, {op_of.get(s.node, ""): s.reason for s in result.skips + lowered.resize_skips}


def _with_pinned_batch(model: Model, precision: str, build: Callable[[Model], bytes],
                       not_lowered: dict[str, str] | None = None) -> bytes:
    """``build(model)``; when that fails, ``build`` again with the shape vectors the open batch does not
    decide made constant (:func:`~tfopt.emitters.shape_values.materialize_shapes`: a rotation or a reshape
    whose sizes TensorFlow's shape inference lost, which the converter needs static), the batch still open.
    When that fails too and some input has an open batch (axis 0), ``build`` again
    with the batch pinned to 1 (:func:`pin_batch`). The converter lowers a recurrent layer's
    TensorList loop only when the list's element shape is static, and with an open batch it is
    ``[?, H]``; pinned, the same loop becomes builtin ``WHILE`` ops. The file then takes batch 1
    only (:func:`fixed_shapes` reads that back for the manifest). Both failing: one
    :class:`ConversionError` saying what was tried. A first build that succeeds by keeping Select TF ops
    (``--allow-tf-ops``) is built again from the materialized shapes too (:func:`_fewer_select_ops`)."""
    from tfopt.emitters.shape_values import materialize_shapes

    try:
        data = build(model)
    except Exception as exc:  # the converter raises ConverterError with the MLIR diagnostics
        first = exc
    else:
        return _fewer_select_ops(data, lambda: materialize_shapes(model), build)
    # A TensorList refused at the open batch stays refused with static sizes: straight to the pinned retry.
    materialized = None if _TENSOR_LISTS in str(first) else materialize_shapes(model)
    if materialized is not None:
        try:
            return build(materialized)
        except Exception:  # the pinned retry's error says what failed, at the model's own shapes
            pass
    pinned = pin_batch(model)
    if pinned is None:
        raise ConversionError(_explain(first, precision, not_lowered)) from first
    try:
        return build(pinned)
    except Exception as exc:
        given = ", ".join(s.describe() for s in model.inputs)
        tried = ", ".join(s.describe() for s in pinned.inputs)
        raise ConversionError(f"{_explain(first, precision, not_lowered)}. Tried at the model's shapes ({given}) "
                              f"and with the batch fixed ({tried}) and static TensorList element shapes; that failed "
                              f"too: {_explain(exc, precision, not_lowered)}") from exc


def _fewer_select_ops(data: bytes, materialized: Callable[[], Model | None], build: Callable[[Model], bytes]) -> bytes:
    """``data``, or the build of the model with its shape vectors made constant when that keeps fewer Select TF
    ops. With ``--allow-tf-ops`` the converter does not fail on an op it cannot lower: a ``Conv2D`` whose channels
    TensorFlow's shape inference lost stays a TensorFlow op (``FlexConv2D``) where, with the sizes static
    (:mod:`tfopt.emitters.shape_values`), it is a builtin. A Select TF op is kept only where no builtin lowering
    exists at the model's own (open) batch."""
    kept = select_tf_ops(data)
    if not kept:
        return data
    model = materialized()
    if model is None:
        return data
    try:
        again = build(model)
    except Exception:  # the first file stands: it converted
        return data
    return again if select_tf_ops(again) < kept else data


def select_tf_ops(data: bytes) -> int:
    """How many operators of the flatbuffer ``data`` are Select TF ops (custom code ``Flex...``: the app then needs
    the Flex delegate)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    flex = {i for i in range(model.OperatorCodesLength())
            if (model.OperatorCodes(i).CustomCode() or b"").startswith(b"Flex")}
    return sum(1 for g in range(model.SubgraphsLength()) for o in range(model.Subgraphs(g).OperatorsLength())
               if model.Subgraphs(g).Operators(o).OpcodeIndex() in flex)


def fixed_shapes(path: str, model: Model) -> dict[str, list[int]] | None:
    """Inputs whose batch (axis 0, or :attr:`TensorSpec.batch_axis`) ``model`` leaves open but the ``.tflite`` at ``path`` fixes
    (its signature's ``shape_signature`` has no -1 there): ``{input name: shape}``, or ``None``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return None
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    details = runner.get_input_details()
    out = {}
    for spec in model.inputs:
        detail = details.get(spec.node) or details.get(spec.name)
        axis = spec.batch_axis or 0  # a time-major [time, batch, n]: axis 1
        if detail is None or not spec.shape or len(spec.shape) <= axis or spec.shape[axis] is not None:
            continue
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        if len(signature) > axis and signature[axis] != -1:
            out[spec.name] = signature
    return out or None


def tflite_debugger(model: Model, calibration: Sequence[dict[str, Any]], keep_float: Sequence[str] = ()) -> Any:
    """A QuantizationDebugger over the full-int8 conversion of ``model`` (``keep_float`` denylisted)."""
    t = tf()
    model, _ = _lowered(model)
    converter = _converter(model)
    converter.optimizations = [t.lite.Optimize.DEFAULT]

    def dataset() -> Any:
        return ([sample[s.name] for s in model.inputs] for sample in calibration)

    converter.representative_dataset = dataset
    options = t.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float)) if keep_float else None
    return t.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset, debug_options=options)


def _converter(model: Model) -> Any:
    """The converter of ``model``, its SavedModel step shared by the model's precisions (:mod:`.tflite_saved`)."""
    from tfopt.emitters.tflite_saved import converter_for

    return converter_for(model)


def _keep_float_int8(model: Model, calibration: Sequence[dict[str, Any]], keep_float: Sequence[str], *,
                     int8_io: bool, allow_tf_ops: bool, sparse: bool) -> bytes:
    """Full-int8 with ``keep_float`` denylisted: QuantizationDebugger's own steps (calibrate only,
    then ``mlir_quantize`` with the denylist), done here because its quantize call takes none of
    ``int8_io`` (``fully_quantize`` with int8 input/output types), ``allow_tf_ops`` (the
    calibration conversion's ``supported_ops``) or ``sparse`` (``mlir_sparsify`` afterwards, as
    the converter's own EXPERIMENTAL_SPARSITY does)."""
    from tensorflow.lite.python import convert

    t = tf()
    converter = _converter(model)
    converter.optimizations = [t.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[s.name] for s in model.inputs] for sample in calibration)
    ops = [t.lite.OpsSet.TFLITE_BUILTINS]
    if allow_tf_ops:
        ops.append(t.lite.OpsSet.SELECT_TF_OPS)
        converter._experimental_lower_tensor_list_ops = False
    converter.target_spec.supported_ops = ops
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # as QuantizationDebugger sets it up
    calibrated = converter.convert()
    io_type = t.int8 if int8_io else t.float32
    data = convert.mlir_quantize(calibrated, fully_quantize=int8_io, input_data_type=io_type,
                                 output_data_type=io_type, denylisted_nodes=list(keep_float))
    return bytes(convert.mlir_sparsify(data) if sparse else data)


def _explain(exc: BaseException, precision: str, not_lowered: dict[str, str] | None = None) -> str:
    message = str(exc)
    if _TENSOR_LISTS in message:
        from tfopt.emitters.tflite_tensor_lists import explain

        return explain(exc)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)))
    if ops:
        skipped = not_lowered or {}
        why = "".join(f" ({op} not lowered: {skipped[op]})" for op in ops if op in skipped)
        return (f"TFLite builtins lack {', '.join(ops)}{why}; pass --allow-tf-ops to keep them as Select TF ops "
                "(the app then needs the Flex delegate)")
    first = next((line.strip() for line in message.splitlines() if "error" in line.lower()), message.strip()[:300])
    return f"TFLite conversion ({precision}) failed: {first[:400]}"


def emit(job: EmitJob) -> str:
    """The ``tflite`` target (:mod:`tfopt.targets`). A pruned model's fp32 flatbuffer is written
    sparse; int8 is not (LiteRT's XNNPACK delegate rejects sparse int8 FULLY_CONNECTED, measured here)."""
    options = job.quantize
    pruned = job.precision == "fp32" and bool((job.portable.provenance.get("compression") or {}).get("prune"))
    return emit_tflite(job.portable, job.path, precision=job.precision, calibration=job.calibration,
                       int8_io=bool(options and options.int8_io), allow_tf_ops=bool(options and options.allow_tf_ops),
                       quantization_aware=job.quantization_aware, keep_float=job.keep_float, sparse=pruned)


def convert_job(job: dict[str, Any]) -> None:
    """In the child of :func:`tfopt.emitters.tflite_isolated.emit_in_child` (:mod:`tfopt.emitters.large_worker`):
    the model and calibration read back from ``job`` and converted by :func:`emit_tflite` in that process; what its
    lowerings rewrote written to ``job["rewrites"]`` (JSON) for the parent's record
    (:mod:`tfopt.emitters.rewrite_record`)."""
    import json

    import numpy as np

    from tfopt._tf import graph_def_class
    from tfopt.emitters.large_worker import JobError
    from tfopt.emitters.rewrite_record import rewrites_recorded
    from tfopt.errors import TfoptError
    from tfopt.runtimes.child import specs_of

    graph_def = graph_def_class()()
    with open(job["graph"], "rb") as f:
        graph_def.ParseFromString(f.read())
    model = Model(graph_def=graph_def, inputs=specs_of(job["inputs"]), outputs=specs_of(job["outputs"]))
    with np.load(job["calibration"], allow_pickle=False) as data:
        calibration = [{s.name: data[f"{i}_{j}"] for j, s in enumerate(model.inputs)} for i in range(job["samples"])]
    try:
        with rewrites_recorded() as rewrites:
            emit_tflite(model, job["out"], precision=job["precision"], calibration=calibration, isolate=False,
                        **job["options"])
    except TfoptError as exc:  # the converter's own message, one line for the parent, as in process
        raise JobError(" ".join(str(exc).split())) from exc
    with open(job["rewrites"], "w") as f:
        json.dump(rewrites, f)
