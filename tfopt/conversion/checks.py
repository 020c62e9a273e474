"""``tfopt convert``'s options, checked before any work: what to build, and every option and
combination that can be judged without loading the model.

:func:`check_options` runs first in both the CLI and :func:`tfopt.convert`, within a second of
start and without importing TensorFlow, so a typo costs nothing instead of a load, freeze and
optimize. What needs the model (calibration names, shapes and dtypes; eval-data labels; layer
names) is checked right after loading, before any conversion.

Calibration for int8/int16x8 is required up front unless the model *could* be quantization-aware
(QAT models carry their own ranges). Knowing for sure needs the loaded graph; the cheap, honest
test is whether the model's files mention TFMOT's ``QuantizeWrapper`` or a
``FakeQuantWithMinMax*`` op. Only those models, and a TF2 checkpoint (whose graph comes from
``--model-fn``), are let through to the check after loading.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from typing import Any

from tfopt.errors import OptionError
from tfopt.options import ConvertOptions
from tfopt.targets import NEEDS_CALIBRATION, NO_CALIBRATION, TABLE, Precision, available_targets, target
from tfopt.verification.calibration import calibration_problem
from tfopt.verification.input_data import npz_problem

MAX_OPSET = 18  # tf2onnx 1.17's newest
QAT_MARKERS = (b"QuantizeWrapper", b"FakeQuantWithMinMax")


def plan(to: Sequence[str] | None, precisions: Sequence[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """``(format, precision)`` pairs to build, and those skipped with a reason, from the table of
    :mod:`tfopt.targets`.

    Explicitly requested pairs that cannot be built are an :class:`OptionError`; with the default
    target list they are skipped and reported instead. A float-only target builds fp32 once,
    whatever the precisions.
    """
    wanted = list(dict.fromkeys(Precision.parse(p).value for p in precisions))
    explicit = to is not None
    records = [target(name) for name in to] if to is not None else [TABLE[n] for n in available_targets()]
    for record in records:
        if not record.available():
            raise OptionError(f"--to {record.name}: the '{record.name}' extra is not installed: "
                              f"pip install 'tfopt[{record.name}]'")
    pairs, skipped = [], []
    for record in records:
        for p in wanted:
            if p in record.precisions:
                pairs.append((record.name, p))
            elif record.float_only:
                if (record.name, "fp32") not in pairs:
                    pairs.append((record.name, "fp32"))
            elif explicit:
                raise OptionError(f"--to {record.name} --quantize {p}: {record.name} has no {p} mode")
            else:
                skipped.append((record.name, p, f"{record.name} has no {p} mode"))
    return pairs, skipped


def check_options(model: Any, outdir: str, options: ConvertOptions | None = None,
                  **kwargs: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Check every convert option that needs no loaded model; return :func:`plan`'s result.

    Args:
        model: the path (or an already loaded :class:`tfopt.graph.Model`).
        outdir: the output directory.
        options: the :class:`ConvertOptions` (default: built from ``kwargs``, the flat keywords
            of :func:`tfopt.convert`).

    Raises:
        OptionError: a bad value or combination, naming the option and the fix.
        OutputPathError: ``outdir`` cannot be written.
    """
    from tfopt._io import check_writable
    from tfopt.report.gates import parse_gate

    o = ConvertOptions.from_kwargs(options, **kwargs)
    q, r = o.quantize, o.report
    for gate in r.fail_if:
        parse_gate(gate)
    pairs, skipped = plan(q.to, q.quantize)
    o.check()  # every numeric option's range (tfopt._checks.RANGES), and --metric's form
    if q.opset is not None and q.opset > MAX_OPSET:
        raise OptionError(f"--opset {q.opset}: tf2onnx converts up to opset {MAX_OPSET}")
    quantized = any(p in NEEDS_CALIBRATION for _, p in pairs)
    if q.accuracy_control is not None:
        if not r.eval_data:
            raise OptionError("--accuracy-control needs --eval-data DATA.npz holding the inputs (by name) and 'labels'")
        owners = [t for t in TABLE.values() if t.accuracy_control]  # whose converter runs its own search
        what = " or ".join(f"{t.name} {'/'.join(t.accuracy_control)}" for t in owners)
        if not any(p in TABLE[t].accuracy_control for t, p in pairs):
            modes = "/".join(dict.fromkeys(p for t in owners for p in t.accuracy_control))
            raise OptionError(f"--accuracy-control is {what}'s: add {' or '.join(t.name for t in owners)} to --to "
                              f"and {modes} to --quantize")
        if q.keep_float or q.auto_keep_float is not None:
            raise OptionError(f"--accuracy-control is {what}'s own keep-float search (its converter's); "
                              "pass it or --keep-float/--auto-keep-float, not both")
    _check_int8(q, pairs)
    from tfopt.quantizing.qat.finetune import check_options as check_finetune

    check_finetune(model, q, o.compress, pairs)  # --finetune-data with int8: quantization-aware fine-tune
    if q.auto_keep_float is not None and not quantized:
        raise OptionError("--auto-keep-float ranks layers of int8/int16x8 artifacts: add int8 to --quantize")
    for option, path in (("--eval-data", r.eval_data), ("--finetune-data", o.compress.finetune_data),
                         ("--calibration", q.calibration)):
        problem = path is not None and (calibration_problem if option == "--calibration" else npz_problem)(path)
        if problem:
            raise OptionError(f"{option} {path}: {problem}")
    if q.calibration is None and quantized and not _could_be_quantization_aware(model):
        # refused here when the model cannot be quantization-aware; after loading
        # (tfopt.conversion.stages.check_calibration) when its graph shows it is not
        raise OptionError(NO_CALIBRATION)
    check_writable(outdir)
    if r.junit:
        check_writable(r.junit)
    return pairs, skipped


