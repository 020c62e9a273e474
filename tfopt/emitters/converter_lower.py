"""The two lowerings every target's converter gets, in one import of the graph.

ONNX, OpenVINO and TFLite each read a graph whose large float32 ``Mean``/``Sum`` are split into partial
reductions (:mod:`tfopt.emitters.reduce_lower`; TFLite: rows only) and whose bicubic, area and
scale-and-translate resizes are TensorFlow's weights as matrix products (:mod:`tfopt.emitters.resize_lower`).
Each lowering needs the graph imported into TensorFlow (dtypes, static shapes, the values of the inputs it
takes as constants) and every function body it reaches imported too: run one after the other they imported
the graph twice per target conversion, on a large model seconds each. Here one
:func:`~tfopt.emitters.tflite_lower_bodies.lower_reported` walk asks each node of either op set for its
lowering, so the graph and its bodies are imported once.

Both rewrites keep each node's name, dtype and shape (a spliced node's output 0 is an ``Identity`` under its
name) and neither writes an op of the other's set (a resize becomes ``MatMul``/``Transpose``), so the facts
each node's check reads are the same in the unlowered graph as after the other rewrite: lowering both
against the one import gives what lowering one after the other gave. The report lines are kept apart
(``split_reductions``, ``lowered_resizes``): every emitter reports them (:meth:`ConverterLowered.report`: at
INFO, and as the artifact's ``rewrites`` in manifest.json and report.md, :mod:`tfopt.emitters.rewrite_record`);
TFLite also keeps them in the converted model's provenance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tfopt.emitters.rewrite_record import record_rewrites
from tfopt.passes.base import Skip


@dataclass
class ConverterLowered:
    """What :func:`lower_for_converter` did: the graph (``graph_def`` itself when nothing changed), the
    report lines of the split reductions and of the lowered resizes (a body's nodes named
    ``<function>/<node>``), and the resizes left to the converter with the reason."""

    graph_def: Any
    reductions: list[str]
    resizes: list[str]
    resize_skips: list[Skip]

    def provenance(self) -> dict[str, list[str]]:
        """The report lines under the keys a model's provenance records them (none when empty)."""
        lines = {"split_reductions": self.reductions, "lowered_resizes": self.resizes}
        return {key: value for key, value in lines.items() if value}

    def report(self) -> None:
        """Each report line at INFO, and into the artifact's record (:mod:`tfopt.emitters.rewrite_record`)."""
        for key, lines in self.provenance().items():
            logging.getLogger(__name__).info("%s: %d\n  %s", key, len(lines), "\n  ".join(lines))
        record_rewrites(self.provenance())


def lower_for_converter(graph_def: Any, *, rows_only: bool = False) -> ConverterLowered:
    """``graph_def`` with its large float32 reductions split (:func:`tfopt.emitters.reduce_lower.lower_reductions`,
    ``rows_only`` as there) and its resizes of :data:`tfopt.emitters.resize_lower.NEEDS_MATRIX` lowered
    (:func:`tfopt.emitters.resize_lower.lower_resizes`), main graph and function bodies, in one import."""
    from tfopt.emitters.reduce_lower import OPS, reduction_lowering
    from tfopt.emitters.resize_lower import NEEDS_MATRIX, resize_lowering
    from tfopt.emitters.tflite_lower_bodies import lower_reported

    def lowering(node: Any, static: Any) -> Any:
        if node.op in OPS:
            return reduction_lowering(node, static, rows_only=rows_only)
        return resize_lowering(node, static)

    out, lowered, skips = lower_reported(graph_def, (*OPS, *NEEDS_MATRIX), lowering)
    op_of = ops_by_label(graph_def)
    reductions = [line for line in lowered if op_of.get(line.split(" (", 1)[0]) in OPS]
    return ConverterLowered(out, reductions, [line for line in lowered if line not in reductions],
                            [skip for skip in skips if op_of.get(skip.node) in NEEDS_MATRIX])


def ops_by_label(graph_def: Any) -> dict[str, str]:
    """Each node's op type by the label a lowering's report and skips name it by: its name in the main
    graph, ``<function>/<node>`` in a body."""
    op_of = {n.name: n.op for n in graph_def.node}
    op_of.update({f"{f.signature.name}/{n.name}": n.op for f in graph_def.library.function for n in f.node_def})
    return op_of
