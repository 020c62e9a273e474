"""The one model representation that flows through tfopt, and GraphDef helpers.

A :class:`Model` is a TensorFlow ``GraphDef`` plus its named inputs and outputs and where it came
from. Loaders produce one, freezing and passes transform it, emitters write it. Helpers here are
pure functions over the GraphDef protobuf; they never import TensorFlow's Python API, so the
fast paths (``tfopt inspect`` of a frozen graph) stay fast.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tfopt.errors import GraphError

# Control-flow v1 ops: bypassing an Identity next to these would change frame/deadness semantics.
CONTROL_FLOW_V1_OPS = frozenset(
    {"Switch", "RefSwitch", "Merge", "RefMerge", "Enter", "RefEnter", "Exit", "RefExit",
     "NextIteration", "RefNextIteration", "LoopCond"}
)
PLACEHOLDER_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Ops that make a loop, functional or v1: a graph holding one can run unboundedly long.
LOOP_OPS = frozenset({"While", "StatelessWhile", "_While", "LoopCond", "Enter"})

# TensorFlow DataType enum values (tensorflow/core/framework/types.proto), named here so that the
# GraphDef helpers and passes need not import TensorFlow to read or set a dtype attribute.
DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_INT64 = 9
DT_BOOL = 10
DT_BFLOAT16 = 14
DT_HALF = 19
DT_RESOURCE = 20
# The float types the weight folds rewrite (bfloat16 is left alone: numpy has no exact type for it).
FLOAT_TYPES = frozenset({DT_FLOAT, DT_DOUBLE, DT_HALF})

# DataType enum values -> numpy-style names.
DTYPE_NAMES = {
    DT_FLOAT: "float32", DT_DOUBLE: "float64", DT_INT32: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", DT_INT64: "int64", DT_BOOL: "bool", DT_BFLOAT16: "bfloat16", 17: "uint16", DT_HALF: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: the logical name users see (signature key, or node name for TF1 graphs).
        tensor: the graph tensor, ``"node:index"``.
        dtype: numpy-style dtype name, e.g. ``"float32"``.
        shape: dimensions, ``None`` for an unknown dimension; ``None`` for unknown rank.
        batch_axis: the axis holding the samples as the graph's structure says it (a time-major
            ``[time, batch, n]``: 1; :mod:`tfopt.graphdef.batch_axis`), ``None`` when nothing says
            (the dimension ties and axis 0 decide: :mod:`tfopt.verification.shapes`). Not compared.
    """

    name: str
    tensor: str
    dtype: str
    shape: tuple[int | None, ...] | None
    batch_axis: int | None = field(default=None, compare=False)

    @property
    def node(self) -> str:
        return tensor_node(self.tensor)

    def describe(self) -> str:
        dims = "?" if self.shape is None else "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({self.dtype}[{dims}])"


Runner = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass
class Model:
    """A graph with named inputs/outputs.

    Attributes:
        graph_def: a ``tensorflow.GraphDef`` (the frozen graph once :func:`tfopt.freeze` ran).
        inputs / outputs: the model's signature, in order.
        provenance: where it came from: ``format``, ``path``, ``signature`` and facts gathered while
            loading (variable count and bytes, bindings, removed nodes).
        reference: runs the *original* model (inputs keyed by ``TensorSpec.name``); kept so that
            every later stage can be verified against it. ``None`` when the source is itself frozen.
        bindings: placeholders that loading or freezing replaced by constants, name -> value.
        baseline: runs the model *before* post-training compression (``--cluster``/``--prune``),
            which the report measures accuracy and agreement against; ``None`` otherwise.
        external: the tensors kept outside the GraphDef (a ``tfopt.external.ExternalTensors``;
            their nodes are ``ImmutableConst``), or ``None`` when every weight is a ``Const``.
    """

    graph_def: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    provenance: dict[str, Any] = field(default_factory=dict)
    reference: Runner | None = None
    variable_values: Callable[[str], Any] | None = None
    bindings: dict[str, Any] = field(default_factory=dict)
    keepalive: Any = None  # e.g. the loaded SavedModel object, whose variables the reference reads
    baseline: Runner | None = None
    external: Any = None

    def replace(self, **changes: Any) -> Model:
        new = copy.copy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        return new


# --- tensor and edge names ------------------------------------------------------------------------

def tensor_node(ref: str) -> str:
    """``"^a"``, ``"a:1"`` and ``"a"`` all name node ``a``."""
    ref = ref[1:] if ref.startswith("^") else ref
    node, sep, port = ref.rpartition(":")
    return node if sep and port.isdigit() else ref


def tensor_port(ref: str) -> int:
    _, sep, port = ref.rpartition(":")
    return int(port) if sep and port.isdigit() else 0


def canonical_tensor(ref: str) -> str:
    """``"a"`` -> ``"a:0"``; ``"a:1"`` unchanged."""
    return f"{tensor_node(ref)}:{tensor_port(ref)}"



