"""The pipeline the CLI and the Python API share: load -> freeze -> (later stages) -> emit."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tfopt.errors import OptionError, stage
from tfopt.graph import Model
from tfopt.signals import checkpoint

if TYPE_CHECKING:
    from tfopt.freezing import FreezeReport
    from tfopt.optimizing import OptimizeReport

LOAD_OPTIONS = ("signature", "tags", "outputs", "unsafe", "custom_objects", "model_fn", "format", "compress")
SAVE_FORMATS = ("pb", "pbtxt", "savedmodel")
# The API's keywords are the CLI's option names (``--set`` -> ``set``, ``--input-format`` ->
# ``input_format``); the internal names stay accepted as aliases.
CLI_NAMES = {"set": "set_values", "input_format": "format"}


def cli_names(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with CLI-named keywords mapped to the internal ones (both given: an error)."""
    out = dict(options)
    for cli, internal in CLI_NAMES.items():
        if cli in out:
            if internal in out:
                raise OptionError(f"give '{cli}' or '{internal}', not both (they are the same option)")
            out[internal] = out.pop(cli)
    return out


def freeze_model(model: Model | str | os.PathLike[str], **options: Any) -> tuple[Model, FreezeReport]:
    """Load (when given a path) and freeze. Load options and freeze options may be mixed."""
    from tfopt.freezing import freeze
    from tfopt.loaders import load

    options = cli_names(options)
    load_opts = {k: options.pop(k) for k in list(options) if k in LOAD_OPTIONS}
    if not isinstance(model, Model):
        with stage("loading"):
            model = load(model, **load_opts)
    elif load_opts:
        raise OptionError(f"load options {sorted(load_opts)} given for an already loaded model")
    with stage("freezing"):
        return freeze(model, **options)


OPTIMIZE_OPTIONS = ("passes", "skip", "grappler")


def optimize_model(model: Model | str | os.PathLike[str], **options: Any) -> tuple[Model, Model, FreezeReport, OptimizeReport]:
    """Load (when given a path), freeze and optimize.

    Returns ``(portable, runtime, freeze_report, optimize_report)``: ``portable`` is folded but
    unfused (for TFLite/ONNX/OpenVINO), ``runtime`` adds TF-only fusion (for .pb / SavedModel).
    Freeze options, load options and ``passes``/``skip``/``grappler`` may be mixed.
    """
    from tfopt._checks import check_ranges
    from tfopt.optimizing import DEFAULT_ATOL, DEFAULT_RTOL, optimize

    opt = {k: options.pop(k) for k in list(options) if k in OPTIMIZE_OPTIONS}
    verify = options.get("verify", True)
    atol, rtol = options.pop("opt_atol", DEFAULT_ATOL), options.pop("opt_rtol", DEFAULT_RTOL)
    check_ranges({"--atol": (atol, 0), "--rtol": (rtol, 0)})  # before the load, not after it
    frozen, freeze_report = freeze_model(model, **options)
    checkpoint()  # a safe point for an interrupt (see tfopt.signals)
    with stage("optimizing"):
        portable, runtime, report = optimize(frozen, verify=verify, atol=atol, rtol=rtol,
                                             verified_at=freeze_report.verified_at, **opt)
    return portable, runtime, freeze_report, report


def infer_format(path: str, format: str | None) -> str:
    if format is not None:
        if format not in SAVE_FORMATS:
            raise OptionError(f"--format {format}: choose one of {', '.join(SAVE_FORMATS)}")
        return format
    lower = path.lower()
    if lower.endswith(".pbtxt"):
        return "pbtxt"
    if lower.endswith(".pb"):
        return "pb"
    return "savedmodel"


def save_model(model: Model, path: str, *, format: str | None = None, source: str | None = None,
               overwrite: bool = False) -> str:
    """Emit ``model`` to ``path`` (atomically).

    Refuses (before writing) to overwrite the input model (``source``, else the path ``model`` was
    loaded from) or an existing directory tfopt did not write, unless ``overwrite``; see
    :mod:`tfopt.outputs`.
    """
    from tfopt.outputs import check_output, model_path

    fmt = infer_format(path, format)
    check_output(path, inputs=[source, model_path(model)], kind="dir" if fmt == "savedmodel" else "file",
                 overwrite=overwrite)
    if fmt == "savedmodel":
        from tfopt.emitters.savedmodel import emit_savedmodel

        return emit_savedmodel(model, path)
    from tfopt.emitters.frozen_graph import emit_frozen_graph

    return emit_frozen_graph(model, path, text=fmt == "pbtxt")
