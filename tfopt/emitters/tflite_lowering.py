"""The registry of op lowerings and the splice that puts one into a GraphDef.

A lowering replaces one TensorFlow op by a subgraph of ops the TFLite converter has builtins for,
computing the same function (each lowering's docstring states its formula and error bound). It is
written as ordinary TensorFlow code, ``build(node, *inputs) -> [outputs]``, traced once per node
in a fresh graph whose placeholders carry the node's input dtypes and static shapes; the traced
nodes are then copied into the model's GraphDef under ``<node>/lowered/`` with each placeholder
wired to the node's real input (:func:`splice`). The replacement keeps the node's name: output 0
is an ``Identity`` named as the node, so its consumers need no rewiring; a consumer of output
``k > 0`` (``MaxPoolWithArgmax``'s argmax) is rewired to the subgraph's ``k``-th output. The same
splice works on a FunctionDef's body (``nested``): there tensors are named ``node:arg:index``, so
output 0 becomes ``node:output:0`` and its readers are rewired too
(:mod:`tfopt.emitters.tflite_lower_bodies`). :func:`lower_nodes` applies the registry to one scope.

A lowering first checks that it is exact for this node (dtype, static dimensions, attributes) and
returns the reason when it is not; the pass reports that reason as a skip.

A lowering whose formula depends on an input's value (``ReverseV2``'s axes) names that input in
``Lowering.constants``: its :class:`Operand` then carries the value when the graph's constants and
static shapes decide it (``static``, given by the scope: main graph or body), the check refuses the
node when it is ``None``, and ``build`` receives that input as its value (a NumPy array) instead of a
placeholder; the traced subgraph holds its own constant and the node's input is no longer read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.graph import canonical_tensor
from tfopt.passes.base import Skip

Check = Callable[[Any, Sequence["Operand"]], "str | None"]
Build = Callable[[Any, Sequence[Any]], Sequence[Any]]
Static = Callable[[str], "np.ndarray | None"]
"""An input's value (its name as the node's ``input`` spells it) when the scope's constants and static
shapes decide it, else ``None``."""


@dataclass(frozen=True)
class Operand:
    """One input of the node being lowered: its tensor name, dtype (``tf.DType``), static shape
    (``None`` for unknown rank, ``None`` per unknown dimension) and, for an input the lowering names in
    ``Lowering.constants``, its value when the graph decides it (else ``None``)."""

    tensor: str
    dtype: Any
    shape: tuple[int | None, ...] | None
    value: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def reader(cls, facts: Any) -> Callable[[str], Operand]:
        """``operand(ref)`` of the main graph ``facts`` imported (:class:`tfopt._tf.GraphFacts`): its dtype and
        static shape there, for :func:`lower_nodes`."""
        return lambda ref: cls(ref, facts.graph.get_tensor_by_name(canonical_tensor(ref)).dtype, facts.shape(ref))


@dataclass(frozen=True)
class Lowering:
    """How one op is lowered: ``check`` returns why this node cannot be (or ``None``); ``build`` is
    the replacement as TensorFlow code; ``what`` says what it becomes, for the report (``describe``, when
    given: what this node becomes, once its check passed, for a lowering with more than one form); ``constants``
    are the positions of the inputs ``build`` takes as values (module docstring)."""

    op: str
    check: Check
    build: Build
    what: str
    constants: tuple[int, ...] = ()
    describe: Callable[[Any, Sequence[Operand]], str] | None = None


class Lowerings:
    """Op type -> :class:`Lowering`, filled with :meth:`register` by the modules that define them."""

    def __init__(self) -> None:
        self._by_op: dict[str, Lowering] = {}

    def register(self, *ops: str, what: str, check: Check | None = None) -> Callable[[Build], Build]:
        """Decorator: ``build`` lowers each of ``ops``; ``check`` (default: float32/16 inputs) gates it."""

        def add(build: Build) -> Build:
            for op in ops:
                if op in self._by_op:
                    raise ValueError(f"two lowerings for {op}")
                self._by_op[op] = Lowering(op, check or float_inputs, build, what)
            return build

        return add

    def get(self, op: str) -> Lowering | None:
        return self._by_op.get(op)

    def ops(self) -> list[str]:
        return sorted(self._by_op)


registry = Lowerings()
FLOATS = ("float32", "float16", "bfloat16")


def float_inputs(node: Any, operands: Sequence[Operand]) -> str | None:
    """The default check: every input is float32, float16 or bfloat16 (float64 is not TFLite's)."""
    bad = [o.dtype.name for o in operands if o.dtype.name not in FLOATS]
    return f"{node.op} on {bad[0]}: lowered for {', '.join(FLOATS)} only" if bad else None


@dataclass
class Lowered:
    """What :func:`lower_nodes` did: each lowered node's new output tensors (:func:`splice`), the
    report lines of the lowered nodes and the skips of the declined ones."""

    outputs: dict[str, list[str]]
    lowered: list[str]
    skips: list[Skip]


def lower_nodes(nodes: Any, wanted: Sequence[str], operand: Callable[[str], Operand], taken: set[str], *,
                nested: bool = False, label: Callable[[str], str] = str,
                lowering_of: Callable[[Any], Lowering | None] | None = None, static: Static | None = None) -> Lowered:
    """Lower each node of ``nodes`` named in ``wanted`` (in place) whose lowering's check passes.

    Args:
        nodes: ``graph_def.node`` or a FunctionDef's ``node_def``.
        wanted: names of nodes whose op has a lowering.
        operand: an input's :class:`Operand` from its name (as the node's ``input`` spells it).
        taken: names in use in that scope; the new nodes' names are added.
        nested: ``nodes`` are a function body: tensors are named ``node:arg:index`` (FunctionDef).
        label: how a node is named in the report (a function body's name in front).
        lowering_of: a node's :class:`Lowering` (default: :data:`registry`'s for its op); every
            node of ``wanted`` has one.
        static: an input's value in that scope (:data:`Static`), read for the inputs a lowering
            names in ``constants``; without it they have none and such a lowering is declined.
    """
    by_name = {n.name: n for n in nodes}
    done = Lowered({}, [], [])
    for name in wanted:
        node = by_name[name]
        lowering = lowering_of(node) if lowering_of is not None else registry.get(node.op)
        if lowering is None:
            raise ValueError(f"no lowering for {node.op} '{name}'")
        refs = [ref for ref in node.input if not ref.startswith("^")]
        operands = [_with_value(operand(ref), static) if i in lowering.constants else operand(ref)
                    for i, ref in enumerate(refs)]
        reason = lowering.check(node, operands)
        if reason is not None:
            done.skips.append(Skip(label(name), reason))
            continue
        what = lowering.describe(node, operands) if lowering.describe is not None else lowering.what
        done.outputs[name] = splice(nodes, node, operands, lowering.build, taken, nested=nested)
        done.lowered.append(f"{label(name)} ({node.op}: {what})")
    return done


def _with_value(operand: Operand, static: Static | None) -> Operand:
    import dataclasses

    return dataclasses.replace(operand, value=None if static is None else static(operand.tensor))


def splice(nodes: Any, node: Any, operands: Sequence[Operand], build: Build, taken: set[str], *,
           nested: bool = False) -> list[str]:
    """Replace ``node`` in ``nodes`` (in place) by ``build`` traced on ``operands`` (an operand with a
    ``value`` reaches ``build`` as that value, the others as placeholders wired to their tensors).

    Returns:
        The tensor each output of ``node`` now is, in order: output 0 is the ``Identity`` under the
        node's own name; in GraphDef form (``name``, ``name:0``), or ``nested`` in FunctionDef
        form (``name:output:0``; the inputs of the copied nodes too).
    """
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        placeholders = {i: t.compat.v1.placeholder(o.dtype, o.shape, name=f"input_{i}")
                        for i, o in enumerate(operands) if o.value is None}
        outputs = list(build(node, [placeholders.get(i, o.value) for i, o in enumerate(operands)]))
        names = [t.identity(out, name=f"output_{k}").op.name for k, out in enumerate(outputs)]
    traced = graph.as_graph_def()
    prefix = _free_prefix(node.name + "/lowered", taken)
    wired = {p.op.name: operands[i].tensor for i, p in placeholders.items()}
    args = _output_args(graph) if nested else {}

    def rename(name: str) -> str:
        control = name.startswith("^")
        base = name.lstrip("^")
        source, _, index = base.partition(":")
        if source in wired:
            return wired[source]  # a placeholder has one output
        new = f"{prefix}/{source}"
        if control:
            return "^" + new
        if nested:
            return f"{new}:{args[source][int(index or 0)]}"
        return new + (f":{index}" if index else "")

    controls = [name for name in node.input if name.startswith("^")]
    device = node.device
    kept = []
    for traced_node in traced.node:
        if traced_node.name in wired:
            continue
        copy = type(node)()
        copy.CopyFrom(traced_node)
        copy.name = node.name if copy.name == names[0] else f"{prefix}/{copy.name}"
        del copy.input[:]
        copy.input.extend(rename(name) for name in traced_node.input)
        if traced_node.name == names[0]:
            copy.input.extend(controls)
        copy.device = device
        kept.append(copy)
        taken.add(copy.name)
    position = list(nodes).index(node)
    del nodes[position]
    nodes.extend(kept)
    new = [node.name] + [f"{prefix}/{name}" for name in names[1:]]
    return [f"{name}:output:0" if nested else (name if k == 0 else f"{name}:0") for k, name in enumerate(new)]


def _output_args(graph: Any) -> dict[str, list[str]]:
    """Op name -> ``arg:index`` of each of its outputs in order: how a FunctionDef names them."""
    from tensorflow.python.framework import op_def_registry

    out = {}
    for op in graph.get_operations():
        attrs = op.node_def.attr
        names: list[str] = []
        for arg in op_def_registry.get(op.type).output_arg:
            count = (attrs[arg.number_attr].i if arg.number_attr
                     else len(attrs[arg.type_list_attr].list.type) if arg.type_list_attr else 1)
            names.extend(f"{arg.name}:{i}" for i in range(count))
        out[op.name] = names
    return out


def rewire(graph_def: Any, moved: dict[str, str]) -> None:
    """Point every input that reads a key of ``moved`` at its value (in place)."""
    if not moved:
        return
    for node in graph_def.node:
        for i, name in enumerate(node.input):
            if not name.startswith("^") and canonical_tensor(name) in moved:
                node.input[i] = moved[canonical_tensor(name)]


def _free_prefix(prefix: str, taken: set[str]) -> str:
    if not any(name == prefix or name.startswith(prefix + "/") for name in taken):
        return prefix
    n = 1
    while any(name.startswith(f"{prefix}_{n}/") for name in taken):
        n += 1
    return f"{prefix}_{n}"