def edge_ref(node: str, port: int) -> str:
    """How a NodeDef input names port ``port`` of ``node``."""
    return node if port == 0 else f"{node}:{port}"


def is_control(ref: str) -> bool:
    return ref.startswith("^")


# --- graph queries ----------------------------------------------------------------------------------

def node_map(graph_def: Any) -> dict[str, Any]:
    return {n.name: n for n in graph_def.node}


def consumers(graph_def: Any) -> dict[str, list[tuple[Any, int]]]:
    """node name -> [(consumer NodeDef, input index)], control edges included."""
    out: dict[str, list[tuple[Any, int]]] = {n.name: [] for n in graph_def.node}
    for n in graph_def.node:
        for i, ref in enumerate(n.input):
            out.setdefault(tensor_node(ref), []).append((n, i))
    return out


def op_histogram(graph_def: Any) -> dict[str, int]:
    return nodes_histogram(graph_def.node)


def nodes_histogram(nodes: Iterable[Any]) -> dict[str, int]:
    """``{op: count}`` of ``nodes``, most frequent first (a GraphDef's, or a function body's)."""
    hist: dict[str, int] = {}
    for n in nodes:
        hist[n.op] = hist.get(n.op, 0) + 1
    return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))


def dtype_name(enum_value: int) -> str:
    return DTYPE_NAMES.get(int(enum_value), f"dtype{int(enum_value)}")


def shape_of(shape_proto: Any) -> tuple[int | None, ...] | None:
    if shape_proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in shape_proto.dim)


def placeholder_spec(node: Any) -> TensorSpec:
    dtype = node.attr["dtype"].type
    shape = shape_of(node.attr["shape"].shape) if "shape" in node.attr else None
    return TensorSpec(node.name, f"{node.name}:0", dtype_name(dtype), shape)


def with_input_shapes(graph_def: Any, shapes: Mapping[str, Iterable[int | None] | None], *,
                      ops: Collection[str] = PLACEHOLDER_OPS) -> Any:
    """A copy of ``graph_def`` whose placeholders (nodes of ``ops`` named in ``shapes``) declare the given
    shapes (``None``/-1: unknown), for TensorFlow's shape inference; ``graph_def`` itself when no shape is given.
    A placeholder's recorded ``_output_shapes`` goes with its old shape: TensorFlow's import would take it over
    the new one (refined back, or refused as inconsistent)."""
    if not any(v is not None for v in shapes.values()):
        return graph_def
    new = type(graph_def)()
    new.CopyFrom(graph_def)
    for node in new.node:
        shape = shapes.get(node.name)
        if shape is not None and node.op in ops:
            node.attr["shape"].shape.Clear()
            for d in shape:
                node.attr["shape"].shape.dim.add().size = -1 if d is None else int(d)
            node.attr.pop("_output_shapes", None)
    return new


def ancestors(graph_def: Any, roots: Iterable[str], *, follow_control: bool = True,
              skip_edge: Callable[[Any, str], bool] | None = None) -> set[str]:
    """Names of ``roots`` and every node they (transitively) depend on.

    Args:
        skip_edge: ``skip_edge(consumer, input_ref)`` -> True to not follow that edge.
    """
    nodes = node_map(graph_def)
    seen: set[str] = set()
    stack = [tensor_node(r) for r in roots]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        for ref in node.input:
            if is_control(ref) and not follow_control:
                continue
            if skip_edge is not None and skip_edge(node, ref):
                continue
            stack.append(tensor_node(ref))
    return seen


def subgraph(graph_def: Any, keep: set[str]) -> Any:
    """A copy of ``graph_def`` with only the nodes in ``keep`` (library and versions kept).

    Control inputs from dropped nodes are removed; data inputs from dropped nodes are an error.
    """
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name not in keep:
            continue
        new = out.node.add()
        new.CopyFrom(node)
        del new.input[:]
        for ref in node.input:
            if tensor_node(ref) in keep:
                new.input.append(ref)
            elif not is_control(ref):
                raise GraphError(f"node '{node.name}' needs '{ref}', which was removed")
    return out


def attr_bytes(node: Any, key: str, default: bytes = b"") -> bytes:
    """``node.attr[key].s`` without inserting an empty attr (protobuf maps create on read)."""
    return node.attr[key].s if key in node.attr else default


def control_inputs(node: Any) -> list[str]:
    """``node``'s control inputs (``^name``), in order."""
    return [r for r in node.input if is_control(r)]


def set_inputs(node: Any, refs: Iterable[str]) -> None:
    """Replace ``node``'s inputs (data and control) with ``refs``, in order."""
    refs = list(refs)  # may read node.input itself
    del node.input[:]
    node.input.extend(refs)


