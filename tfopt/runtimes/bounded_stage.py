"""Which stage a bounded run belongs to, for the error raised when it outlives its bound.

``--verify-timeout`` bounds every run of a model tfopt makes (:mod:`tfopt.verification.deadline`):
verification's, and those of the stages that run the original or an artifact without verifying it (the
native converters' keep-float search and layer ranking, ``tfopt debug compare``, ``tfopt debug reduce``).
A run past the bound raises :class:`~tfopt.errors.VerificationTimeoutError`, from the original's runner
(:class:`tfopt.verification.deadline.BoundedReference`) or an artifact's (:mod:`tfopt.runtimes.child`);
the :class:`Stage` entered here (:func:`within`) gives that message the stage, the model it ran, inputs
to run it on and how to leave the stage out. Outside any, the stage is verification.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

INPUTS = "pass real inputs with --calibration/--eval-data, bind the input with --set NAME=VALUE or fix its shape with --inputs"


@dataclass(frozen=True)
class Stage:
    """``name``: what runs (``"verifying"``, ``"tfopt debug compare"``); ``model``: its path (``""``: not
    named); ``inputs``: the options that give it inputs it ends on; ``skip``: how to leave the stage out
    (``""``: nothing does)."""

    name: str = "verifying"
    model: str = ""
    inputs: str = INPUTS
    skip: str = "skip verification with --no-verify"

    @property
    def verifying(self) -> bool:
        return self.name == Stage.name

    def head(self) -> str:
        """``"verifying"``, or ``"<name> of <model>"``: the start of the message."""
        return f"{self.name} of {self.model}" if self.model and not self.verifying else self.name

    def way_out(self) -> str:
        """``", or <skip>"`` (``""`` when nothing skips the stage)."""
        return f", or {self.skip}" if self.skip else ""


_STAGE: contextvars.ContextVar[Stage | None] = contextvars.ContextVar("tfopt_bounded_stage", default=None)


@contextlib.contextmanager
def within(stage: Stage) -> Iterator[None]:
    """Inside, a bounded run that outlives its bound is reported as part of ``stage``."""
    token = _STAGE.set(stage)
    try:
        yield
    finally:
        _STAGE.reset(token)


def current() -> Stage:
    """The stage in force (verification outside any :func:`within`)."""
    return _STAGE.get() or Stage()
