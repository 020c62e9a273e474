"""A quiet terminal and a quiet API: what the converters print is captured per stage, never lost,
shown on failure. The CLI (:mod:`tfopt.cli`) and the public API (:mod:`tfopt`, through :func:`quiet`)
both use it.

TensorFlow's C++ logging, LiteRT's delegate notices, the TFLite converter's MLIR summary, ONNX
Runtime's advice and NNCF's progress bars are written by native code straight to file descriptors
1 and 2, below anything Python's ``sys.stdout`` can intercept. During a :meth:`Capture.stage`
both descriptors are redirected into a pipe (``wurlitzer``) and collected line by line, Python
writes included; tfopt's own progress goes to a duplicate of the terminal's stderr taken before,
and its tables are printed between stages, so they reach the terminal untouched.

What was captured is:

* written to ``--log FILE`` (every stage, with a header line naming it), always;
* echoed live to stderr with ``--verbose`` or ``--debug``;
* otherwise shown only when the stage fails: its last lines follow the error message, without
  the start-up preamble TensorFlow prints on every run (:data:`PREAMBLE`), which explains nothing.

The API's keywords are the CLI's options: ``verbose=True`` (``--verbose``), ``log=PATH``
(``--log``); on failure the exception carries the tail as a note (shown under its traceback).
Capture is process-wide (file descriptors), so only the outermost capture redirects: an API call
made inside a captured stage (the CLI's, the demo's, another API call's) runs as it is.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

TAIL_LINES = 15
_depth = 0  # captured stages open in this process: fds 1 and 2 are redirected once, by the outermost

# What TensorFlow (and XLA, cuDNN, absl) print at start-up on any machine, whatever the model: never
# the reason for a failure, so never in the tail under an error (--log and --verbose keep them).
PREAMBLE: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("absl", r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    ("cudart", r"cudart_stub\.cc.*Could not find cuda drivers|Could not find cuda drivers on your machine"),
    ("cuInit", r"failed call to cuInit|cuda_(platform|executor|diagnostics)\.cc|kernel driver does not appear"),
    ("gpu-libraries", r"Cannot dlopen some GPU libraries|Skipping registering GPU devices"),
    ("cuda-factory", r"Unable to register cu(DNN|FFT|BLAS) factory|Attempting to register factory for plugin cu"),
    ("tensorrt", r"TF-TRT Warning: Could not find TensorRT"),
    ("computation-placer", r"computation placer already registered|computation_placer\.cc"),
    ("oneDNN", r"oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS=0"),
    ("cpu-features", r"This TensorFlow binary is optimized to use available CPU instructions|"
                     r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"),
))


def explains(line: str) -> bool:
    """Whether a captured line can explain a failure: not TensorFlow's start-up preamble (:data:`PREAMBLE`)."""
    return not any(pattern.search(line) for _, pattern in PREAMBLE)


