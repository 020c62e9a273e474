"""ONNX through tf2onnx from the frozen, folded (unfused) GraphDef; quantization by ONNX Runtime.

``fp16`` converts weights and compute to float16 but keeps float32 inputs/outputs; ``dynamic``
is ONNX Runtime's dynamic quantization (int8 weights); ``int8`` and ``int16x8`` are static QDQ
quantization (int8 or int16 activations, int8 per-channel weights) calibrated on the same data as
the other targets. Models over 2 GB are written with external data next to the ``.onnx``.

int8 weights are 7-bit (``reduce_range``): ONNX Runtime's x86 kernels multiply u8 x s8 pairs
with ``VPMADDUBSW``, whose 16-bit pair sums saturate on CPUs without VNNI (AVX2, AVX-512 without
VNNI); 7-bit weights keep every pair sum in range, at one bit of weight precision on VNNI CPUs
(ONNX Runtime's quantization guide). Measured on an AVX2 CPU without VNNI, the digits CNN's top-1
agreement with the float model goes from 98.3% to 100% (max abs err 0.161 to 0.019). The settings
are recorded in the manifest (``onnx_quantization``), so an artifact says what it was built for.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfopt._io import atomic_path
from tfopt.errors import ConversionError, OptionError
from tfopt.graph import Model
from tfopt.targets import require_calibration

if TYPE_CHECKING:
    from tfopt.targets import EmitJob

DEFAULT_OPSET = 17  # supported by tf2onnx 1.17 (max 18) and every current onnxruntime
TWO_GB = 2 << 30


def convert_to_onnx(model: Model, opset: int | None = None) -> Any:
    """The float ``ModelProto`` of ``model``'s frozen graph, generated names made canonical.

    tf2onnx runs in a child process with a fixed hash seed (see :mod:`tfopt.emitters.onnx_worker`
    for why). What the child printed is logged at INFO (``--verbose``), and written to stderr when
    it fails, where the CLI's stage capture shows its last lines under the error."""
    import logging
    import sys

    from tfopt.emitters.onnx_worker import convert_in_child
    from tfopt.emitters.strings import check_string_compares

    check_string_compares(model)
    opset = opset or DEFAULT_OPSET
    try:
        proto, log = convert_in_child(_tf2onnx_graph(model), [s.tensor for s in model.inputs],
                                      [s.tensor for s in model.outputs], opset, _imports(model))
    except RuntimeError as exc:
        if len(exc.args) > 1:
            sys.stderr.write(exc.args[1])
        raise ConversionError(f"tf2onnx (opset {opset}) failed: {exc.args[0]}; try another --opset") from None
    if log.strip():
        logging.getLogger(__name__).info("tf2onnx (child process):\n%s", log.rstrip())
    _check_ops(proto, opset)
    from tfopt.emitters.onnx_names import canonical_names
    from tfopt.emitters.onnx_relu_grids import own_relu_grids
    from tfopt.emitters.onnx_resize import fix_resizes
    from tfopt.emitters.onnx_weight_quant import fold_weight_qdq

    fix_resizes(proto)  # tf2onnx's short scales and its bicubic coefficient (see there)
    fold_weight_qdq(proto.graph)
    own_relu_grids(proto.graph)  # the engine's ReLU layers before a concatenation: int8 in ONNX Runtime
    canonical_names(proto.graph)
    return proto


def convert_ahead(model: Model, opset: int | None = None) -> bool:
    """Send ``model``'s float conversion (the job :func:`convert_to_onnx` runs) to this run's tf2onnx
    child now, without waiting: the ``convert_to_onnx`` that needs it collects it, with its error
    if tf2onnx fails. Returns whether it was sent (only inside :func:`tfopt.emitters.onnx_worker.shared_child`)."""
    from tfopt.emitters.onnx_worker import current_child, submit_in_child

    if current_child() is None:  # nothing to send it to: the lowering would be made for nothing
        return False
    return submit_in_child(_tf2onnx_graph(model), [s.tensor for s in model.inputs],
                           [s.tensor for s in model.outputs], opset or DEFAULT_OPSET, _imports(model))


