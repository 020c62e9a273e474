"""tfopt: take a TensorFlow model from training to lean, verified deployment artifacts.

Each public function forwards to the module that does the work - :func:`tfopt.loaders.load`,
:mod:`tfopt.conversion.pipeline` (freeze, optimize, save), :func:`tfopt.conversion.convert.convert`,
:func:`tfopt.report.inspect.inspect_path` - importing it when called, so importing :mod:`tfopt`
does not import TensorFlow (the return types are imported for type checkers only). Keywords are
the CLI's option names.

Each call is as quiet as the CLI: what TensorFlow, the converters and the runtimes print (C++
logging, NNCF progress, ONNX Runtime warnings, tf2onnx logging) is captured at the file-descriptor
level (:func:`tfopt.terminal.capture.quiet`). ``verbose=True`` shows it live on stderr, ``log=PATH`` appends it
to a file; on failure the exception carries its last lines as a note, shown under the traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# TensorFlow's C++ logging defaults to INFO (68 lines of CUDA probing and absl notices per run);
# set a quiet default before anything can import TensorFlow, unless the user chose a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfopt._version import __version__ as __version__
from tfopt.errors import (  # every typed error, catchable as tfopt.<Name> (tests/test_public_api.py)
    ConversionError,
    ConverterCrashError,
    GateFailure,
    GraphError,
    IllConditionedError,
    LambdaCodeError,
    MadeUpInputsError,
    ModelFormatError,
    ModelNotFoundError,
    OptionError,
    OutputMismatchError,
    OutputPathError,
    ProtobufLimitError,
    StatefulModelError,
    StochasticModelError,
    StoreFormatError,
    TargetError,
    TensorPairingError,
    TfoptError,
    UnregisteredOpError,
    UnsafeModelError,
    VerificationError,
    VerificationTimeoutError,
)
from tfopt.options import (
    CompressOptions,
    ConvertOptions,
    FreezeOptions,
    LoadOptions,
    OptimizeOptions,
    QuantizeOptions,
    ReportOptions,
)

if TYPE_CHECKING:
    from tfopt.conversion.convert import ConvertResult
    from tfopt.freezing import FreezeReport
    from tfopt.graph import Model
    from tfopt.passes.optimizing import OptimizeReport

__all__ = [
    "CompressOptions",
    "ConversionError",
    "ConvertOptions",
    "ConverterCrashError",
    "FreezeOptions",
    "GateFailure",
    "GraphError",
    "IllConditionedError",
    "LambdaCodeError",
    "LoadOptions",
    "MadeUpInputsError",
    "ModelFormatError",
    "ModelNotFoundError",
    "OptimizeOptions",
    "OptionError",
    "OutputMismatchError",
    "OutputPathError",
    "ProtobufLimitError",
    "QuantizeOptions",
    "ReportOptions",
    "StatefulModelError",
    "StochasticModelError",
    "StoreFormatError",
    "TargetError",
    "TensorPairingError",
    "TfoptError",
    "UnregisteredOpError",
    "UnsafeModelError",
    "VerificationError",
    "VerificationTimeoutError",
    "convert",
    "freeze",
    "inspect",
    "load",
    "optimize",
    "save",
]


def load(path: Any, *, verbose: bool = False, log: str | None = None, **options: Any) -> Model:
    """Load any supported model; see :func:`tfopt.loaders.load`. ``verbose``/``log``: see the module docstring."""
    from tfopt.conversion.pipeline import load_kwargs
    from tfopt.loaders import load as _load
    from tfopt.options import split
    from tfopt.terminal.capture import quiet

    (load_options,) = split(options, "load")
    load_options.check()
    with quiet("load", verbose=verbose, log=log):
        return _load(path, **load_kwargs(load_options))


def freeze(model: Any, *, verbose: bool = False, log: str | None = None, **options: Any) -> tuple[Model, FreezeReport]:
    """Freeze a loaded model (or a path, loaded first); see :func:`tfopt.freezing.freeze`.

    Keywords are the CLI's option names: ``set={"keep_prob": 1.0}`` (``--set``), ``inputs``,
    ``verify``, ``atol``, ``rtol``, and the load options (``outputs``, ``tags``, ``input_format``...);
    ``verbose``/``log``: see the module docstring.

    Returns ``(frozen_model, report)``.
    """
    from tfopt.conversion.pipeline import freeze_model
    from tfopt.terminal.capture import quiet

    with quiet("freeze", verbose=verbose, log=log):
        return freeze_model(model, **options)


def optimize(model: Any, *, verbose: bool = False, log: str | None = None,
             **options: Any) -> tuple[Model, Model, FreezeReport, OptimizeReport]:
    """Freeze (loading first when given a path) and run the optimization passes.

    Returns ``(portable, runtime, freeze_report, optimize_report)``; see :func:`tfopt.passes.optimizing.optimize`
    for ``passes``, ``skip`` and ``grappler``; ``verbose``/``log``: see the module docstring.
    """
    from tfopt.conversion.pipeline import optimize_model
    from tfopt.terminal.capture import quiet

    with quiet("optimize", verbose=verbose, log=log):
        return optimize_model(model, **options)


def convert(model: Any, outdir: str, options: ConvertOptions | None = None, *, verbose: bool = False,
            log: str | None = None, **kwargs: Any) -> ConvertResult:
    """Load, freeze and optimize once, then emit and verify every target x precision into ``outdir``.

    ``options`` is a :class:`tfopt.options.ConvertOptions`; keywords build the same object (or
    change the one given): ``tfopt.convert("m.keras", "out", to=["tflite"], quantize=["int8"],
    calibration="calib.npz")``. ``progress`` (e.g. ``progress=print``) prints to the terminal,
    uncaptured; ``verbose``/``log``: see the module docstring. Returns a
    :class:`tfopt.conversion.convert.ConvertResult`; see :func:`tfopt.conversion.convert.convert`.
    """
    from tfopt.conversion.convert import convert as _convert
    from tfopt.terminal.capture import passthrough, quiet

    with quiet("convert", verbose=verbose, log=log) as capture:
        progress = passthrough(capture, kwargs.pop("progress", None))
        return _convert(model, outdir, options, **({"progress": progress} if progress else {}), **kwargs)


def save(model: Any, path: str, *, format: str | None = None, overwrite: bool = False, verbose: bool = False,
         log: str | None = None) -> str:
    """Write a frozen model: ``pb``, ``pbtxt`` or ``savedmodel`` (inferred from ``path``); the
    output rule of :mod:`tfopt.conversion.output_paths` applies (``overwrite`` replaces a directory tfopt did not write).
    ``verbose``/``log``: see the module docstring."""
    from tfopt.conversion.pipeline import save_model
    from tfopt.terminal.capture import quiet

    with quiet("save", verbose=verbose, log=log):
        return save_model(model, path, format=format, overwrite=overwrite)


def inspect(path: Any, *, verbose: bool = False, log: str | None = None, **options: Any) -> dict[str, Any]:
    """Describe a model or an artifact without changing it; see :func:`tfopt.report.inspect.inspect_path`.
    ``verbose``/``log``: see the module docstring."""
    from tfopt.report.inspect import inspect_path
    from tfopt.terminal.capture import quiet

    with quiet("inspect", verbose=verbose, log=log):
        return inspect_path(path, **options)
