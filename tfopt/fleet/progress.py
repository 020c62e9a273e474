"""Fleet progress: the counts a fleet run reports as tasks start and end, and a printer for them.

``run_fleet(progress=fn)`` calls ``fn`` with a :class:`FleetProgress` on every change.
:class:`ProgressPrinter` is such an ``fn``: on a terminal it keeps one line and rewrites it; on
anything else (a CI log, a pipe) it prints one line per change, never the same line twice::

    fleet: models 3/24 done (1 cached, 0 failed) · tasks 17/96 (2 running, 40 cached, 1 failed) · digits onnx int8 ok
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import TextIO


@dataclass
class FleetProgress:
    """Counts at one moment. ``*_done`` include the cached and the failed ones; ``last`` says what
    just changed (``"digits onnx int8 ok"``)."""

    models_total: int = 0
    models_done: int = 0
    models_failed: int = 0
    models_cached: int = 0
    tasks_total: int = 0
    tasks_done: int = 0
    tasks_running: int = 0
    tasks_cached: int = 0
    tasks_failed: int = 0
    last: str = ""

    def __str__(self) -> str:
        text = (f"fleet: models {self.models_done}/{self.models_total} done ({self.models_cached} cached, "
                f"{self.models_failed} failed) · tasks {self.tasks_done}/{self.tasks_total} "
                f"({self.tasks_running} running, {self.tasks_cached} cached, {self.tasks_failed} failed)")
        return f"{text} · {self.last}" if self.last else text


class ProgressPrinter:
    """A ``progress`` callback that draws :class:`FleetProgress` on ``stream`` (default stderr).

    Args:
        stream: where to write.
        tty: rewrite one line (True) or print a line per change (False); default: ``stream.isatty()``.

    Use as a context manager (or call :meth:`close`) so a terminal's line ends with a newline.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self._last = ""
        self._drawn = False

    def __call__(self, progress: FleetProgress) -> None:
        line = str(progress)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            if len(line) > width:
                line = line[: max(0, width - 1)] + "…"
            self.stream.write("\r" + line + "\x1b[K")  # \x1b[K: clear what a longer previous line left
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the rewritten line (terminal only); safe to call twice."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
