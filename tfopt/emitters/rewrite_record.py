"""What one artifact's conversion rewrote in the graph its converter read: the report lines of every lowering made
for that converter, by kind, recorded in the scope the conversion stage opens around one artifact's emit
(:func:`tfopt.conversion.stages.emit_artifact`), which keeps them as the artifact's ``rewrites`` (manifest.json;
the report's notes, :func:`tfopt.report.table.rewrites_note`).

The kinds: ``split_reductions`` and ``lowered_resizes`` (:mod:`tfopt.emitters.converter_lower`, every target),
``lowered_for_builtins`` (TFLite, :mod:`tfopt.emitters.tflite_lower`) and ``lowered_<Op>``, one op as its formula
for one converter (:func:`tfopt.emitters.tflite_lower_bodies.lower_everywhere`: ``CropAndResize`` and
``RaggedTensorToTensor`` for tf2onnx, ``LRN`` and ``ReverseV2`` for OpenVINO, ``ScatterNd`` for both). Each line is ``node (op: what)``,
a function body's node ``function/node``.

The scope is a context variable set by the stage's ``with`` block, not a module global: the emitters report
where they lower, deep in each target's conversion, and the target's ``emit`` role still returns only the path.
Outside any scope (``tfopt debug``, an emitter called directly) nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The record of the innermost rewrites_recorded() scope: report lines by kind (None outside any scope).
_RECORD: ContextVar[dict[str, list[str]] | None] = ContextVar("tfopt_converter_rewrites", default=None)


@contextmanager
def rewrites_recorded() -> Iterator[dict[str, list[str]]]:
    """The report lines of the lowerings made for a converter inside the block, by kind: what one artifact's
    conversion rewrote. A kind reported again (a converter's retry, a keep-float candidate, an engine fallback)
    replaces its lines: the same graph gives the same lowering."""
    record: dict[str, list[str]] = {}
    token = _RECORD.set(record)
    try:
        yield record
    finally:
        _RECORD.reset(token)


def record_rewrites(lines: dict[str, list[str]]) -> None:
    """Add ``lines`` (kind -> report lines; an empty kind is left out) to the innermost :func:`rewrites_recorded`
    scope, if any. A lowering made earlier and kept (ONNX's graph made once for tf2onnx's child,
    :mod:`tfopt.emitters.onnx`) is reported again by the conversion that uses it."""
    record = _RECORD.get()
    if record is not None:
        record.update({kind: list(value) for kind, value in lines.items() if value})
