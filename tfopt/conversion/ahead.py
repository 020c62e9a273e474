"""Jobs sent ahead to a target's helper process (``tfopt convert``; the record's ``ahead``, e.g.
:func:`tfopt.emitters.onnx.convert_ahead`: tf2onnx in its child, :mod:`tfopt.emitters.onnx_worker`).

Each conversion that a helper process can make is sent as soon as its graph exists: the float one
once the frozen graph exists (:func:`send_ahead`), the int8 engine's once the statistics exist
(:func:`send_engine_ahead`). The helper converts them, in the order sent, while this process
builds the other targets; each target's stage collects its file (or its error) as the same job
sent at that stage would give it: the bytes are those of the synchronous path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tfopt.graph import Model
from tfopt.quantizing.engine.plan import engine_builds
from tfopt.targets import TABLE

if TYPE_CHECKING:
    from tfopt.conversion.stages import ConvertPlan, Prepared


def send_ahead(p: ConvertPlan, prepared: Prepared) -> bool:
    """Send the float conversion of every target that converts in a helper process (its record's
    ``ahead``, e.g. :func:`tfopt.emitters.onnx.convert_ahead`) as soon as the frozen graph exists,
    so that the helper works while this process builds the statistics and the other targets; the
    target's stage collects it, with its error when it failed. Only for an artifact converted from
    ``prepared.portable`` as :func:`emit_artifact` would (not the engine's int8 graph, a keep-float
    search or a model with external tensors). Returns whether a job was sent."""
    q, qat = p.options.quantize, prepared.qat
    searched = q.keep_float or q.auto_keep_float is not None

    def wanted(target: str, precision: str) -> bool:
        return not engine_builds(q, target, precision, qat) and \
            not (not qat and searched and precision in TABLE[target].keep_float)

    return _send_each(p, prepared, wanted, lambda target: prepared.portable)


def send_engine_ahead(p: ConvertPlan, prepared: Prepared) -> bool:
    """Send the int8 engine's graph of every target that converts in a helper process (what its
    int8 stage converts: ``prepared.int8.model_for(target)``), made now, before any artifact is
    emitted, so that the helper converts it while this process builds the others. Not under
    ``--int8-recipe auto``: its search converts each candidate at the target's stage (the chosen
    one is read back there). Returns whether a job was sent."""
    q, int8 = p.options.quantize, prepared.int8
    if int8 is None or q.int8_recipe == "auto":
        return False
    engine = [t for t, pr in p.pairs if engine_builds(q, t, pr, prepared.qat)]

    def model_of(target: str) -> Model:
        # the graphs of the targets before it first, in the stages' order: the engine shares work between
        # recipes, and its record (manifest.json) counts it where it was done
        start = time.perf_counter()
        for earlier in engine[:engine.index(target)]:
            int8.model_for(earlier)
        model = int8.model_for(target)
        prepared.stages["int8 engine (sent ahead)"] = time.perf_counter() - start
        return model

    return _send_each(p, prepared, lambda t, pr: t in engine, model_of)


def _send_each(p: ConvertPlan, prepared: Prepared, wanted: Callable[[str, str], bool],
               model_of: Callable[[str], Model]) -> bool:
    """Each target with an ``ahead`` and a ``wanted`` (target, precision) pair: ``model_of(target)``
    sent ahead. A failure is not raised here: the target's stage meets it again and reports it."""
    if prepared.portable.external is not None:
        return False
    sent = False
    for name in dict.fromkeys(t for t, _ in p.pairs):
        record = TABLE.get(name)
        if record is None or record.ahead is None or not any(t == name and wanted(t, pr) for t, pr in p.pairs):
            continue
        try:
            sent = bool(record.call("ahead", model_of(name), p.options.quantize.opset)) or sent
        except Exception:  # the target's stage converts it again and reports the error there
            continue
    return sent
