"""The one pass contract and the fixed-point runner.

Every pass is ``run(model) -> PassResult(model, changed, skips)``. A pass never mutates its
input; it returns a new :class:`~tfopt.graph.Model`. A match it declines to rewrite is reported as
a :class:`Skip` with the reason, never silently dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt.errors import GraphError
from tfopt.graph import Model, op_histogram, validate

log = logging.getLogger("tfopt.passes")


@dataclass(frozen=True)
class Skip:
    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node}: {self.reason}"


@dataclass
class PassResult:
    model: Model
    changed: bool
    skips: list[Skip] = field(default_factory=list)


class Pass:
    """Base class: subclasses set ``name``, a docstring whose first line summarises the pass, and
    implement :meth:`run`.

    Attributes:
        name: the pass's key in the registry and on the command line (``--skip fold_pad``).
        tf_runtime_only: the rewrite yields ops only TensorFlow runs (``_FusedConv2D``): the pass
            optimizes the ``pb``/``savedmodel`` graph, never the portable one TFLite/ONNX/OpenVINO read.
        lossy: the rewrite changes the model's numbers on purpose (``cluster_weights``): it runs once,
            after the fixed point and the optimize check, and artifacts are verified against its result.
        data: real inputs by name (the ``--eval-data``/``--calibration`` rows the stages are verified
            on), given to lossy passes that correct with data; ``None`` when inputs were made up.
    """

    name: str = "pass"
    tf_runtime_only: bool = False
    lossy: bool = False
    data: Mapping[str, Any] | None = None

    def run(self, model: Model) -> PassResult:
        raise NotImplementedError


@dataclass
class PassStats:
    """What one pass did over the whole run (all fixed-point iterations).

    ``nodes_after - nodes_before`` is this pass's own net change over every iteration. The rows
    chain: the first starts at the input graph's size and each starts where the previous ended, so
    the last ends at the result's size (a fixed-point run interleaves passes; the table attributes
    each node removed or added to the pass that did it, in pipeline order).
    """

    name: str
    nodes_before: int = 0
    nodes_after: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
                "removed": self.removed, "added": self.added, "skips": [str(s) for s in self.skips],
                "runs": self.runs, "seconds": round(self.seconds, 3)}


def run_passes(model: Model, passes: Sequence[Pass], *, max_iterations: int = 8) -> tuple[Model, list[PassStats]]:
    """Run ``passes`` in order, repeatedly, until none changes the graph (or the cap is hit).

    The graph is validated before and after every pass, so a broken rewrite is caught at the
    pass that made it, with the pass named.
    """
    validate(model.graph_def)
    start_nodes = len(model.graph_def.node)
    stats = {p.name: PassStats(p.name) for p in passes}
    for _ in range(max_iterations):
        any_changed = False
        for p in passes:
            before = op_histogram(model.graph_def)
            n_before = len(model.graph_def.node)
            start = time.perf_counter()
            result = p.run(model)
            try:
                validate(result.model.graph_def)
            except GraphError as exc:
                raise GraphError(f"pass '{p.name}' produced an invalid graph: {exc}") from exc
            entry = stats[p.name]
            entry.runs += 1
            entry.nodes_after += len(result.model.graph_def.node) - n_before  # net change, chained below
            entry.seconds += time.perf_counter() - start
            # Skips describe the graph as the pass last saw it: earlier rounds' skips may have been
            # resolved since (a BatchNorm Add that the next round folded).
            entry.skips = list(dict.fromkeys(result.skips))
            if result.changed:
                _accumulate(entry, before, op_histogram(result.model.graph_def))
                log.info("%s: %d -> %d nodes", p.name, n_before, len(result.model.graph_def.node))
            any_changed |= result.changed
            model = result.model
        if not any_changed:
            break
    running = start_nodes
    for entry in stats.values():
        entry.nodes_before, entry.nodes_after = running, running + entry.nodes_after
        running = entry.nodes_after
    return model, list(stats.values())


def _accumulate(entry: PassStats, before: dict[str, int], after: dict[str, int]) -> None:
    for op in set(before) | set(after):
        delta = after.get(op, 0) - before.get(op, 0)
        if delta < 0:
            entry.removed[op] = entry.removed.get(op, 0) - delta
        elif delta > 0:
            entry.added[op] = entry.added.get(op, 0) + delta


def copy_graph(graph_def: Any) -> Any:
    new = type(graph_def)()
    new.CopyFrom(graph_def)
    return new


def protected_nodes(model: Model) -> set[str]:
    """Nodes a pass must keep by name: the model's inputs and outputs."""
    return {s.node for s in model.inputs} | {s.node for s in model.outputs}
