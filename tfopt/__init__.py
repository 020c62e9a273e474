"""tfopt: take a TensorFlow model from training to lean, verified deployment artifacts.

Each public function forwards to the module that does the work - :func:`tfopt.loaders.load`,
:mod:`tfopt.pipeline` (freeze, optimize, save), :func:`tfopt.converting.convert`,
:func:`tfopt.inspect_model.inspect_model` - importing it when called, so importing :mod:`tfopt`
does not import TensorFlow (the return types are imported for type checkers only). Keywords are
the CLI's option names.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# TensorFlow's C++ logging defaults to INFO (68 lines of CUDA probing and absl notices per run);
# set a quiet default before anything can import TensorFlow, unless the user chose a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfopt.errors import (
    ConversionError,
    GraphError,
    ModelFormatError,
    ModelNotFoundError,
    OptionError,
    OutputPathError,
    TfoptError,
    UnsafeModelError,
    VerificationError,
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
    from tfopt.converting import ConvertResult
    from tfopt.freezing import FreezeReport
    from tfopt.graph import Model
    from tfopt.optimizing import OptimizeReport

__version__ = "0.1.0"
__all__ = [
    "CompressOptions",
    "ConversionError",
    "ConvertOptions",
    "FreezeOptions",
    "GraphError",
    "LoadOptions",
    "ModelFormatError",
    "ModelNotFoundError",
    "OptimizeOptions",
    "OptionError",
    "OutputPathError",
    "QuantizeOptions",
    "ReportOptions",
    "TfoptError",
    "UnsafeModelError",
    "VerificationError",
    "convert",
    "freeze",
    "inspect",
    "load",
    "optimize",
    "save",
]


def load(path: Any, **options: Any) -> Model:
    """Load any supported model; see :func:`tfopt.loaders.load`."""
    from tfopt.loaders import load as _load
    from tfopt.options import split
    from tfopt.pipeline import load_kwargs

    (load_options,) = split(options, "load")
    return _load(path, **load_kwargs(load_options))


def freeze(model: Any, **options: Any) -> tuple[Model, FreezeReport]:
    """Freeze a loaded model (or a path, loaded first); see :func:`tfopt.freezing.freeze`.

    Keywords are the CLI's option names: ``set={"keep_prob": 1.0}`` (``--set``), ``inputs``,
    ``verify``, ``atol``, ``rtol``, and the load options (``outputs``, ``tags``, ``input_format``...).

    Returns ``(frozen_model, report)``.
    """
    from tfopt.pipeline import freeze_model

    return freeze_model(model, **options)


def optimize(model: Any, **options: Any) -> tuple[Model, Model, FreezeReport, OptimizeReport]:
    """Freeze (loading first when given a path) and run the optimization passes.

    Returns ``(portable, runtime, freeze_report, optimize_report)``; see :func:`tfopt.optimizing.optimize`
    for ``passes``, ``skip`` and ``grappler``.
    """
    from tfopt.pipeline import optimize_model

    return optimize_model(model, **options)


def convert(model: Any, outdir: str, options: ConvertOptions | None = None, **kwargs: Any) -> ConvertResult:
    """Load, freeze and optimize once, then emit and verify every target x precision into ``outdir``.

    ``options`` is a :class:`tfopt.options.ConvertOptions`; keywords build the same object (or
    change the one given): ``tfopt.convert("m.keras", "out", to=["tflite"], quantize=["int8"],
    calibration="calib.npz")``. Returns a :class:`tfopt.converting.ConvertResult`; see
    :func:`tfopt.converting.convert`.
    """
    from tfopt.converting import convert as _convert

    return _convert(model, outdir, options, **kwargs)


def save(model: Any, path: str, *, format: str | None = None, overwrite: bool = False) -> str:
    """Write a frozen model: ``pb``, ``pbtxt`` or ``savedmodel`` (inferred from ``path``); the
    output rule of :mod:`tfopt.outputs` applies (``overwrite`` replaces a directory tfopt did not write)."""
    from tfopt.pipeline import save_model

    return save_model(model, path, format=format, overwrite=overwrite)


def inspect(path: Any, **options: Any) -> dict[str, Any]:
    """Describe a model without changing it; see :func:`tfopt.inspect_model.inspect_model`."""
    from tfopt.inspect_model import inspect_model

    return inspect_model(path, **options)
