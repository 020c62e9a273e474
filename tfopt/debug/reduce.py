"""``tfopt debug reduce``: the smallest subgraph that still fails to convert, or still mismatches.

The search, over the graph's ops in topological order (constants and placeholders are not
counted: they come with the ops that read them; see :mod:`tfopt.debug.subgraph`), works as
Polygraphy's ``debug reduce`` does (``tools/debug/subtool/reduce.py``: bisect the outputs, then
the inputs), then goes one step further:

1. **Outputs** (bisection): the shortest prefix ``ops[:k]`` that still shows the problem. The
   invariant is ``ops[:hi]`` shows it (``hi = n`` at the start: the full model, checked first)
   and ``ops[:lo]`` does not (``lo = 0``); each step tries ``mid = (lo + hi) // 2``.
2. **Inputs** (bisection): within that prefix, the latest start ``s`` such that ``ops[s:k]``
   still shows it, the same way from the other end.
3. **Single ops**: drop one op at a time (in topological order), keeping each removal after
   which the problem remains, and repeat until no single removal keeps it (the result is
   1-minimal: removing any one op of it makes the problem go away).

Every cut is fed with TensorFlow's own values of the tensors entering it, so each trial is a
real conversion of a real subgraph on real data (:mod:`tfopt.debug.check` says what "still
shows the problem" means). The bisections assume a prefix that contains the culprit shows the
problem; where that does not hold they still end on a subgraph that shows it (``hi`` only moves
to one that does), just not the smallest. Trials are cached by op set, and the budget
(``max_steps``) counts conversions, the full model's included; when it runs out the smallest
subgraph found so far is the result and ``complete`` is False.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tfopt.debug.check import Check, Outcome, run_trial
from tfopt.debug.subgraph import Cut, Cutter
from tfopt.errors import GraphError, OptionError
from tfopt.graph import Model

DEFAULT_MAX_STEPS = 200


@dataclass(frozen=True)
class Step:
    """One trial: the phase, how many ops it kept, whether the problem remained, its time."""

    phase: str
    ops: int
    reproduced: bool
    seconds: float
    outcome: str


@dataclass
class ReduceResult:
    """What :func:`reduce` found.

    Attributes:
        cut: the smallest subgraph that shows the problem (its model, real inputs, TF's outputs).
        outcome: what converting and running it gave.
        reference: what the full model gave.
        ops_before: ops in the full model (constants and placeholders not counted).
        steps: every trial, in order (``len(steps)`` conversions were tried).
        seconds: wall time of the search.
        complete: False when ``max_steps`` stopped the search early.
    """

    cut: Cut
    outcome: Outcome
    reference: Outcome
    ops_before: int
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True

    @property
    def conversions(self) -> int:
        return len(self.steps)


class _Budget(Exception):
    """The step budget ran out (internal: ends the search)."""


class _Search:
    """Trials of op sets, cached, counted and bounded."""

    def __init__(self, cutter: Cutter, target: str, precision: str, check: Check, max_steps: int, workdir: str,
                 say: Callable[[str], None]):
        self.cutter, self.target, self.precision, self.check = cutter, target, precision, check
        self.max_steps, self.workdir, self.say = max_steps, workdir, say
        self.steps: list[Step] = []
        self.cache: dict[frozenset[str], tuple[bool, Cut | None, Outcome | None]] = {}
        self.reference: Outcome | None = None

    def trial(self, kept: Sequence[str], phase: str) -> tuple[bool, Cut | None, Outcome | None]:
        key = frozenset(kept)
        if key in self.cache:
            return self.cache[key]
        try:
            cut = self.cutter.cut(kept)
        except GraphError as exc:  # cannot be cut there (a resource tensor, nothing read outside)
            self.cache[key] = (False, None, None)
            self.say(f"  {phase:8} {len(kept):4} ops: not a valid cut ({exc})")
            return self.cache[key]
        if len(self.steps) >= self.max_steps:
            raise _Budget
        outcome = run_trial(cut, self.target, self.precision, names=self.cutter.names, workdir=self.workdir)
        reference = self.reference or outcome
        shows = outcome.reproduces(self.check, reference)
        self.steps.append(Step(phase, len(kept), shows, outcome.seconds, outcome.describe()))
        self.say(f"  {phase:8} {len(kept):4} ops: {'still fails' if shows else 'passes'} "
                 f"({outcome.describe()}; {outcome.seconds:.1f} s)")
        self.cache[key] = (shows, cut, outcome)
        return self.cache[key]


def reduce(model: Model, feeds: Mapping[str, np.ndarray], target: str, *, precision: str = "fp32",
           check: Check | None = None, max_steps: int = DEFAULT_MAX_STEPS,
           say: Callable[[str], None] = lambda _: None) -> ReduceResult:
    """Reduce ``model`` (a frozen graph) to the smallest subgraph that shows the problem.

    Args:
        model: the frozen (portable) graph the target's converter reads.
        feeds: one set of inputs, by input name; every cut is fed the values they give.
        target: a target whose record names a ``repro`` (:mod:`tfopt.targets`; ``tflite``, ``onnx``, ``openvino``).
        precision: the artifact's precision; int8 is calibrated on each cut's real inputs.
        check: ``fails`` (default) or ``mismatch`` with its tolerance.
        max_steps: conversions to try at most (the full model's included), at least 1.
        say: progress lines.

    Raises:
        OptionError: the full model does not show the problem (nothing to reduce), or
            ``max_steps`` < 1.
    """
    from tfopt._checks import check_ranges

    check = check or Check("fails")
    check_ranges({"--max-steps": max_steps})
    start = time.perf_counter()
    cutter = Cutter(model, feeds)
    try:
        with tempfile.TemporaryDirectory(prefix="tfopt-reduce-") as workdir:
            search = _Search(cutter, target, precision, check, max_steps, workdir, say)
            return _run(search, cutter.ops, start)
    finally:
        cutter.close()


def _run(search: _Search, ops: list[str], start: float) -> ReduceResult:
    shows, cut, outcome = search.trial(ops, "full")
    if cut is None or outcome is None:
        raise GraphError("the full model cannot be cut: its outputs are not tensors TensorFlow can feed")
    search.reference = outcome
    if not shows:
        raise OptionError(_nothing_to_reduce(search, outcome))
    best = list(ops)
    complete = True
    try:
        best = _bisect_outputs(search, best)
        best = _bisect_inputs(search, best)
        best = _drop_single(search, best)
    except _Budget:
        complete = False
        best = min((list(k) for k, (s, c, _) in search.cache.items() if s and c is not None), key=len)
    _, cut, outcome = search.cache[frozenset(best)]
    if cut is None or outcome is None:  # cannot happen: only a valid cut is cached as showing the problem
        raise GraphError(f"internal: no cut cached for {len(best)} op(s)")
    return ReduceResult(cut=cut, outcome=outcome, reference=search.reference, ops_before=len(ops), steps=search.steps,
                        seconds=time.perf_counter() - start, complete=complete)


def _bisect_outputs(search: _Search, ops: list[str]) -> list[str]:
    lo, hi = 0, len(ops)  # ops[:hi] shows the problem, ops[:lo] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if search.trial(ops[:mid], "outputs")[0]:
            hi = mid
        else:
            lo = mid
    return ops[:hi]


def _bisect_inputs(search: _Search, ops: list[str]) -> list[str]:
    lo, hi = 0, len(ops)  # ops[lo:] shows the problem, ops[hi:] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if search.trial(ops[mid:], "inputs")[0]:
            lo = mid
        else:
            hi = mid
    return ops[lo:]


def _drop_single(search: _Search, ops: list[str]) -> list[str]:
    changed = True
    while changed and len(ops) > 1:
        changed = False
        for name in list(ops):
            candidate = [n for n in ops if n != name]
            if candidate and search.trial(candidate, "single")[0]:
                ops, changed = candidate, True
    return ops


def _nothing_to_reduce(search: _Search, outcome: Outcome) -> str:
    what = f"{search.target} {search.precision}"
    if search.check.kind == "fails":
        extra = f" (worst output error {outcome.error:.3g} of its scale)" if outcome.error is not None else ""
        return (f"--check fails: the full model converts to {what}, loads and runs{extra}: nothing to reduce. "
                "Try --check mismatch[:TOL] if its outputs are wrong, or another --target/--precision")
    if outcome.raised:
        return (f"--check {search.check.describe()}: the full model does not run as {what} ({outcome.describe()}); "
                "use --check fails to reduce that failure")
    return (f"--check {search.check.describe()}: the full model's worst output error on {what} is "
            f"{outcome.error:.3g} of its scale, within the tolerance: nothing to reduce. Give a smaller TOL "
            "(--check mismatch:TOL), other --data, or another --target/--precision")
