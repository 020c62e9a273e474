"""The one shape every runtime runner has, and the one rule for pairing its tensors with a model's.

A runner is opened on an artifact (or a frozen graph) plus the model's :class:`~tfopt.graph.TensorSpec`
inputs and outputs, is called with ``{input name: array}`` and returns ``{output name: array}``, and is
closed when done. Tensors are paired with the specs *by name* only: each runtime says which of its
names are known to carry a spec's name (see each runner's docstring). A runner whose artifact has no
such name for a spec raises :class:`~tfopt.errors.TensorPairingError`; it never pairs by position.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from tfopt.errors import TensorPairingError
from tfopt.graph import TensorSpec

T = TypeVar("T")


@runtime_checkable
class Runner(Protocol):
    """``runner(feeds) -> {output name: array}``; feeds keyed by :attr:`TensorSpec.name`."""

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        """The model inputs this runner accepts, in order."""
        ...

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        """The model outputs this runner returns, in order."""
        ...

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        """Release the runtime's session/interpreter (calling the runner afterwards is an error)."""
        ...


def pair_by_name(kind: str, path: str, specs: Sequence[TensorSpec], tensors: Iterable[T],
                 names: Callable[[T], set[str]], aliases: Callable[[TensorSpec], set[str]]) -> dict[str, T]:
    """Pair every spec with the one runtime tensor that carries one of its ``aliases``.

    Args:
        kind: ``"input"`` or ``"output"`` (for the message).
        path: the artifact (for the message).
        specs: the model's inputs or outputs.
        tensors: the runtime's tensors.
        names: the names a runtime tensor is known by.
        aliases: the names a spec may carry in this runtime (known from how tfopt converted it).

    Returns:
        ``{spec name: tensor}``.

    Raises:
        TensorPairingError: a spec has no tensor carrying its names, or several.
    """
    tensors = list(tensors)
    known = [names(t) for t in tensors]
    out: dict[str, T] = {}
    for spec in specs:
        wanted = aliases(spec)
        hits = [i for i, n in enumerate(known) if n & wanted]
        if len(hits) != 1:
            have = sorted(n for names_ in known for n in names_)
            why = "no tensor carries any of" if not hits else f"{len(hits)} tensors carry"
            raise TensorPairingError(
                f"{path}: cannot pair {kind} '{spec.name}' by name: {why} {sorted(wanted)}; the artifact's "
                f"{kind}s are named {have}. Tensors are never paired by position: pass the specs the "
                "artifact was converted from (manifest.json beside it)")
        out[spec.name] = tensors[hits[0]]
    return out


def latency(call: Callable[[], Any], runs: int) -> dict[str, Any]:
    """Median and p90 milliseconds of ``call`` over ``runs`` timed calls after 3 warm-up calls (the report's
    latency; a runner in a child process times it there: :meth:`tfopt.runtimes.child.ChildRunner.latency`)."""
    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median": statistics.median(times), "p90": times[min(len(times) - 1, int(0.9 * len(times)))], "runs": runs}