def _imports(model: Model) -> list[list[str]]:
    """The modules ``model``'s loading imported (``--custom-objects``): tf2onnx's child imports them first."""
    from tfopt._user_code import PROVENANCE_KEY

    return [list(record) for record in model.provenance.get(PROVENANCE_KEY, [])]


def _tf2onnx_graph(model: Model) -> Any:
    """:func:`_made_for_tf2onnx`, made once per graph in a :func:`tfopt.emitters.onnx_worker.shared_child` scope
    (:func:`convert_ahead` and the :func:`convert_to_onnx` that collects its job both need it; the lowering
    imports the graph into TensorFlow when it holds a large reduction or a resize). Keyed by the graph's bytes
    and its inputs and outputs, so a graph edited in between is lowered again; kept with the lowering's report,
    reported again by each conversion that uses it (the artifact's ``rewrites``, :mod:`tfopt.emitters.converter_lower`)."""
    import hashlib
    import json

    from tfopt.emitters.onnx_worker import current_child
    from tfopt.emitters.rewrite_record import record_rewrites, rewrites_recorded

    child = current_child()
    if child is None:
        return _made_for_tf2onnx(model)
    ends = json.dumps([[s.tensor for s in model.inputs], [s.tensor for s in model.outputs]]).encode()
    key = hashlib.sha256(model.graph_def.SerializeToString(deterministic=True) + b"\0" + ends).hexdigest()
    if key not in child.lowered:
        with rewrites_recorded() as lines:
            child.lowered[key] = (_made_for_tf2onnx(model), lines)
    graph_def, lines = child.lowered[key]
    record_rewrites(lines)
    return graph_def


def _made_for_tf2onnx(model: Model) -> Any:
    """The graph tf2onnx converts: an output computed by a functional op read through an Identity
    of its name (grappler inlines the op and tf2onnx then cannot find the output:
    :mod:`tfopt.emitters.output_identity`), then :func:`_lower_for_tf2onnx`, then every function's node
    and argument names made unique across the graph (tf2onnx treats them as global: nested loops whose
    bodies share names gave a file the checker refuses or one ONNX Runtime never leaves,
    :mod:`tfopt.emitters.onnx_function_names`)."""
    from tfopt.emitters.onnx_function_names import unique_function_names
    from tfopt.emitters.output_identity import functional_outputs, outputs_behind_identity

    nodes = functional_outputs(model)
    return unique_function_names(_lower_for_tf2onnx(outputs_behind_identity(model, nodes) if nodes else model.graph_def))


