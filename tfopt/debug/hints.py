"""What ``tfopt convert`` suggests when an artifact fails: the ``tfopt debug`` command to run next.

A converter that fails (or writes a model its runtime cannot run) gets ``tfopt debug reduce``: the
smallest subgraph that still fails, with a ``repro.py`` for the converter's maintainers. An
artifact that runs but differs gets ``tfopt debug compare --to``: it rebuilds the artifact
unverified and names the first layer where the error jumps. Only standard-library imports here.
"""

from __future__ import annotations

import shlex
from typing import Any

from tfopt.errors import ConversionError, TfoptError, VerificationError


def debug_command(exc: BaseException, source: str | None, target: str, precision: str,
                  calibration: str | None = None) -> str | None:
    """The ``tfopt debug`` command line for ``exc``, or None (no model path, or another error)."""
    if not source or not isinstance(exc, (ConversionError, VerificationError)):
        return None
    model = shlex.quote(source)
    calib = f" --calibration {shlex.quote(calibration)}" if calibration and precision in ("int8", "int16x8") else ""
    if isinstance(exc, VerificationError):
        return (f"tfopt debug compare {model} --to {target} --quantize {precision}{calib} "
                f"-o debug-{target}-{precision}")
    return f"tfopt debug reduce {model} --target {target} --precision {precision} -o reduce-{target}-{precision}"


def with_debug_hint(exc: TfoptError, source: str | None, target: str, precision: str,
                    calibration: str | None = None) -> TfoptError:
    """``exc``, or a copy of it whose message ends with the command to run next."""
    command = debug_command(exc, source, target, precision, calibration)
    if command is None:
        return exc
    what = "where it first differs" if isinstance(exc, VerificationError) else "the smallest graph that still fails"
    hinted: Any = type(exc)(f"{exc}\n  to find {what}: {command}")
    hinted.__dict__.update(exc.__dict__)
    return hinted
