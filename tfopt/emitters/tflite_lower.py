"""Lower the TensorFlow ops TFLite has no builtin for, where an exact decomposition exists.

The TFLite converter refuses an op it has no builtin for (``Asinh``, ``MaxPool3D``,
``MaxPoolWithArgmax``...) unless Select TF ops are allowed, which most deployments cannot run.
This pass runs on the graph the TFLite emitter converts, and only there (ONNX and OpenVINO have
these ops and keep them): each such op is replaced by builtins computing the same function
(:mod:`tfopt.emitters.tflite_lower_math`, :mod:`tfopt.emitters.tflite_lower_pool`; the formulas and
their error bounds are there), spliced in under the op's own name
(:mod:`tfopt.emitters.tflite_lowering`). An op whose lowering would not be exact for this node
(float64, a dynamic spatial size, NCDHW) is left as it is and reported as a skip with the reason;
the converter's error then names it.

It runs after tfopt's int8 engine: the engine's ranges sit on the ops' inputs and outputs (these
ops get none of their own), so the ops the lowering adds carry no range and the converter runs
them in float between int8 tensors, as one op would be. Lowering before the engine would put a
range on every intermediate ``Add``/``Mul`` and round them to 8 bits, and would change the graph
the other targets quantize.

The same ops inside functional control flow are lowered too: every function body the graph reaches
(``While``/``If``/``Case`` bodies and branches, ``PartitionedCall`` functions, nested ones), each
once however many nodes call it (:mod:`tfopt.emitters.tflite_lower_bodies`).
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import Model, canonical_tensor
from tfopt.passes.base import Pass, PassResult, copy_graph


class LowerForBuiltins(Pass):
    """lower ops the TFLite converter has no builtin for into builtins, where that is exact."""

    name = "lower_for_builtins"

    def run(self, model: Model) -> PassResult:
        from tfopt.emitters import tflite_lower_math, tflite_lower_no_nan, tflite_lower_pool  # noqa: F401  (they fill the registry)
        from tfopt.emitters.static_values import graph_static
        from tfopt.emitters.tflite_lower_bodies import bodies_to_lower, lower_bodies
        from tfopt.emitters.tflite_lowering import Operand, lower_nodes, registry, rewire

        wanted = [n.name for n in model.graph_def.node if registry.get(n.op)]
        bodies = bodies_to_lower(model.graph_def)
        if not wanted and not bodies:
            return PassResult(model, False)
        from tfopt._tf import GraphFacts

        facts = GraphFacts(model.graph_def)
        graph_def = copy_graph(model.graph_def)
        done = lower_nodes(graph_def.node, wanted, Operand.reader(facts), {n.name for n in graph_def.node},
                           static=graph_static(model.graph_def, facts))
        moved = {f"{name}:{k}": new for name, outputs in done.outputs.items() for k, new in enumerate(outputs) if k}
        rewire(graph_def, moved)
        in_bodies = lower_bodies(graph_def, bodies, facts.graph)
        lowered, skips = done.lowered + in_bodies.lowered, done.skips + in_bodies.skips
        if not lowered:
            return PassResult(model, False, skips)
        outputs = [_moved_spec(s, moved) for s in model.outputs]
        provenance = {**model.provenance, "lowered_for_builtins": lowered}
        return PassResult(model.replace(graph_def=graph_def, outputs=outputs, provenance=provenance), True, skips)


def _moved_spec(spec: Any, moved: dict[str, str]) -> Any:
    import dataclasses

    new = moved.get(canonical_tensor(spec.tensor))
    return dataclasses.replace(spec, tensor=new) if new else spec


def lower_for_builtins(model: Model) -> PassResult:
    """:class:`LowerForBuiltins` run once on ``model``, the result validated (no dangling inputs)."""
    from tfopt.graph import validate

    result = LowerForBuiltins().run(model)
    if result.changed:
        validate(result.model.graph_def)
    return result