def _lower_for_tf2onnx(graph_def: Any) -> Any:
    """Rewrite TF ops tf2onnx has no handler for into ones it has:
    ``Erfc(x) = 1 − Erf(x)`` (Keras 3's exact GELU, ``0.5·x·erfc(−x/√2)``, uses Erfc); weight fake
    quants into int8 QDQ pairs (:mod:`tfopt.emitters.onnx_weight_quant`); resizes tf2onnx maps
    inexactly (bicubic, area, scale-and-translate) into TensorFlow's own weights as matrix products
    (:mod:`tfopt.emitters.resize_lower`; a dynamic-size one stays, :mod:`tfopt.emitters.onnx_resize` patches it);
    ``CropAndResize`` into gathers at TensorFlow's own sample coordinates (:mod:`tfopt.emitters.crop_lower`:
    tf2onnx's ``tf_crop_and_resize`` Resize puts a box edge at the image border one ulp outside and fills it);
    a ``RaggedTensorToTensor`` whose ragged levels mix row splits and value row ids into row splits only
    (:mod:`tfopt.emitters.ragged_lower`: tf2onnx converts either form alone, not a mix); a ``ScatterNd`` into
    ``tensor_scatter_nd_add`` into zeros (:mod:`tfopt.emitters.scatter_lower`: tf2onnx's keeps one of repeated updates).

    Functional control flow (``While``/``If``/``Case``, in the graph and in its functions) is marked
    ``_lower_using_switch_merge=False``, as TensorFlow's own ``convert_variables_to_constants_v2(...,
    lower_control_flow=False)`` marks a SavedModel's: tf2onnx's grappler pass would otherwise lower a frozen
    ``.pb``'s or a checkpoint's ``While`` into TF1 Switch/Merge frames, where its TensorList handlers (which
    convert a ``While`` body's TensorListReserve/SetItem into an ONNX Loop's scan outputs) never apply."""
    from tensorflow.python.framework.convert_to_constants import disable_lower_using_switch_merge

    from tfopt.emitters.converter_lower import lower_for_converter
    from tfopt.emitters.crop_lower import lower_crops
    from tfopt.emitters.onnx_weight_quant import lower_weight_fake_quant
    from tfopt.emitters.ragged_lower import lower_ragged_partitions
    from tfopt.emitters.scatter_lower import lower_scatters

    lowered = lower_for_converter(lower_ragged_partitions(disable_lower_using_switch_merge(graph_def)))
    lowered.report()
    graph_def = lower_scatters(lower_crops(lower_weight_fake_quant(lowered.graph_def)))
    wrong = [skip for skip in lowered.resize_skips if skip.reason.startswith("ResizeArea")]  # tf2onnx: nearest (a body's too)
    if wrong:
        raise ConversionError(f"onnx: ResizeArea '{wrong[0].node}' has no ONNX form (tf2onnx would write a nearest "
                              f"resize) and tfopt cannot write TensorFlow's weights for it: {wrong[0].reason}")
    if not any(n.op == "Erfc" for n in graph_def.node):
        return graph_def
    from tfopt._tf import graph_def_class, make_const
    from tfopt.graph import unique_name

    out = graph_def_class()()
    out.CopyFrom(graph_def)
    for node in [n for n in out.node if n.op == "Erfc"]:
        dtype = node.attr["T"].type
        erf = out.node.add(name=unique_name(out, node.name + "/erf"), op="Erf", input=list(node.input))
        erf.attr["T"].type = dtype
        one = make_const(unique_name(out, node.name + "/one"), 1.0, dtype=dtype)
        out.node.append(one)
        node.op = "Sub"  # keeps the name: consumers read 1 - Erf(x) where they read Erfc(x)
        del node.input[:]
        node.input.extend([one.name, erf.name])
    return out


