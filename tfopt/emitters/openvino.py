"""OpenVINO IR (``model.xml`` + ``model.bin``) through ``openvino.convert_model`` on the frozen graph.

``fp32``: FP32 weights; ``fp16``: weights compressed to FP16; ``dynamic``: NNCF weight
compression (INT8 weights, float activations); ``int8``: NNCF post-training quantization with the
same calibration data as the other targets. OpenVINO has no int16-activation mode. Telemetry is
impossible (see ``tfopt._openvino``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tfopt._io import atomic_path
from tfopt._openvino import nncf, openvino
from tfopt.emitters.openvino_precise import keep_integer_casts_precise
from tfopt.errors import ConversionError, OptionError
from tfopt.graph import Model, tensor_port
from tfopt.targets import require_calibration

if TYPE_CHECKING:
    from tfopt.targets import EmitJob


@dataclass(frozen=True)
class Preprocess:
    """Model Optimizer's old input options, baked into the IR by OpenVINO's PrePostProcessor:
    the IR takes ``raw`` and computes ``(reverse_channels(raw) - mean) / scale`` (mean and scale in
    the model's channel order) before the model."""

    layout: str = "NHWC"
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    reverse_channels: bool = False

    def to_raw(self, x: np.ndarray) -> np.ndarray:
        """What the IR must be fed to reproduce model input ``x`` (for verification)."""
        raw = x * np.asarray(self.scale or (1.0,), x.dtype) + np.asarray(self.mean or (0.0,), x.dtype)
        return raw[..., ::-1] if self.reverse_channels else raw


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy-controlled quantization: layers go back to float until the top-1 accuracy
    drop on ``inputs``/``labels`` is within ``max_drop`` (absolute, e.g. 0.01 = one point).
    ``top1(scores, labels, reference)``: the accuracy as a fraction, a one-score classifier's threshold
    taken from ``reference`` (the original's scores); the pipeline gives
    :func:`tfopt.verification.classes.top1_fraction`, the one class rule (emitters sit below verification)."""

    max_drop: float
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    top1: Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def convert_to_openvino(model: Model) -> Any:
    """The FP32 ``ov.Model`` of ``model``'s frozen graph, every output named after the model's output
    (:mod:`tfopt.emitters.openvino_outputs`), auto-named layers renumbered canonically."""
    from tfopt.emitters.strings import check_no_strings

    check_no_strings(model, "openvino")
    from tfopt.emitters.openvino_outputs import model_names_only, name_outputs, unnamed_outputs
    from tfopt.emitters.output_identity import outputs_behind_identity

    ov_model = _convert_graph(model.graph_def)
    lost = [spec.node for spec in unnamed_outputs(ov_model, model) if tensor_port(spec.tensor) == 0]
    if lost:  # the frontend replaced the output's op and dropped its name (TensorListStack of a loop)
        ov_model = _convert_graph(outputs_behind_identity(model, lost))
    name_outputs(ov_model, model)  # pass-through, constant and folded outputs (openvino_outputs)
    model_names_only(ov_model, model)  # no removed op's name beside an input's or output's (openvino_outputs)
    from tfopt.emitters.openvino_weight_quant import fold_weight_reshapes

    fold_weight_reshapes(ov_model)  # fake-quantized depthwise kernels: int8, not f32 (see there)
    from tfopt.emitters.openvino_bias_fold import fold_biases_into_quantize

    fold_biases_into_quantize(ov_model)  # conv + bias + fake quant: one int8 kernel (see there)
    _canonical_names(ov_model)  # before NNCF too: it derives its layer names from these
    return ov_model


def _convert_graph(graph_def: Any) -> Any:
    from tfopt.emitters.converter_lower import lower_for_converter
    from tfopt.emitters.lrn_lower import lower_lrns
    from tfopt.emitters.reverse_axes import split_reverses
    from tfopt.emitters.scatter_lower import lower_scatters
    from tfopt.emitters.tensor_array_rank import set_tensor_array_ranks

    ov = openvino()
    # Resizes OpenVINO's frontend has no exact form of: TensorFlow's weights (resize_lower); a reverse
    # over several axes, which it cannot translate: one reverse per axis (reverse_axes); LRN, whose CPU
    # kernel misses TensorFlow's formula: the formula itself (lrn_lower); a TF1 TensorArray whose
    # element rank it cannot learn: the rank TensorFlow knows (tensor_array_rank); a ScatterNd, whose repeated
    # indices its ScatterNDUpdate does not add up: tensor_scatter_nd_add into zeros (scatter_lower).
    # Through a .pb file: OpenVINO's C++ TensorFlow frontend reads function bodies (While/If) that
    # its Python GraphDef iterator cannot ("'_DefinedFunction' object has no attribute 'graph'").
    with tempfile.TemporaryDirectory() as tmp_pb:
        pb = os.path.join(tmp_pb, "frozen.pb")
        with open(pb, "wb") as f:
            lowered = lower_for_converter(set_tensor_array_ranks(graph_def))
            lowered.report()
            f.write(lower_scatters(lower_lrns(split_reverses(lowered.graph_def))).SerializeToString())
        try:
            return ov.convert_model(pb)
        except Exception as exc:
            raise ConversionError(f"openvino.convert_model failed: {_first_error(str(exc))}") from exc


def emit_openvino(model: Model, path: str, *, precision: str = "fp32",
                  calibration: Sequence[dict[str, Any]] | None = None, preprocess: Preprocess | None = None,
                  accuracy_control: AccuracyControl | None = None, keep_float: Sequence[str] = (),
                  converted: Any = None) -> str:
    """Write the IR into directory ``path`` (``model.xml`` + ``model.bin``). Returns the xml path.

    ``keep_float`` (int8) names layers (friendly names) NNCF leaves in float: its ``IgnoredScope``.
    ``converted`` is a :func:`convert_to_openvino` result to start from (cloned, not changed).
    """
    ov = openvino()
    if precision == "int16x8":
        raise OptionError("openvino has no int16-activation mode; use int8 or fp16")
    ov_model = converted.clone() if converted is not None else convert_to_openvino(model)
    if precision == "int8":
        calibration = require_calibration(calibration)
        order = [s.name for s in model.inputs]
        dataset = nncf().Dataset(list(calibration), lambda sample: [sample[n] for n in order])
        ignored = nncf().IgnoredScope(names=list(keep_float)) if keep_float else None
        if accuracy_control is None:
            ov_model = nncf().quantize(ov_model, dataset, subset_size=len(calibration), ignored_scope=ignored)
        else:
            ov_model = _quantize_with_accuracy_control(ov_model, dataset, order, accuracy_control, len(calibration))
    elif precision == "dynamic":
        ov_model = nncf().compress_weights(ov_model)
    elif precision not in ("fp32", "none", "fp16"):
        raise OptionError(f"openvino: unknown precision '{precision}'")
    if preprocess is not None:  # after quantization: NNCF calibrates the model the data was made for
        ov_model = _with_preprocess(ov, ov_model, preprocess, model)
    _canonical_names(ov_model)
    with atomic_path(path, directory=True) as tmp:
        os.makedirs(tmp)
        ov.save_model(ov_model, os.path.join(tmp, "model.xml"), compress_to_fp16=precision == "fp16")
        keep_integer_casts_precise(os.path.join(tmp, "model.xml"))  # ids fed as floats stay exact in bf16
    return os.path.join(path, "model.xml")


def _first_error(message: str) -> str:
    """The frontend's own line; for ops it has no translation of, what to do (nothing tfopt rewrites helps)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("--")), lines[0] if lines else "unknown error")[:400]
    if "No conversion rule found for operations" in detail:
        detail += ("; OpenVINO's TensorFlow frontend has no translation of these ops: leave openvino out of --to "
                   "(the other targets are still written)")
    return detail


def _with_preprocess(ov: Any, ov_model: Any, pre: Preprocess, model: Model) -> Any:
    if len(model.inputs) != 1:
        raise OptionError("--ov-layout/--ov-mean-values/--ov-scale-values/--ov-reverse-input-channels need a "
                          f"single-input model; this one has {', '.join(s.name for s in model.inputs)}")
    ppp = ov.preprocess.PrePostProcessor(ov_model)
    item = ppp.input(0)
    item.tensor().set_layout(ov.Layout(pre.layout))
    item.model().set_layout(ov.Layout(pre.layout))
    steps = item.preprocess()
    if pre.reverse_channels:
        steps.reverse_channels()
    if pre.mean:
        steps.mean(list(pre.mean))
    if pre.scale:
        steps.scale(list(pre.scale))
    return ppp.build()


def _quantize_with_accuracy_control(ov_model: Any, dataset: Any, order: list[str], control: AccuracyControl,
                                    subset: int) -> Any:
    n = len(control.labels)
    items = [([control.inputs[name][i:i + 1] for name in order], control.labels[i]) for i in range(n)]
    validation = nncf().Dataset(items, lambda item: item[0])

    originals: list[np.ndarray] = []  # NNCF scores the original model first: its scores fix a one-score classifier's boundary

    def top1(compiled: Any, data: Any) -> float:  # NNCF passes the (sub)set of items to score
        items = list(data)
        if not items:
            return 0.0
        scores = np.concatenate([np.asarray(compiled(inputs)[0]) for inputs, _ in items])
        labels = np.asarray([label for _, label in items]).reshape(len(items), -1)[:, 0]
        if not originals:
            originals.append(scores)
        return control.top1(scores, labels, originals[0])

    return nncf().quantize_with_accuracy_control(ov_model, dataset, validation, validation_fn=top1,
                                                 max_drop=control.max_drop, drop_type=nncf().DropType.ABSOLUTE,
                                                 subset_size=subset)


_AUTO_NAME = re.compile(r"([A-Z][A-Za-z0-9]*)_\d+")


def _canonical_names(ov_model: Any, start: int = 0) -> int:
    """Renumber auto-named layers (``Constant_103497``: a process-wide counter) by topological
    position, the bodies of ``Loop``/``TensorIterator``/``If`` right after their op, so identical
    conversions give identical IR in any process, whatever it converted before. Tensor names, which
    runtimes bind to, are untouched. Returns the next position."""
    index = start
    for op in ov_model.get_ordered_ops():
        auto = _AUTO_NAME.fullmatch(op.get_friendly_name())  # "Transpose_103500", also on a folded Const
        if auto:
            op.set_friendly_name(f"{auto.group(1)}_{index}")
        index += 1
        for body in _bodies(op):
            index = _canonical_names(body, index)
    return index


def _bodies(op: Any) -> list[Any]:
    kind = op.get_type_name()
    if kind == "If":
        return [op.get_then_body(), op.get_else_body()]
    return [op.get_function()] if kind in ("Loop", "TensorIterator") else []


def emit(job: EmitJob) -> str:
    """The ``openvino`` target (:mod:`tfopt.targets`): NNCF's accuracy control applies to int8 only."""
    return emit_openvino(job.portable, job.path, precision=job.precision, calibration=job.calibration,
                         preprocess=job.quantize.ov_preprocess if job.quantize is not None else None,
                         accuracy_control=job.accuracy_control if job.precision == "int8" else None,
                         keep_float=job.keep_float, converted=job.converted)