class Capture:
    """Per-stage capture of fds 1 and 2. ``Capture(verbose=False, log=None)``; an inactive one
    (``active=False``, used under ``--json`` callers' own redirection or in tests) only marks stages."""

    def __init__(self, *, verbose: bool = False, log: str | None = None, active: bool = True):
        self.verbose = verbose
        self.active = active
        self.lines: list[str] = []  # the current stage's
        self._partial = ""
        self._lock = threading.Lock()
        self._log: TextIO | None = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
        sys.stderr.flush()
        self.console: TextIO = os.fdopen(os.dup(sys.__stderr__.fileno()), "w", buffering=1, encoding="utf-8",
                                         errors="replace") if active and sys.__stderr__ is not None else sys.stderr
        sys.stdout.flush()
        self.terminal: TextIO = os.fdopen(os.dup(sys.__stdout__.fileno()), "w", buffering=1, encoding="utf-8",
                                          errors="replace") if active and sys.__stdout__ is not None else sys.stdout
        self.stage_name = ""

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.console is not sys.stderr:
            self.console.close()
            self.console = sys.stderr
        if self.terminal is not sys.stdout:
            self.terminal.close()
            self.terminal = sys.stdout

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Capture everything written to fds 1 and 2 while the block runs. An exception leaving the
        block carries the stage's last lines as ``captured_tail`` (unless they were shown live)."""
        global _depth
        self.mark(name)
        if not self.active:
            yield
            return
        from wurlitzer import STDOUT, pipes

        sys.stdout.flush()
        sys.stderr.flush()
        try:
            with pipes(stdout=self, stderr=STDOUT):
                _depth += 1
                try:
                    yield
                finally:
                    _depth -= 1
                    sys.stdout.flush()
                    sys.stderr.flush()
        except BaseException as exc:
            self._flush_partial()
            lines = [line for line in self.lines if explains(line)]
            if not self.verbose and lines and not hasattr(exc, "captured_tail"):
                exc.captured_tail = (self.stage_name, lines[-TAIL_LINES:])  # type: ignore[attr-defined]
            raise
        self._flush_partial()

    def mark(self, name: str) -> None:
        """A new stage (or a step inside one): its lines start the failure tail afresh."""
        with self._lock:
            self._flush_partial()
            self.stage_name = name
            self.lines = []
            if self._log is not None:
                self._log.write(f"== {name}\n")
                self._log.flush()

    def write(self, text: str) -> None:
        """wurlitzer's reader thread hands over captured text here."""
        with self._lock:
            text = self._partial + text.replace("\r\n", "\n").replace("\r", "\n")
            *complete, self._partial = text.split("\n")
            for line in complete:
                self._line(line)

    def flush(self) -> None:
        pass

    def _flush_partial(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        self.lines.append(line)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()
        if self.verbose:
            self.console.write(f"  | {line}\n")

    def progress(self, display: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """A ``convert(progress=...)`` callback: each stage message also starts a captured stage."""
        def callback(event: Any) -> None:
            if isinstance(event, str):
                self.mark(event)
            if display is not None:
                display(event)
        return callback


def capturing() -> bool:
    """Whether a captured stage is open in this process (fds 1 and 2 already redirected)."""
    return _depth > 0


def _tail_text(exc: BaseException) -> str | None:
    tail = getattr(exc, "captured_tail", None)
    lines = [line for line in tail[1] if explains(line)] if tail else []
    if not lines:
        return None
    return "\n".join([f"last output of '{tail[0]}' (all of it with verbose=True or log=PATH):",  # type: ignore[index]
                      *(f"  | {line}" for line in lines)])


@contextlib.contextmanager
def quiet(name: str, *, verbose: bool = False, log: str | None = None) -> Iterator[Capture | None]:
    """The public API's capture: the block's foreign output is captured as one stage ``name``
    (echoed to stderr with ``verbose``, appended to ``log``); an exception leaving the block
    carries the stage's last lines as a note. Yields the :class:`Capture` (None when an outer
    capture is already open: it sees everything)."""
    if capturing():
        yield None
        return
    capture = Capture(verbose=verbose, log=log)
    try:
        with capture.stage(name):
            yield capture
    except BaseException as exc:
        text = _tail_text(exc)
        if text is not None:
            exc.add_note(text)
        raise
    finally:
        capture.close()


def passthrough(capture: Capture | None, callback: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """A user's callback (``progress=print``) run with Python's ``sys.stdout``/``sys.stderr`` on the
    terminal, so what the user's own code prints is not captured; a ``str`` event starts a captured
    step (its lines start a failure tail afresh)."""
    if capture is None or callback is None:
        return callback

    @functools.wraps(callback)
    def call(*args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str):
            capture.mark(args[0])
        # Only streams on the process's own fds are captured; a notebook's streams are not fd-backed.
        out = capture.terminal if sys.stdout is sys.__stdout__ else sys.stdout
        err = capture.console if sys.stderr is sys.__stderr__ else sys.stderr
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return callback(*args, **kwargs)
    return call


def print_captured_tail(exc: BaseException, stream: TextIO) -> None:
    """After an error line: what the failing stage printed that can explain it (:func:`explains`),
    last lines first seen last; nothing when no line can."""
    tail = getattr(exc, "captured_tail", None)
    if not tail:
        return
    stage, lines = tail[0], [line for line in tail[1] if explains(line)]
    if not lines:
        return
    print(f"tfopt: last output of '{stage}' (all of it with --verbose or --log FILE):", file=stream)
    for line in lines:
        print(f"  | {line}", file=stream)
