"""A resource handle passed into a functional op (``While``, ``If``, ``Case``, a ``PartitionedCall``) becomes
the value it holds, inside the called functions too.

A TF1-style graph built with control flow v2 (``tf.while_loop`` under ``enable_control_flow_v2``, a TF2
``tf.function`` loop imported into a session) hands a ``while_loop`` body its weights as loop inputs:

    VarHandleOp(w) -> While(..., w, T=[..., resource], body=B, cond=C)
    B(..., arg_w: resource) { r = ReadVariableOp(arg_w); MatMul(x, r:value:0) ...; return ..., arg_w }

=> ``Const(w) -> While(..., w, T=[..., float])`` with ``B(..., arg_w: float) { r = Identity(arg_w) ... }``:
the caller's type attribute (``T`` of a loop, ``Tin`` of a call/branch) at the argument's index, the
functions' argument (and, for a loop body, the matching result) and every reader inside the bodies change
together, as TensorFlow's ``convert_to_constants`` does for ``_While``/``_If``/``_PartitionedCall``.
Function bodies are walked recursively (a loop in a loop, a call in a branch); a loop's result at the
handle's index is the handle again and its consumers are walked like the handle's. A function that
returns the handle from anything but a loop body has no value form here and blocks the rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfopt.graphdef.calls import callees, first_argument, ref_node

# op -> its type-list attribute (which input feeds which argument: graphdef.calls.first_argument)
CALLERS: dict[str, str] = {
    "While": "T", "StatelessWhile": "T", "If": "Tin", "StatelessIf": "Tin", "Case": "Tin",
    "StatelessCase": "Tin", "PartitionedCall": "Tin", "StatefulPartitionedCall": "Tin",
}
LOOPS = ("While", "StatelessWhile")


@dataclass
class Plan:
    """Every change that turns one handle into its value, collected before any is made."""

    typed: list[Any] = field(default_factory=list)  # pass-through nodes whose ``T`` becomes the value's
    reads: list[tuple[Any, Any]] = field(default_factory=list)  # (ReadVariableOp/ResourceGather, scope)
    calls: list[tuple[Any, int]] = field(default_factory=list)  # (caller, argument index)
    args: list[tuple[Any, int]] = field(default_factory=list)  # (FunctionDef, argument index)
    results: list[tuple[Any, int]] = field(default_factory=list)  # (loop body FunctionDef, result index)
    seen: set[tuple[int, str]] = field(default_factory=set)  # (scope id, node or argument name) walked
    carried: dict[int, set[str]] = field(default_factory=dict)  # scope id -> names that now carry the value


def walk_call(node: Any, index: int, scope: Any, library: dict[str, Any], plan: Plan,
              walk: Any) -> Any:
    """Plan the handle entering ``node`` (a :data:`CALLERS` op in ``scope``) at input ``index``.

    ``walk(scope, name, port)`` plans the consumers of ``name[:port]`` in ``scope`` (``None`` for every port)
    and returns the first blocker or ``None``. Returns the first blocker or ``None``.
    """
    first = first_argument(node, library)
    if first is None or index < first:
        return node
    arg = index - first
    plan.calls.append((node, arg))
    for fdef in (library[name] for name in callees(node, library)):
        if (id(fdef), f"arg:{arg}") in plan.seen:
            continue
        plan.seen.add((id(fdef), f"arg:{arg}"))
        plan.args.append((fdef, arg))
        arg_name = fdef.signature.input_arg[arg].name
        blocker = walk(fdef, arg_name, None)
        if blocker is not None:
            return blocker
        carried = {arg_name} | plan.carried.get(id(fdef), set())
        for k, out in enumerate(fdef.signature.output_arg):
            if ref_node(fdef.ret[out.name]) not in carried:
                continue
            if node.op not in LOOPS or k != arg:
                return node
            plan.results.append((fdef, k))
    if node.op in LOOPS:  # the loop hands the (unchanged) handle out at the same index
        return walk(scope, node.name, arg)
    return None


def apply(plan: Plan, dtype: int, to_gather: Any) -> None:
    """Make the planned changes: the handle now carries a ``dtype`` value everywhere it flows."""
    for node in plan.typed:
        node.attr["T"].type = dtype
    for node, scope in plan.reads:
        if node.op == "ReadVariableOp":
            node.op = "Identity"
            node.attr["T"].type = node.attr["dtype"].type
            del node.attr["dtype"]
            if hasattr(scope, "node_def"):  # a function body names the output by its arg name
                _rename_output(scope, node.name, "value", "output")
        else:
            to_gather(scope, node)
    for node, arg in plan.calls:
        node.attr[CALLERS[node.op]].list.type[arg] = dtype
        if node.op in LOOPS and node.attr["output_shapes"].list.shape:
            shape = node.attr["output_shapes"].list.shape[arg]
            shape.Clear()
            shape.unknown_rank = True
        node.attr.pop("_read_only_resource_inputs", None)
    for fdef, arg in plan.args:
        fdef.signature.input_arg[arg].type = dtype
        attrs = fdef.arg_attr[arg].attr if arg in fdef.arg_attr else None
        if attrs is not None:
            for key in ("_output_shapes", "_handle_dtypes", "_handle_shapes"):
                attrs.pop(key, None)
        if "_input_shapes" in fdef.attr and arg < len(fdef.attr["_input_shapes"].list.shape):
            shape = fdef.attr["_input_shapes"].list.shape[arg]
            shape.Clear()
            shape.unknown_rank = True
    for fdef, k in plan.results:
        fdef.signature.output_arg[k].type = dtype


def _rename_output(fdef: Any, node: str, old: str, new: str) -> None:
    prefix, replacement = f"{node}:{old}:", f"{node}:{new}:"
    for n in fdef.node_def:
        for i, ref in enumerate(n.input):
            if ref.startswith(prefix):
                n.input[i] = replacement + ref[len(prefix):]
    for key, ref in list(fdef.ret.items()):
        if ref.startswith(prefix):
            fdef.ret[key] = replacement + ref[len(prefix):]