def _check_ops(proto: Any, opset: int) -> None:
    """tf2onnx leaves TF ops it cannot convert in the graph as unknown ONNX ops (and only logs it):
    name them here instead of letting ONNX Runtime reject the file later."""
    import onnx

    from tfopt.emitters.onnx_scopes import graphs

    unknown = sorted({n.op_type for graph, _ in graphs(proto.graph) for n in graph.node  # loop bodies too
                      if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        raise ConversionError(f"tf2onnx (opset {opset}) has no conversion for TF op(s) {', '.join(unknown)}; "
                              "try another --opset, or leave onnx out of --to")


def emit_onnx(model: Model, path: str, *, precision: str = "fp32", calibration: Sequence[dict[str, Any]] | None = None,
              opset: int | None = None, keep_float: Sequence[str] = (), converted: Any = None,
              reduce_range: bool = True) -> str:
    """Write a ``.onnx``. ``keep_float`` (int8/int16x8) names nodes ONNX Runtime's quantizer leaves
    in float (``nodes_to_exclude``); ``converted`` is a :func:`convert_to_onnx` result to start from
    (copied, not changed); ``reduce_range=False`` gives 8-bit int8 weights (for VNNI CPUs only:
    see the module docstring). The file passes ONNX's full checker and loads in ONNX Runtime
    (:mod:`tfopt.emitters.onnx_check`), or nothing is written.

    Raises:
        ConversionError: tf2onnx failed, or the file fails the checker or ONNX Runtime.
        OptionError: an unknown ``precision``, or int8 without ``calibration``.
    """
    import onnx

    from tfopt.emitters.onnx_check import check_onnx_file
    from tfopt.emitters.onnx_scopes import sort_topologically

    if converted is not None:
        proto = onnx.ModelProto()
        proto.CopyFrom(converted)
    else:
        proto = convert_to_onnx(model, opset)
    quantized = precision not in ("fp32", "none", "fp16") or any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)  # the engine's int8
    if not quantized:
        _runtime_friendly(proto, fuse_affine=precision != "fp16")
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
    elif precision in ("dynamic", "int8", "int16x8"):
        proto = _quantize(proto, model, precision, calibration, keep_float, reduce_range=reduce_range)
    elif precision not in ("fp32", "none"):
        raise OptionError(f"onnx: unknown precision '{precision}'")
    sort_topologically(proto.graph)  # ONNX's order (ONNX Runtime's float16 converter leaves casts last)
    with atomic_path(path) as tmp:
        external = proto.ByteSize() > TWO_GB if hasattr(proto, "ByteSize") else False
        onnx.save_model(proto, tmp, save_as_external_data=external,
                        location=os.path.basename(path) + ".data" if external else None)
        check_onnx_file(tmp, label=f"onnx {precision} ({path})")  # a broken file is never published
    return path


def _runtime_friendly(proto: Any, *, fuse_affine: bool) -> None:
    """ONNX Runtime's fast paths for what tf2onnx writes literally, in float files: a per-channel
    Mul + Add that no conv took becomes one ``BatchNormalization`` (float32 only), and lower-rank
    constant operands of elementwise ops get their partner's rank. Both compute the same numbers;
    see :mod:`tfopt.emitters.onnx_channel_affine` and :mod:`tfopt.emitters.onnx_full_rank` for why.
    Quantized files (ONNX Runtime's quantizers, or the engine's QDQ pairs) keep tf2onnx's forms,
    which ONNX Runtime's QDQ fusions match: a ``[1,C]`` bias turns MatMul + Add into a float Gemm
    before the int8 MatMul fusion can take it."""
    import logging

    from tfopt.emitters.onnx_channel_affine import fuse_channel_affine
    from tfopt.emitters.onnx_full_rank import full_rank_constants
    from tfopt.emitters.onnx_names import sort_initializers
    from tfopt.emitters.onnx_shapes import inferred_shapes

    shapes = inferred_shapes(proto)
    fused = fuse_channel_affine(proto.graph, shapes) if fuse_affine else 0
    ranked = full_rank_constants(proto.graph, shapes)
    if fused or ranked:
        sort_initializers(proto.graph)
        logging.getLogger(__name__).info("onnx: %d Mul+Add pair(s) -> BatchNormalization, %d constant operand(s) "
                                         "given full rank", fused, ranked)


def quantization_settings(precision: str, *, reduce_range: bool = True) -> dict[str, Any] | None:
    """What ONNX Runtime's quantizer is asked for at ``precision`` (None: no quantization)."""
    if precision == "dynamic":
        return {"weight_type": "QInt8", "reduce_range": reduce_range}
    if precision in ("int8", "int16x8"):
        return {"format": "QDQ", "activation_type": "QInt16" if precision == "int16x8" else "QInt8",
                "weight_type": "QInt8", "per_channel": True, "reduce_range": reduce_range and precision == "int8"}
    return None


def _quantize(proto: Any, model: Model, precision: str, calibration: Sequence[dict[str, Any]] | None,
              keep_float: Sequence[str] = (), *, reduce_range: bool = True) -> Any:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quant.onnx")
        onnx.save_model(proto, src)
        settings = quantization_settings(precision, reduce_range=reduce_range) or {}
        if precision == "dynamic":
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, reduce_range=settings["reduce_range"])
            return onnx.load_model(dst)
        calibration = require_calibration(calibration)
        names = [s.tensor for s in model.inputs]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(calibration or [])

            def get_next(self) -> dict[str, Any] | None:
                sample = next(self._it, None)
                return None if sample is None else {n: sample[s.name] for n, s in zip(names, model.inputs)}

        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=settings["per_channel"],
                        activation_type=getattr(QuantType, settings["activation_type"]),
                        weight_type=getattr(QuantType, settings["weight_type"]),
                        reduce_range=settings["reduce_range"], nodes_to_exclude=list(keep_float))
        return onnx.load_model(dst)


def emit(job: EmitJob) -> str:
    """The ``onnx`` target (:mod:`tfopt.targets`)."""
    return emit_onnx(job.portable, job.path, precision=job.precision, calibration=job.calibration,
                     opset=job.quantize.opset if job.quantize is not None else None, keep_float=job.keep_float,
                     converted=job.converted)
