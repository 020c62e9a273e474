"""TF1 (v1 control flow) while loops in the int8 engine: which of their ops stay float, and why.

An op inside a v1 while loop (between its ``Enter`` and ``Exit`` nodes,
:func:`tfopt.graphdef.frames.loop_frames`) runs once per iteration. Its statistics cover every
iteration (:mod:`tfopt.quantizing.engine.loop_statistics` carries its values out of the loop), so it
is quantized like any op outside loops. Where those values are not gathered (a loop nested in
another, a ``tf.cond`` branch inside the body: :func:`~tfopt.quantizing.engine.loop_statistics.unmeasured`)
a range would be a guess, so placement (:mod:`tfopt.quantizing.engine.placement`) gives none there:
those ops stay float in every target. :func:`loop_skips` says which, for the engine's report
(``manifest.json``).
"""

from __future__ import annotations

from tfopt.graph import Model
from tfopt.graphdef.frames import loop_frames
from tfopt.quantizing.engine.loop_statistics import unmeasured
from tfopt.quantizing.engine.placement import LINEAR_OPS, range_groups

_SHOWN = 6  # op names listed per loop


def loop_skips(model: Model) -> list[str]:
    """One line per v1 while loop and reason holding an op that would otherwise be quantized (a linear
    layer, a requantizing op, a composite) but whose values per iteration are not gathered: its ops
    (the first few), their count, the loop, the reason."""
    refused = unmeasured(model.graph_def)
    if not refused:
        return []
    frames = loop_frames(model.graph_def)
    names = [n for group, _ in range_groups(model, in_loops=True) for n in group if n in refused]
    names += [n.name for n in model.graph_def.node if n.op in LINEAR_OPS and n.name in refused]
    by_frame: dict[tuple[str, str], list[str]] = {}
    for name in dict.fromkeys(names):
        by_frame.setdefault((frames[name], refused[name]), []).append(name)
    return [f"{', '.join(ops[:_SHOWN])}{' ...' if len(ops) > _SHOWN else ''} ({len(ops)} op(s) of loop '{frame}'): "
            f"left float, {reason}" for (frame, reason), ops in by_frame.items()]
