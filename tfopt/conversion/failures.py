"""What happens to a requested artifact that fails (``tfopt convert``'s per-target failures): its error
raised in all-or-nothing mode, else recorded (``failed`` in the manifest and report) and its file
removed, so the output holds only verified artifacts; and nothing built at all raises."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Protocol

from tfopt.conversion.parts import ConvertResult, Failure
from tfopt.errors import ConversionError, TfoptError
from tfopt.graph import Model
from tfopt.options import ConvertOptions, LoadOptions
from tfopt.report.hints import with_debug_hint


class Plan(Protocol):
    """What a failure needs of a :class:`~tfopt.conversion.stages.ConvertPlan`."""

    options: ConvertOptions
    load: LoadOptions


def record_failure(p: Plan, result: ConvertResult, target: str, precision: str, during: str,
                   exc: TfoptError, path: str, model: Model) -> None:
    """A requested artifact that failed: its error (with the ``tfopt debug`` command to run next)
    raised in all-or-nothing mode, else recorded in ``result.failed`` and its file removed, so that
    the output holds only verified artifacts."""
    q = p.options.quantize
    hinted = with_debug_hint(exc, model.provenance.get("path"), target, precision, q.calibration,
                             options=dataclasses.replace(p.options, load=p.load), provenance=model.provenance)
    if q.all_or_nothing:
        raise hinted from exc
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    result.failed.append(Failure(target, precision, during, type(exc).__name__, exc.exit_code, str(hinted)))
    result.errors.append(hinted)
    for kept in (result.layer_errors, result.keep_float):  # layers.json describes artifacts that exist
        kept.pop(f"{target}/{precision}", None)


def check_built(result: ConvertResult) -> None:
    """Nothing built, and something failed: raise (the failure itself when there is one, so its class
    and exit code stay; else a :class:`ConversionError` listing each)."""
    if result.artifacts or not result.failed:
        return
    if len(result.errors) == 1:
        raise result.errors[0]
    first = result.errors[0] if result.errors else ConversionError("")
    reasons = "\n".join(f"  {f.format} {f.precision} ({f.stage}): {f.reason}" for f in result.failed)
    error: Any = type(first)(f"no target could be built:\n{reasons}") if result.errors else \
        ConversionError(f"no target could be built:\n{reasons}")
    error.__dict__.update(first.__dict__)
    raise error
