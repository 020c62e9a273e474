"""SIGINT and SIGTERM for the CLI: stop at a safe point, never half-replace an output.

Why not Python's default ``KeyboardInterrupt``: it is raised wherever the main thread happens to be,
and TensorFlow runs Python finalisers (``AtomicFunction.__del__``) all the time. An exception raised
inside a finaliser is printed as "Exception ignored" and dropped, so a Ctrl-C could be swallowed and
the run went on to replace the previous output and exit 0. SIGTERM simply killed the process and
left the temporary directory behind.

The design, in three parts:

1. **The handler never raises.** It records the signal (a flag), so it cannot be swallowed by a
   finaliser or turned into another error by a library's ``except Exception``.
2. **Safe points raise.** :func:`checkpoint` raises :class:`Interrupted` when a signal was
   recorded. tfopt calls it between stages, between artifacts, in every progress event, and in
   :func:`tfopt._io.atomic_path` just before the final rename - so an interrupted run never
   replaces the previous output, and its temporary directory is removed as the exception unwinds.
3. **A watchdog keeps it prompt.** A long stage inside a converter's C++ code reaches no safe point
   (Python signal handlers, too, wait for the main thread to return to Python). The C-level
   handler writes the signal number to a wakeup pipe that a daemon thread reads: it gives the main
   thread ``grace`` seconds (``TFOPT_INTERRUPT_GRACE``, default 10) to stop at a safe point; after
   that, or at once on a second signal, it removes the run's registered temporary directories and
   exits with the signal's code. It waits for an output rename in progress (:func:`critical`), so
   even a hard stop leaves the previous output or the new one, never neither.

Exit codes: 130 for SIGINT, 143 for SIGTERM (128 + the signal number, as shells report them). A
SIGKILLed run cannot clean up: its temporary directory (named after its pid) is removed by the
next run that writes the same output (see :func:`tfopt._io.remove_stale`).

Without :func:`handle_signals` (the Python API) nothing is installed and :func:`checkpoint` is a
no-op: Python's own ``KeyboardInterrupt`` applies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator

from tfopt.errors import TfoptError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(TfoptError):
    """The run was stopped by SIGINT (exit 130) or SIGTERM (exit 143); nothing was replaced."""

    names_stage = False  # see tfopt.errors.stage: the user stopped the run, no stage failed

    def __init__(self, signum: int):
        super().__init__(f"interrupted ({name(signum)}); the previous output, if any, is left as it was")
        self.signum = signum
        self.exit_code = 128 + signum


def name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``."""
    return signal.Signals(signum).name


class _State:
    """What the handler, the watchdog and :func:`checkpoint` share (one per process)."""

    def __init__(self) -> None:
        self.signum = 0  # the first signal received, 0 when none
        self.count = 0
        self.installed = False
        self.temp_dirs: set[str] = set()
        self.lock = threading.RLock()  # held while an output is renamed into place
        self.patient = 0  # inside patient(): the first signal's grace does not run out


_state = _State()


def checkpoint() -> None:
    """Raise :class:`Interrupted` if SIGINT/SIGTERM arrived since :func:`handle_signals` started."""
    if _state.signum:
        raise Interrupted(_state.signum)


def received() -> int:
    """The signal number received (0 when none)."""
    return _state.signum


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Hold off the watchdog's hard stop (used around the renames that put an output in place)."""
    with _state.lock:
        yield


def register_temp(path: str) -> None:
    """A temporary directory the watchdog removes on a hard stop."""
    _state.temp_dirs.add(path)


def unregister_temp(path: str) -> None:
    _state.temp_dirs.discard(path)


def _handler(signum: int, frame: object) -> None:
    # No raise, no print (a print could re-enter a print the main thread is in): the watchdog
    # reports and enforces; safe points raise.
    if not _state.signum:
        _state.signum = signum


def _hard_stop() -> None:
    with _state.lock:
        for path in list(_state.temp_dirs):
            shutil.rmtree(path, ignore_errors=True)
        os.write(2, b"tfopt: interrupted; stopped without waiting for a safe point, nothing was replaced\n")
        os._exit(128 + (_state.signum or signal.SIGTERM))


@contextlib.contextmanager
def patient() -> Iterator[None]:
    """While held, the first signal's grace never runs out (a second signal still stops at once): for a
    caller that stops at once itself but waits for work it does not own (the fleet's running tasks)."""
    _state.patient += 1
    try:
        yield
    finally:
        _state.patient -= 1


def _stop_unless(done: threading.Event) -> None:
    if not done.is_set() and not _state.patient:
        _hard_stop()


def _watch(read_fd: int, grace: float, done: threading.Event) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data or done.is_set():
            return
        for signum in data:
            if signum not in SIGNALS:
                continue
            _state.count += 1
            if not _state.signum:
                _state.signum = signum
            if _state.count == 1:
                os.write(2, b"tfopt: stopping at the next safe point (signal again to stop at once)\n")
                timer = threading.Timer(grace, _stop_unless, args=(done,))
                timer.daemon = True
                timer.start()
            elif not done.is_set():
                _hard_stop()


def _exit_now(signum: int, frame: object) -> None:
    """After the command: nothing is left to protect, and TensorFlow's teardown takes seconds."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os.write(2, f"tfopt: interrupted ({name(signum)}) while exiting\n".encode())
    os._exit(128 + signum)


@contextlib.contextmanager
def handle_signals(*, grace: float | None = None, restore: bool = True) -> Iterator[None]:
    """Install the handlers and the watchdog for the duration of a CLI command.

    Only in the main thread (elsewhere signals cannot be handled and this does nothing). On exit
    the previous handlers and wakeup fd are restored (in-process callers: tests, notebooks), or with
    ``restore=False`` (the ``tfopt`` process itself) a signal exits at once with 130/143: the command
    is over, and a signal during interpreter shutdown would otherwise land in a finaliser.
    """
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield
        return
    if grace is None:
        try:
            grace = float(os.environ.get("TFOPT_INTERRUPT_GRACE", "10"))
        except ValueError:
            grace = 10.0
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()
    _state.signum, _state.count, _state.installed = 0, 0, True
    watcher = threading.Thread(target=_watch, args=(read_fd, grace, done), name="tfopt-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for s, h in previous.items():
            signal.signal(s, h if restore else _exit_now)
        os.close(write_fd)  # the watcher reads EOF and ends
        watcher.join(timeout=1)
        os.close(read_fd)
        _state.signum, _state.count, _state.installed = 0, 0, False
        _state.temp_dirs.clear()
