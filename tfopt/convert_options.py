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

import importlib.util
import os
import zipfile
from collections.abc import Sequence
from typing import Any

from tfopt._checks import check_ranges
from tfopt.errors import OptionError

TARGETS = ("pb", "savedmodel", "tflite", "onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
PRECISION_ALIASES = {"none": "fp32"}  # tfopt < 0.2 called float32 "none"
SUPPORTED = {
    "pb": ("fp32",), "savedmodel": ("fp32",), "tflite": PRECISIONS, "onnx": PRECISIONS,
    "openvino": ("fp32", "fp16", "dynamic", "int8"),
}
EXTRA_MODULE = {"tflite": "ai_edge_litert", "onnx": "tf2onnx", "openvino": "openvino"}
NEEDS_CALIBRATION = frozenset({"int8", "int16x8"})
CALIBRATION_SUFFIXES = (".npz", ".npy", ".tfrecord", ".tfrecords", ".tfr")
MAX_OPSET = 18  # tf2onnx 1.17's newest
QAT_MARKERS = (b"QuantizeWrapper", b"FakeQuantWithMinMax")


def available_targets() -> list[str]:
    return [t for t in TARGETS if t not in EXTRA_MODULE or importlib.util.find_spec(EXTRA_MODULE[t]) is not None]


def plan(to: Sequence[str] | None, precisions: Sequence[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """``(format, precision)`` pairs to build, and those skipped with a reason.

    Explicitly requested pairs that cannot be built are an :class:`OptionError`; with the default
    target list they are skipped and reported instead.
    """
    precisions = list(dict.fromkeys(PRECISION_ALIASES.get(p, p) for p in precisions))
    for p in precisions:
        if p not in PRECISIONS:
            raise OptionError(f"--quantize {p}: choose from {', '.join(PRECISIONS)}")
    explicit = to is not None
    targets = list(to) if to is not None else available_targets()
    for target in targets:
        if target not in TARGETS:
            raise OptionError(f"--to {target}: choose from {', '.join(TARGETS)}")
        if target in EXTRA_MODULE and importlib.util.find_spec(EXTRA_MODULE[target]) is None:
            raise OptionError(f"--to {target}: the '{target}' extra is not installed: pip install 'tfopt[{target}]'")
    pairs, skipped = [], []
    for target in targets:
        for p in precisions:
            if p in SUPPORTED[target]:
                pairs.append((target, p))
            elif target in ("pb", "savedmodel"):
                if (target, "fp32") not in pairs:
                    pairs.append((target, "fp32"))  # TF-runtime artifacts are always float
            elif explicit:
                raise OptionError(f"--to {target} --quantize {p}: {target} has no {p} mode")
            else:
                skipped.append((target, p, f"{target} has no {p} mode"))
    return pairs, skipped


def check_options(model: Any, outdir: str, *, to: Sequence[str] | None = None, quantize: Sequence[str] = ("fp32",),
                  calibration: str | None = None, calibration_samples: int = 100,
                  accuracy_control: float | None = None, eval_data: str | None = None,
                  keep_float: Sequence[str] = (), auto_keep_float: float | None = None, metric: str | None = None,
                  fail_if: Sequence[str] = (), junit: str | None = None, report_runs: int = 20,
                  threads: int | None = None, opset: int | None = None, finetune_data: str | None = None,
                  **_ignored: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Check every convert option that needs no loaded model; return :func:`plan`'s result.

    Args:
        model: the path (or an already loaded :class:`tfopt.graph.Model`).
        outdir, to, quantize, ...: :func:`tfopt.convert`'s keywords of the same names; others are ignored.

    Raises:
        OptionError: a bad value or combination, naming the option and the fix.
        OutputPathError: ``outdir`` cannot be written.
    """
    from tfopt._io import check_writable
    from tfopt.report.gates import parse_gate

    for gate in fail_if:
        parse_gate(gate)
    pairs, skipped = plan(to, quantize)
    check_ranges({"--calibration-samples": (calibration_samples, 1), "--report-runs": (report_runs, 1),
                  "--threads": (threads, 1), "--opset": (opset, 7)}, integer=True)
    check_ranges({"--accuracy-control": (accuracy_control, 0), "--auto-keep-float": (auto_keep_float, 0)})
    if opset is not None and opset > MAX_OPSET:
        raise OptionError(f"--opset {opset}: tf2onnx converts up to opset {MAX_OPSET}")
    if accuracy_control is not None:
        if not eval_data:
            raise OptionError("--accuracy-control needs --eval-data DATA.npz holding the inputs (by name) and 'labels'")
        if ("openvino", "int8") not in pairs:
            raise OptionError("--accuracy-control is OpenVINO int8's: add openvino to --to and int8 to --quantize")
        if keep_float or auto_keep_float is not None:
            raise OptionError("--accuracy-control is NNCF's own keep-float search for openvino int8; "
                              "pass it or --keep-float/--auto-keep-float, not both")
    if metric and not eval_data:
        raise OptionError(f"--metric {metric}: needs --eval-data DATA.npz holding the labels it scores against")
    if metric and (":" not in metric or metric.startswith(":") or metric.endswith(":")):
        raise OptionError(f"--metric '{metric}': expected 'package.module:function'")
    if auto_keep_float is not None and not any(p in NEEDS_CALIBRATION for _, p in pairs):
        raise OptionError("--auto-keep-float ranks layers of int8/int16x8 artifacts: add int8 to --quantize")
    for option, path in (("--eval-data", eval_data), ("--finetune-data", finetune_data)):
        if path is not None:
            _check_npz(option, path)
    if calibration is not None:
        _check_calibration(calibration)
    elif any(p in NEEDS_CALIBRATION for _, p in pairs) and not _could_be_quantization_aware(model):
        raise OptionError("--quantize int8/int16x8 needs calibration data: pass --calibration DATA "
                          "(.npz keyed by input name, .npy, .tfrecord, an image directory, or module:function)")
    check_writable(outdir)
    if junit:
        check_writable(junit)
    return pairs, skipped


def _check_npz(option: str, path: str) -> None:
    if not os.path.isfile(path):
        raise OptionError(f"{option} {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise OptionError(f"{option} {path}: not a .npz (numpy.savez) file")


def _check_calibration(source: str) -> None:
    if ":" in source and not os.path.exists(source):
        module, _, function = source.partition(":")
        if not module or not function:
            raise OptionError(f"--calibration '{source}': expected 'package.module:function'")
        return  # imported when the data is read: it may need the model's TensorFlow
    if not os.path.exists(source):
        raise OptionError(f"--calibration {source}: no such file or directory")
    if os.path.isdir(source):
        return
    if not source.endswith(CALIBRATION_SUFFIXES):
        raise OptionError(f"--calibration {source}: expected a .npz (keyed by input name), a .npy, a .tfrecord, "
                          "a directory of images or package.module:function")
    if source.endswith(".npz") and not zipfile.is_zipfile(source):
        raise OptionError(f"--calibration {source}: not a .npz (numpy.savez) file")
    if source.endswith(".npy"):
        with open(source, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise OptionError(f"--calibration {source}: not a .npy (numpy.save) file")


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
