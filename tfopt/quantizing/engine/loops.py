"""TF1 (v1 control flow) while loops in the int8 engine: their ops stay float, and say why.

An op inside a v1 while loop (between its ``Enter`` and ``Exit`` nodes,
:func:`tfopt.graphdef.frames.loop_frames`) runs once per iteration, so a Session cannot fetch its
output to gather statistics: TensorFlow refuses the fetch ("Retval[k] has already been set"). A
range for it would be a guess, so placement (:mod:`tfopt.quantizing.engine.placement`) gives none
there: the loop's layers and ops stay float in every target, while the loop's outputs (after its
``Exit``) and every op outside loops are quantized as usual. :func:`loop_skips` says which ops, for
the engine's report (``manifest.json``).
"""

from __future__ import annotations

from tfopt.graph import Model
from tfopt.graphdef.frames import loop_frames
from tfopt.quantizing.engine.placement import LINEAR_OPS, range_groups

REASON = "inside a TF1 while loop: statistics per iteration cannot be fetched"
_SHOWN = 6  # op names listed per loop


def loop_skips(model: Model) -> list[str]:
    """One line per v1 while loop holding an op that would otherwise be quantized (a linear layer, a
    requantizing op, a composite): its ops (the first few), their count, the loop, :data:`REASON`."""
    looped = loop_frames(model.graph_def)
    if not looped:
        return []
    names = [n for group, _ in range_groups(model, in_loops=True) for n in group if n in looped]
    names += [n.name for n in model.graph_def.node if n.op in LINEAR_OPS and n.name in looped]
    by_frame: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        by_frame.setdefault(looped[name], []).append(name)
    return [f"{', '.join(ops[:_SHOWN])}{' ...' if len(ops) > _SHOWN else ''} ({len(ops)} op(s) of loop '{frame}'): "
            f"left float, {REASON}" for frame, ops in by_frame.items()]