def _check_int8(q: Any, pairs: list[tuple[str, str]]) -> None:
    """The int8 engine's options: valid values, and only where the engine builds int8."""
    from tfopt.quantizing.engine.plan import QUANTIZERS
    from tfopt.quantizing.engine.quantize import Recipe
    from tfopt.quantizing.engine.ranges import parse_method

    if q.quantizer not in QUANTIZERS:
        raise OptionError(f"--quantizer {q.quantizer}: choose tfopt (int8 decided once in the TF graph, the same "
                          "in every target) or native (each converter's own)")
    if q.int8_recipe not in (None, "auto"):
        Recipe.parse(q.int8_recipe)
    if q.calibration_method:
        parse_method(q.calibration_method)
    engine_options = [name for name, given in (("--int8-recipe", q.int8_recipe), ("--calibration-method",
                      q.calibration_method), ("--per-tensor", q.per_tensor)) if given]
    if engine_options and q.quantizer != "tfopt":
        raise OptionError(f"{engine_options[0]} sets tfopt's int8 engine: drop it or use --quantizer tfopt "
                          "(the native converters choose their own ranges)")
    if engine_options and not any(p == "int8" for _, p in pairs):
        raise OptionError(f"{engine_options[0]} applies to int8 artifacts: add int8 to --quantize")


def _could_be_quantization_aware(model: Any) -> bool:
    """Whether ``model`` may hold TFMOT fake-quant ops, read from its files without TensorFlow.
    A loaded model is asked directly; a TF2 checkpoint's graph is its --model-fn's: unknown."""
    if not isinstance(model, (str, os.PathLike)):
        return any(n.op.startswith("FakeQuantWithMinMax") for n in model.graph_def.node)
    path = os.fspath(model)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            files = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".pb")]
        else:  # a checkpoint directory: a TF1 one has its graph in a .meta
            files = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".meta")]
    elif os.path.isfile(path):
        files = [path]
    else:  # a checkpoint prefix
        files = [path + ".meta"] if os.path.isfile(path + ".meta") else []
    if not files:
        return True  # a TF2 object checkpoint, or something load() will name: decide after loading
    return any(_mentions(f, QAT_MARKERS) for f in files)


def _mentions(path: str, markers: tuple[bytes, ...]) -> bool:
    if zipfile.is_zipfile(path):  # a Keras 3 .keras: the config is compressed inside
        with zipfile.ZipFile(path) as archive:
            return any(_mentions_bytes(archive.read(n), markers) for n in archive.namelist() if n.endswith(".json"))
    overlap = max(len(m) for m in markers)
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            if _mentions_bytes(tail + chunk, markers):
                return True
            tail = chunk[-overlap:]
    return False


def _mentions_bytes(data: bytes, markers: tuple[bytes, ...]) -> bool:
    return any(m in data for m in markers)
