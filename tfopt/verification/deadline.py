"""How long a verification run may take, and the original model's runs held to it.

A model that does not end in its runtime (a ``While``/``Loop`` whose condition stays true: nested loops an
ONNX Runtime build never leaves, a trip count read from an input that made-up values make huge) must not
hang ``tfopt convert`` or ``tfopt verify``: a CI pipeline calling tfopt gets an answer. Every runtime call
verification and the report make is bounded:

- an artifact's call: by ``--verify-timeout`` seconds when given (0: no bound), else
  ``max(FLOOR, FACTOR x the original's own time on the same inputs)``
  (:func:`artifact_bound`). An artifact whose runtime cannot be interrupted and that holds a loop
  runs in a child process killed at the bound (:mod:`tfopt.runtimes.child`); one without a loop ends
  on its own; TensorFlow's own runs stop at the bound in process (:func:`tfopt._tf.deadline`).
- the original's call (TensorFlow): by ``--verify-timeout`` when given, else :data:`REFERENCE_DEFAULT`
  (it has no time of its own to scale yet), through :func:`tfopt._tf.deadline`
  (:class:`BoundedReference`: the error names the inputs that reach a loop).

The stages that run the original or an artifact without verifying it are held to the same bound (the native
keep-float search, ``tfopt debug compare``/``reduce``): an artifact through :func:`bounded_runner`, and through
:func:`artifact_ends` before code that runs the same file in process; their errors name the stage
(:mod:`tfopt.runtimes.bounded_stage`).

The bound in force is set once per entry point (:func:`verify_timeout`, a context variable the
conversion stages, :func:`tfopt.freeze`/:func:`tfopt.optimize` and ``tfopt verify`` enter from the
options), so every stage below reads the same value without a keyword through each call.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tfopt.errors import VerificationTimeoutError
from tfopt.graph import LOOP_OPS

FLOOR = 60.0  # seconds: an artifact's call is never cut before this (a runtime's first call compiles)
FACTOR = 50.0  # x the original's own time on the same inputs (an interpreter 50x slower than TensorFlow still ends)
REFERENCE_DEFAULT = 600.0  # seconds: the original's call, before any time of its own is known

_GIVEN: contextvars.ContextVar[float | None] = contextvars.ContextVar("tfopt_verify_timeout", default=None)


@contextlib.contextmanager
def verify_timeout(seconds: float | None) -> Iterator[None]:
    """Inside, ``--verify-timeout`` is ``seconds`` (``None``: the derived default; ``0``: no bound)."""
    token = _GIVEN.set(seconds)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def given() -> float | None:
    """``--verify-timeout`` in force (``None``: not given)."""
    return _GIVEN.get()


def artifact_bound(reference_seconds: float | None) -> float | None:
    """The bound of one call of an artifact whose original took ``reference_seconds`` on the same inputs
    (``None``: unknown); ``None``: no bound (``--verify-timeout 0``)."""
    if (seconds := given()) is not None:
        return seconds or None
    return max(FLOOR, FACTOR * (reference_seconds or 0.0))


def reference_bound() -> float | None:
    """The bound of one call of the original model; ``None``: no bound."""
    if (seconds := given()) is not None:
        return seconds or None
    return REFERENCE_DEFAULT


def describe_bound(seconds: float, *, original: bool = False) -> str:
    """``"5 s (--verify-timeout)"`` or ``"60 s (the default: ...)"``: where a bound came from (``original``: the
    bound of the original model's runs)."""
    if given():
        return f"{seconds:g} s (--verify-timeout)"
    if original:
        return f"{seconds:g} s (the default bound of the original's runs)"
    return f"{seconds:g} s (the default bound: max({FLOOR:g} s, {FACTOR:g}x the original's time))"


def bounded_runner(target: str, path: str, model: Any, reference_seconds: float | None) -> Any:
    """The runner of an artifact (:func:`tfopt.runtimes.runner_for`) with each call held to
    :func:`artifact_bound` of the original's ``reference_seconds`` (a file with a loop runs in a child process
    killed at the bound). The caller closes it."""
    from tfopt.runtimes import runner_for

    return runner_for(target, path, model, timeout=artifact_bound(reference_seconds), describe_bound=describe_bound)


def artifact_ends(target: str, path: str, model: Any, samples: Sequence[Mapping[str, Any]],
                  reference_seconds: float | None) -> None:
    """Run ``path`` on every sample through :func:`bounded_runner`, before code that runs the same file in its
    runtime in process (a debugger, intermediate tensors), which no bound can stop: a file with no loop ends
    (not run here, :func:`tfopt.runtimes.holds_loop`); one with a loop runs in a child process.

    Raises:
        VerificationTimeoutError: a call did not end within the bound (named by the stage in force).
    """
    from tfopt.runtimes import holds_loop

    if not holds_loop(target, path):  # only a file with a loop may not end
        return
    runner = bounded_runner(target, path, model, reference_seconds)
    try:
        for sample in samples:
            runner(sample)
    finally:
        runner.close()


class BoundedReference:
    """The original model's runner with each call held to :func:`reference_bound` (TensorFlow's runs stop
    at it: :func:`tfopt._tf.deadline`); ``seconds``: the longest call so far (what artifacts' bounds scale).

    Raises (on call):
        VerificationTimeoutError: a call did not end in the bound; names the inputs that reach a loop.
    """

    def __init__(self, run: Any, graph_def: Any, specs: Sequence[Any]):
        self.run, self.graph_def, self.specs = run, graph_def, list(specs)
        self.seconds = 0.0
        self.stopped: VerificationTimeoutError | None = None  # once a call outlived the bound, every call raises it
        self._stopped_on: tuple[Mapping[str, Any], float] | None = None  # that call's inputs and bound

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        from tfopt._tf import deadline

        if self.stopped is not None:  # a caller that takes a failure as "try another size" gets it again at once
            raise self.stopped
        bound = reference_bound()
        start = time.monotonic()
        try:
            with deadline(bound):
                out = dict(self.run(feeds))
        except Exception as exc:
            if bound is not None and time.monotonic() - start >= 0.95 * bound:  # stopped by the bound (ms rounding)
                self.stopped, self._stopped_on = self.timed_out(feeds, bound), (feeds, bound)
                raise self.stopped from exc
            raise
        self.seconds = max(self.seconds, time.monotonic() - start)
        return out

    @property
    def unbounded(self) -> Any:
        """The runner itself: what the report times once a bounded call on the same inputs ended (a call that
        ended in the bound ends again; the deadline's own microseconds stay out of the latency)."""
        return self.run

    def close(self) -> None:
        close = getattr(self.run, "close", None)
        if close is not None:
            close()

    def stopped_here(self) -> VerificationTimeoutError | None:
        """The error of the call that outlived the bound (``None``: none did), named by the stage in force now: what
        a later stage that would run the same inputs raises without running them again."""
        return None if self._stopped_on is None else self.timed_out(*self._stopped_on)

    def timed_out(self, feeds: Mapping[str, Any], bound: float) -> VerificationTimeoutError:
        """The error, in the stage in force (:mod:`tfopt.runtimes.bounded_stage`: verification unless another
        is entered)."""
        from tfopt.runtimes.bounded_stage import current
        from tfopt.verification.feed_shapes import feed_shapes

        stage = current()
        loops = loop_inputs(self.graph_def, self.specs)
        which = (f"; {', '.join(repr(n) for n in loops)} reach{'es' if len(loops) == 1 else ''} a loop of the graph, "
                 "whose trip count may come from the values fed") if loops else ""
        return VerificationTimeoutError(
            f"{stage.head()}: the original model (TensorFlow) did not end within {describe_bound(bound, original=True)} "
            f"on inputs {feed_shapes(feeds)}{which}. {'Verify' if stage.verifying else 'Run it'} on inputs it ends on: "
            f"{stage.inputs}; or raise --verify-timeout SECONDS (0: no bound){stage.way_out()}")


def loop_inputs(graph_def: Any, specs: Sequence[Any]) -> list[str]:
    """The inputs of ``specs`` whose values reach a loop (a ``While`` or a ``LoopCond``/``Enter`` frame) in
    ``graph_def``'s main graph, in ``specs``' order."""
    if graph_def is None:
        return []
    from tfopt.graph import is_control, tensor_node

    users: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for ref in node.input:
            if not is_control(ref):
                users.setdefault(tensor_node(ref), []).append(node)
    found = []
    for spec in specs:
        start = spec.tensor.split(":")[0]
        seen, stack = {start}, [start]
        while stack:
            hits = users.get(stack.pop(), [])
            if any(n.op in LOOP_OPS for n in hits):
                found.append(spec.name)
                break
            for node in hits:
                if node.name not in seen:
                    seen.add(node.name)
                    stack.append(node.name)
    return found
