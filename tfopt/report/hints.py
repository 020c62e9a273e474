"""What ``tfopt convert`` suggests when an artifact fails: the ``tfopt debug`` command to run next.

A converter that fails (or writes a model its runtime cannot run) gets ``tfopt debug reduce``: the
smallest subgraph that still fails, with a ``repro.py`` for the converter's maintainers. An
artifact that runs but differs gets ``tfopt debug compare --to``: it rebuilds the artifact
unverified and names the first layer where the error jumps. Either command carries the options
that made the graph the converter saw: the load options (``--outputs``, ``--signature`` ...) and
the freeze options (``--inputs``, ``--set``, ``--verify-shape``), so that it reproduces the same
graph. Only standard-library imports here.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from tfopt.errors import (
    ConversionError,
    IllConditionedError,
    ProtobufLimitError,
    TfoptError,
    VerificationError,
    VerificationTimeoutError,
)

PROVENANCE_KEY = "load_flags"  # a loaded model's provenance: the CLI flags it was loaded with


def load_flags(load: Any) -> list[str]:
    """The command-line flags of a :class:`tfopt.options.LoadOptions` that differ from the defaults."""
    if load is None:
        return []
    flags: list[str] = []
    if load.signature != "serving_default":
        flags += ["--signature", load.signature]
    if load.tags:
        flags += ["--tags", *load.tags]
    if load.outputs:
        flags += ["--outputs", *load.outputs]
    for option, value in (("--custom-objects", load.custom_objects), ("--model-fn", load.model_fn),
                          ("--input-format", load.input_format), ("--external-threshold", load.external_threshold)):
        if value:
            flags += [option, str(value)]
    return flags + (["--unsafe"] if load.unsafe else [])


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def freeze_flags(freeze: Any) -> list[str]:
    """The command-line flags of a :class:`tfopt.options.FreezeOptions` that choose the graph:
    ``--inputs NAME[:SHAPE]``, ``--set NAME=VALUE``, ``--verify-shape NAME:SHAPE``."""
    if freeze is None:
        return []
    flags: list[str] = []
    inputs: Mapping[str, Any] = freeze.inputs or {}
    if inputs:
        flags += ["--inputs", *(name if shape is None else f"{name}:{'x'.join('?' if d is None else str(d) for d in shape)}"
                                for name, shape in inputs.items())]
    if freeze.set:
        flags += ["--set", *(f"{name}={_value(value)}" for name, value in freeze.set.items())]
    if freeze.verify_shape:
        flags += ["--verify-shape", *(f"{name}:{'x'.join(str(d) for d in shape)}"
                                      for name, shape in freeze.verify_shape.items())]
    return flags


def reproduce_flags(options: Any, provenance: Mapping[str, Any] | None = None) -> str:
    """``" --outputs y --set keep_prob=1.0 ..."``: what the debug command needs to rebuild the same
    graph, from a :class:`tfopt.options.ConvertOptions` (its load options, else those a loaded
    model's ``provenance`` recorded under :data:`PROVENANCE_KEY`)."""
    if options is None:
        return ""
    recorded = list((provenance or {}).get(PROVENANCE_KEY) or [])
    flags = load_flags(options.load) or recorded
    flags += freeze_flags(options.freeze)
    return "".join(f" {shlex.quote(f)}" for f in flags)


def debug_command(exc: BaseException, source: str | None, target: str, precision: str,
                  calibration: str | None = None, *, flags: str = "") -> str | None:
    """The ``tfopt debug`` command line for ``exc``, or None (no model path, or another error).
    ``flags``: the load and freeze options to repeat (:func:`reproduce_flags`)."""
    if not source or not isinstance(exc, (ConversionError, VerificationError)) \
            or isinstance(exc, (ProtobufLimitError, IllConditionedError, VerificationTimeoutError)):
        return None  # a model too large for a .pb has nothing a smaller graph would show; an ill-conditioned
        # original (tfopt.verification.conditioning) nothing a comparison layer by layer would; a run past
        # --verify-timeout would stop at the same bound in debug compare (its message gives the way out)
    model = shlex.quote(source)
    calib = f" --calibration {shlex.quote(calibration)}" if calibration and precision in ("int8", "int16x8") else ""
    if isinstance(exc, VerificationError):
        return (f"tfopt debug compare {model} --to {target} --quantize {precision}{calib}{flags} "
                f"-o debug-{target}-{precision}")
    return (f"tfopt debug reduce {model} --target {target} --precision {precision}{flags} "
            f"-o reduce-{target}-{precision}")


def with_debug_hint(exc: TfoptError, source: str | None, target: str, precision: str,
                    calibration: str | None = None, *, options: Any = None,
                    provenance: Mapping[str, Any] | None = None) -> TfoptError:
    """``exc``, or a copy of it whose message ends with the command to run next (with the load and
    freeze options of ``options``, a :class:`tfopt.options.ConvertOptions`)."""
    command = debug_command(exc, source, target, precision, calibration, flags=reproduce_flags(options, provenance))
    if command is None:
        return exc
    what = "where it first differs" if isinstance(exc, VerificationError) else "the smallest graph that still fails"
    hinted: Any = type(exc)(f"{exc}\n  to find {what}: {command}")
    hinted.__dict__.update(exc.__dict__)
    return hinted
