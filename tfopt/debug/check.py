"""One trial of ``tfopt debug reduce``: convert a cut, load and run it, and judge the result.

Two checks (``--check``):

- ``fails``: the converter raises, or the artifact does not load or run. A subgraph *fails in the
  same way* as the full model when the stage (convert, load, run), the exception type and the
  first line of the message agree once node names are normalised: every token of the message
  that names a node of the original graph (``conv2/Digamma``, ``conv2/Digamma:0``, a
  placeholder's ``conv2/Relu_1``) reads ``<node>``, generated suffixes (``Reshape__25``) and
  addresses (``0x7f..``) are dropped, temporary paths read ``<path>``.
- ``mismatch[:TOL]``: the artifact runs, and on the cut's real inputs its worst output is off by
  more than TOL relative to that output's scale:
  ``err = max_outputs( max|artifact − tf| / max(max|tf|, 1e-12) )``; an output whose non-finite
  values differ (inf or NaN where TensorFlow has a number) or whose shape differs has ``err = inf``.
  The default TOL depends on the precision (:data:`DEFAULT_TOL`): fp32 ``1e-3`` (a runtime's
  kernels reorder float sums, ~1e-6 relative; a thousand times that is a wrong op), fp16 ``1e-2``
  (10 mantissa bits: 1e-3 per op, ten ops deep), int8 and the other quantized precisions ``0.1``
  (a 256-level grid is 0.4% of a tensor's range per layer; a tenth of the range is broken).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.terminal.signals import Interrupted, checkpoint

DEFAULT_TOL = {"fp32": 1e-3, "fp16": 1e-2}
QUANTIZED_TOL = 0.1
CHECKS = ("fails", "mismatch")


@dataclass(frozen=True)
class Check:
    """What counts as the problem: ``kind`` ``"fails"`` or ``"mismatch"``, and the mismatch's TOL."""

    kind: str
    tol: float = 0.0

    @classmethod
    def parse(cls, text: str, precision: str) -> Check:
        """``fails``, ``mismatch`` or ``mismatch:TOL``; an :class:`OptionError` naming ``--check`` otherwise."""
        kind, sep, tol = text.partition(":")
        if kind not in CHECKS or (kind == "fails" and sep):
            raise OptionError(f"--check {text}: choose fails, mismatch or mismatch:TOL (e.g. mismatch:0.05)")
        if kind == "fails":
            return cls("fails")
        if not sep:
            return cls("mismatch", DEFAULT_TOL.get(precision, QUANTIZED_TOL))
        try:
            value = float(tol)
        except ValueError:
            raise OptionError(f"--check {text}: TOL must be a number, e.g. mismatch:0.05") from None
        if not value >= 0:
            raise OptionError(f"--check {text}: TOL must be >= 0")
        return cls("mismatch", value)

    def describe(self) -> str:
        return "fails" if self.kind == "fails" else f"mismatch:{self.tol:g}"


@dataclass(frozen=True)
class Outcome:
    """What one trial gave.

    Attributes:
        stage: where it raised: ``"convert"``, ``"load"``, ``"run"``; ``""`` when it ran.
        error_type: the exception's class name (``""`` when it ran).
        message: the exception's first non-empty line.
        signature: ``stage|type|normalised message`` (``""`` when it ran): "fails in the same way".
        detail: the whole message, and its cause's (for ``converter_call.txt``).
        error: the worst relative output error (mismatch; ``None`` when it did not run).
        errors: per output name.
        seconds: the trial's wall time.
    """

    stage: str = ""
    error_type: str = ""
    message: str = ""
    signature: str = ""
    detail: str = ""
    error: float | None = None
    errors: tuple[tuple[str, float], ...] = ()
    seconds: float = 0.0

    @property
    def raised(self) -> bool:
        return bool(self.stage)

    def describe(self) -> str:
        if self.raised:
            return f"{self.stage}: {self.error_type}: {self.message}"
        return f"ran; worst output error {self.error:.3g} of its scale" if self.error is not None else "ran"

    def reproduces(self, check: Check, reference: Outcome) -> bool:
        """Whether this is the problem ``reference`` (the full model's outcome) showed."""
        if check.kind == "fails":
            return self.raised and self.signature == reference.signature
        return not self.raised and self.error is not None and self.error > check.tol