def replace_nodes(graph_def: Any, nodes: Iterable[Any]) -> None:
    """Make ``nodes`` the graph's node list, in order (e.g. the ones a pass keeps).

    Args:
        graph_def: the ``GraphDef`` to edit in place.
        nodes: ``NodeDef`` messages, possibly the graph's own. The graph holds copies afterwards:
            edit the nodes before the call, not through the caller's references after it.

    Colocation hints (``_class: loc:@name``) naming a node no longer in the graph are dropped:
    TensorFlow refuses to import a graph whose node asks to sit beside an unknown node (a TF1
    ``TensorArrayWrite`` is colocated with the value it writes, which a pass may have removed).
    """
    nodes = list(nodes)
    del graph_def.node[:]
    graph_def.node.extend(nodes)
    names = {n.name.encode() for n in graph_def.node}
    for node in graph_def.node:
        if "_class" in node.attr:
            hints = node.attr["_class"].list.s
            kept = [h for h in hints if not h.startswith(b"loc:@") or h[5:] in names]
            if len(kept) != len(hints):
                del hints[:]
                hints.extend(kept)
                if not kept:
                    del node.attr["_class"]


def remove_nodes(graph_def: Any, names: Collection[str]) -> None:
    """Delete the nodes named in ``names``, keeping the others in order (no rewiring)."""
    replace_nodes(graph_def, [n for n in graph_def.node if n.name not in names])


def rewrite_node(node: Any, op: str, *, inputs: Iterable[str] | None = None, types: Mapping[str, int] | None = None,
                 type_lists: Mapping[str, Iterable[int]] | None = None, ints: Mapping[str, int] | None = None,
                 strings: Mapping[str, bytes] | None = None) -> None:
    """Turn ``node`` into an ``op`` node in place, keeping its name, so its consumers need no rewiring.

    Every attribute is cleared (the old op's attributes mean nothing to the new one), then set from
    the arguments. Arguments are read before anything changes, so they may come from ``node`` itself.

    Args:
        node: the ``NodeDef`` to rewrite.
        op: the new op type.
        inputs: the new inputs, data then control; ``None`` keeps the current ones.
        types: ``type`` attributes (DataType enum values, e.g. :data:`DT_FLOAT`).
        type_lists: ``list(type)`` attributes.
        ints: ``int`` attributes.
        strings: ``string`` attributes.
    """
    refs = None if inputs is None else list(inputs)
    type_lists = {k: list(v) for k, v in (type_lists or {}).items()}
    node.op = op
    node.attr.clear()
    for key, dtype in (types or {}).items():
        node.attr[key].type = dtype
    for key, dtypes in type_lists.items():
        node.attr[key].list.type.extend(dtypes)
    for key, value in (ints or {}).items():
        node.attr[key].i = value
    for key, text in (strings or {}).items():
        node.attr[key].s = text
    if refs is not None:
        set_inputs(node, refs)


def validate(graph_def: Any) -> None:
    """Raise :class:`GraphError` on duplicate node names, inputs naming missing nodes, or an
    attribute with no value (what reading ``node.attr[missing]`` leaves behind)."""
    names: set[str] = set()
    for node in graph_def.node:
        if node.name in names:
            raise GraphError(f"duplicate node name '{node.name}'")
        names.add(node.name)
        for key, value in node.attr.items():
            if value.WhichOneof("value") is None:
                raise GraphError(f"node '{node.name}' has an empty attribute '{key}'")
    for node in graph_def.node:
        for ref in node.input:
            if tensor_node(ref) not in names:
                raise GraphError(f"node '{node.name}' reads '{ref}', which is not in the graph")


def unique_name(graph_def: Any, base: str, taken: set[str] | None = None) -> str:
    """``base``, or ``base_i`` with the first free ``i``, not yet a node name of ``graph_def``.
    ``taken``: those names, kept by a caller adding many nodes (each call otherwise reads the whole
    graph); the name returned is added to it."""
    if taken is None:
        taken = {n.name for n in graph_def.node}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def rename_node(graph_def: Any, old: str, new: str) -> None:
    """Rename node ``old`` to ``new`` and every reference to it (data, control, colocation hints)."""
    hint = f"loc:@{old}".encode()
    for node in graph_def.node:
        if node.name == old:
            node.name = new
        for i, ref in enumerate(node.input):
            if tensor_node(ref) == old:
                node.input[i] = ref.replace(old, new, 1)
        if "_class" in node.attr:
            hints = node.attr["_class"].list.s
            for i, h in enumerate(hints):
                if h == hint:
                    hints[i] = f"loc:@{new}".encode()


def rewire(graph_def: Any, old_ref: str, new_ref: str) -> int:
    """Point every data input reading tensor ``old_ref`` at ``new_ref``; returns edges changed."""
    old = canonical_tensor(old_ref)
    changed = 0
    for node in graph_def.node:
        for i, ref in enumerate(node.input):
            if not is_control(ref) and canonical_tensor(ref) == old:
                node.input[i] = new_ref
                changed += 1
    return changed
