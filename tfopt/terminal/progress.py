"""Progress events. ``convert(progress=fn)`` calls ``fn`` with a plain ``str`` when a stage starts
and with a :class:`Step` inside a stage of known length (artifacts, layers, measurements). A Step
reads as text too (``str(step)``), so ``progress=print`` works; the CLI draws it as a bar."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    label: str
    done: int
    total: int

    def __str__(self) -> str:
        return f"{self.label} ({self.done}/{self.total})"