def run_trial(cut: Any, target: str, precision: str, *, names: Collection[str], workdir: str) -> Outcome:
    """Convert ``cut.model`` for ``target`` at ``precision`` (int8: calibrated on ``cut.feeds``),
    load it in the target's runtime, run it on ``cut.feeds`` and measure it against
    ``cut.expected``. Exceptions become an :class:`Outcome` (a run past the bound in force,
    ``--verify-timeout`` or else :data:`tfopt.verification.deadline.FLOOR`, included); an interrupt or an
    :class:`OptionError` (a wrong option, not a converter's failure) propagates.

    Args:
        names: node names of the original graph (normalised out of messages).
        workdir: where the artifact is written (removed afterwards).
    """
    from tfopt.targets import TABLE, EmitJob, Precision
    from tfopt.verification.deadline import bounded_runner

    checkpoint()
    record = TABLE[target]
    start = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="trial-", dir=workdir)
    stage = "convert"
    try:
        calibration = [cut.feeds] if Precision(precision).needs_calibration else None
        job = EmitJob(cut.model, cut.model, os.path.join(tmp, record.artifact_path(precision)), precision,
                      calibration=calibration)
        path = record.call("emit", job)
        stage = "load"
        runner = bounded_runner(target, path, cut.model, None)  # one that does not end is this trial's outcome
        stage = "run"
        try:
            got = runner(cut.feeds)
        finally:
            runner.close()
    except (Interrupted, OptionError):
        raise
    except Exception as exc:
        return _failed(stage, exc, names, time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    errors = tuple((name, relative_error(got.get(name), value)) for name, value in cut.expected.items())
    return Outcome(error=max(e for _, e in errors), errors=errors, seconds=time.perf_counter() - start)


def relative_error(got: Any, expected: np.ndarray) -> float:
    """``max|got − expected| / max(max|expected|, 1e-12)``; inf for a shape or non-finite mismatch."""
    if got is None:
        return float("inf")
    a = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    same = (a == e) | (np.isnan(a) & np.isnan(e))  # equal infinities and both-NaN agree
    diff = np.where(same, 0.0, np.abs(a - e))
    if not np.all(np.isfinite(diff)):
        return float("inf")
    finite = np.abs(e[np.isfinite(e)])
    scale = max(float(finite.max()) if finite.size else 0.0, 1e-12)
    return float(diff.max()) / scale


def _failed(stage: str, exc: BaseException, names: Collection[str], seconds: float) -> Outcome:
    message = first_line(str(exc)) or type(exc).__name__
    detail = str(exc).strip()
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        detail += f"\n\ncaused by {type(cause).__name__}:\n{str(cause).strip()}"
    signature = f"{stage}|{type(exc).__name__}|{normalise(message, names)}"
    return Outcome(stage, type(exc).__name__, message, signature, detail, seconds=seconds)


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


_TOKEN = re.compile(r"[A-Za-z0-9_.\-/]+(?::\d+)?")
_PATH = re.compile(r"(/[^\s'\"/:]+){2,}/?")


def normalise(message: str, names: Collection[str]) -> str:
    """``message`` with node names, generated suffixes, addresses and temporary paths made neutral."""
    message = _PATH.sub("<path>", message)
    message = re.sub(r"0x[0-9a-fA-F]+", "<addr>", message)

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        base = re.sub(r":\d+$", "", text)
        stripped = re.sub(r"(_\d+)+$", "", base)
        if base in names or stripped in names:
            return "<node>"
        return re.sub(r"__\d+", "", text)

    return _TOKEN.sub(token, message)


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    """For ``reduce.json``."""
    return {"stage": outcome.stage, "error_type": outcome.error_type, "message": outcome.message,
            "error": outcome.error, "errors": dict(outcome.errors), "seconds": round(outcome.seconds, 3)}

