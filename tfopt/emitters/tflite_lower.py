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

Only the main graph is lowered: an op inside a function body (a ``While`` loop) is reported.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import Model, canonical_tensor
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph


class LowerForBuiltins(Pass):
    """lower ops the TFLite converter has no builtin for into builtins, where that is exact."""

    name = "lower_for_builtins"

    def run(self, model: Model) -> PassResult:
        from tfopt.emitters import tflite_lower_math, tflite_lower_pool  # noqa: F401  (they fill the registry)
        from tfopt.emitters.tflite_lowering import Operand, registry, rewire, splice

        skips = [Skip(f"{function.signature.name}/{node.name}",
                      f"{node.op} inside a function body: not lowered (only the main graph is)")
                 for function in model.graph_def.library.function for node in function.node_def
                 if registry.get(node.op)]
        wanted = [n.name for n in model.graph_def.node if registry.get(n.op)]
        if not wanted:
            return PassResult(model, False, skips)
        from tfopt._tf import GraphFacts

        facts = GraphFacts(model.graph_def)
        graph_def = copy_graph(model.graph_def)
        taken = {n.name for n in graph_def.node}
        by_name = {n.name: n for n in graph_def.node}
        moved: dict[str, str] = {}
        lowered: list[str] = []
        for name in wanted:
            node = by_name[name]
            lowering = registry.get(node.op)
            assert lowering is not None
            operands = [Operand(ref, facts.graph.get_tensor_by_name(canonical_tensor(ref)).dtype, facts.shape(ref))
                        for ref in node.input if not ref.startswith("^")]
            reason = lowering.check(node, operands)
            if reason is not None:
                skips.append(Skip(name, reason))
                continue
            moved.update(splice(graph_def, node, operands, lowering.build, taken))
            lowered.append(f"{name} ({node.op}: {lowering.what})")
        if not lowered:
            return PassResult(model, False, skips)
        rewire(graph_def, moved)
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
