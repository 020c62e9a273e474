"""Where the engine's activation ranges go: one on the output of each op a converter runs as one kernel.

A range (a fake quant, :mod:`tfopt.quantizing.engine.fake_quant`) on a tensor tells every converter "this
tensor is int8 at this scale". Where a converter fuses several TF ops into one kernel, the tensors
between them do not exist in its graph: a range there either splits the fusion or rounds a value
the fused kernel never rounds. So ranges go where a quantization-aware (TFMOT) graph has them
(:func:`activation_tensors`):

1. each float model input;
2. each layer's output, after its bias and ``Relu``/``Relu6`` (:func:`layers`; Keras Dense on a
   sequence, ``MatMul -> Reshape -> BiasAdd``, too: converters fold that bias into the layer);
3. each fused composite's output, and nowhere inside it (:func:`composites`, below);
4. the output of every other op whose int8 output scale is not its input's (``REQUANTIZING_OPS``: ``Add``,
   ``Mul``, ``ConcatV2``, ``Softmax``..., a ``RealDiv`` by a constant), with a single-consumer ``Relu``/``Relu6`` after it;
5. a TF1 loop's output (``Exit``) or TensorArray element read by a layer: no converter carries a scale there.

Scale-preserving ops (``MaxPool``, ``Reshape``, ``Transpose``...) get none: converters carry their
input's scale through. Ops inside a TF1 while loop follow the same rules (statistics cover every
iteration: :mod:`.loop_statistics`), except where those are not gathered: :mod:`.loops`.

Fused composites: activations Keras and ``tf.nn`` build from elementwise ops, which a converter
matches as one op or a TFMOT graph quantizes as one (a Keras activation, LayerNormalization left
float). What each target runs, read from its converted graph (TFLite's: ``tests/quantizing/engine/test_placement.py``)::

    composite    TF ops (x: its input)                      TFLite              OpenVINO CPU
    GELU         0.5·x·erfc(−x/√2), 0.5·x·(1 + erf(x/√2))   GELU int8           erf: fused into the layer;
                                                                                erfc: 2 int8 eltwise
    GELU (tanh)  0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))  GELU int8           fused into the layer
    HardSwish    x·relu6(x + 3)/6                           HARD_SWISH int8     fused into the layer
    Swish/SiLU   x·sigmoid(β·x)                             LOGISTIC, MUL int8  fused into the layer
    LayerNorm    Mean, SquaredDifference, Mean, Add, Rsqrt, float (MEAN int8)   mostly float
                 x·(rsqrt·γ) + (β − μ·rsqrt·γ)

ONNX Runtime runs each as float ops between one DequantizeLinear and one QuantizeLinear. One range
on the output (the input has its producer's), none inside, because a range inside:

- splits the fusion. TFLite has no builtin ``Erf``/``Erfc``: its GELU fusion is the only way it
  converts them, so a fake quant inside a GELU fails the conversion; a tanh GELU becomes POW, MUL
  in float and ADD, MUL, TANH in int8; HardSwish an int8 ADD and float MULs. OpenVINO keeps extra
  FakeQuantize and eltwise nodes instead of fusing;
- rounds an intermediate to 8 bits where nothing fuses: the erf/tanh/sigmoid gate, LayerNorm's
  variance (a square of the input: a wide range, a coarse step) and rsqrt. Without a range the
  converters run them in float, between the int8 input and output.

One exception: LayerNorm's mean ``μ`` keeps a range of its own (:attr:`Composite.ranged`). TFLite
computes the MEAN of an int8 tensor in int8 whatever the graph says; with no range it rounds μ to the
input's step (3 output steps from the fake-quant graph, measured), with one (narrow: a mean) every
target and the fake-quant graph round it alike.

The matcher works on structure (which ops, what reads what), not on the constants: a lookalike
(``x·erf(x)``) is quantized as one op too, and its converter runs its inside in float. A composite
whose inner tensor is read outside it (or is a graph output) is none: its ops get ranges by rules
2 and 4, and :func:`composites` says why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tfopt.errors import OptionError
from tfopt.graph import Model, canonical_tensor, consumers, dtype_name, is_control, node_map, tensor_node
from tfopt.quantizing.engine.loop_statistics import unmeasured

# Layers with a constant weight in input 1: their output channel is the weight's last axis
# (depthwise: the last two axes, flattened).
LINEAR_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})
# Folded into the layer by every converter (bias add, then a clamp-like activation): the range goes
# after the last of them, not in between, as a QAT graph has it.
BIAS_OPS = frozenset({"BiasAdd", "Add", "AddV2"})
FUSED_ACTIVATIONS = frozenset({"Relu", "Relu6"})
# Ops whose output range is not their input's: each needs its own range to stay int8.
REQUANTIZING_OPS = frozenset({"Add", "AddV2", "Sub", "Mul", "ConcatV2", "Mean", "AvgPool", "Relu", "Relu6",
                              "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "Maximum", "Minimum", "Elu",
                              "SquaredDifference"})
# Ops whose int8 kernels reuse their input's scale need no range of their own: converters propagate it.
# Any other op gets none either, and runs as its converter decides.
SCALE_PRESERVING_OPS = frozenset({"MaxPool", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Identity", "Pad",
                                  "StridedSlice", "Slice", "SpaceToDepth", "DepthToSpace"})
FLOAT_DTYPES = frozenset({"float32"})
# A gated composite x·g(x): the op g applies, and the ops its argument may be built of (from x and constants).
GATES = {"Erf": ("GELU", frozenset({"Mul", "RealDiv", "Neg"})),
         "Erfc": ("GELU", frozenset({"Mul", "RealDiv", "Neg"})),
         "Tanh": ("GELU (tanh)", frozenset({"Mul", "RealDiv", "Add", "AddV2", "Pow"})),
         "Sigmoid": ("Swish", frozenset({"Mul", "RealDiv", "Neg"})),
         "Relu6": ("HardSwish", frozenset({"Add", "AddV2", "Mul", "RealDiv"}))}
# Elementwise ops applying a constant (the 1 + erf, the /6, the 0.5): between g and the gate, and after it.
CONSTANT_OPS = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv", "Neg"})
# LayerNorm's ops: the statistics over x, then elementwise ops of x, them and constants.
NORM_OPS = frozenset({"Mean", "SquaredDifference", "Square", "Sub", "Add", "AddV2", "Mul", "RealDiv", "Neg", "Rsqrt"})
MAX_NODES = 24  # nodes in a composite: Keras' LayerNormalization has 11, a bigger region is something else


@dataclass(frozen=True)
class Layer:
    """A linear op and the bias/activation nodes it fuses with (``nodes``: linear, bias, activation)."""

    linear: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Composite:
    """A fused composite activation: ``kind`` (``GELU``, ``LayerNorm``...), its input tensor, its
    nodes in graph order (the last is its output) and the inner ones that keep a range of their own
    (LayerNorm's mean, see the module docstring)."""

    kind: str
    input: str
    nodes: tuple[str, ...]
    ranged: tuple[str, ...] = ()


def layers(model: Model) -> list[Layer]:
    """Every quantizable layer (``LINEAR_OPS`` with a constant weight), with its fused tail, in graph order."""
    nodes = node_map(model.graph_def)
    users = data_consumers(model.graph_def)
    outputs = {tensor_node(s.tensor) for s in model.outputs}
    looped = unmeasured(model.graph_def)  # left float: :mod:`tfopt.quantizing.engine.loops`
    out = []
    for node in model.graph_def.node:
        if node.op in LINEAR_OPS and node.name not in looped and const_input(nodes, node, 1) is not None:
            chain = [node.name]
            reshape = _single_user(users, node.name, outputs)
            if reshape is not None and reshape.op == "Reshape":  # Keras Dense on 3-D input: Tensordot
                bias = _single_user(users, reshape.name, outputs)
                if bias is not None and bias.op in BIAS_OPS and _is_bias(nodes, bias) \
                        and _channels(const_input(nodes, bias, 1)) == _channels(const_input(nodes, node, 1)):
                    chain.append(reshape.name)  # (the reshape keeps the output channel last: the bias is per channel)
            for allowed in (BIAS_OPS, FUSED_ACTIVATIONS):
                nxt = _single_user(users, chain[-1], outputs)
                if nxt is not None and nxt.op in allowed and (allowed is not BIAS_OPS or _is_bias(nodes, nxt)):
                    chain.append(nxt.name)
            out.append(Layer(node.name, tuple(chain)))
    return out


def composites(model: Model) -> tuple[list[Composite], list[str]]:
    """The fused composites (module docstring) in graph order, and why each near-miss is none.

    Returns:
        ``(composites, skips)``: a skip names the op and the reason, e.g. ``"GELU at d/Gelu/Erfc:
        d/Gelu/mul is also read by other ops"``.
    """
    graph = _Graph(model)
    found: dict[str, Composite] = {}
    skips: list[str] = []
    for node in model.graph_def.node:
        if _dtype(node) not in FLOAT_DTYPES or (node.op not in GATES and node.op != "Rsqrt"):
            continue
        match = graph.gated(node) if node.op in GATES else graph.layer_norm(node)
        if isinstance(match, Composite):
            if not any(set(match.nodes) & set(c.nodes) for c in found.values()):
                found[match.nodes[-1]] = match
        elif match:
            skips.append(match)
    order = {n.name: i for i, n in enumerate(model.graph_def.node)}
    return sorted(found.values(), key=lambda c: order[c.nodes[-1]]), skips


def activation_tensors(model: Model, keep_float: Collection[str] = ()) -> list[str]:
    """The tensors (``"node:index"``) that need an activation range, where a QAT graph has them:
    each float model input, then each layer's, fused composite's and requantizing op's output
    (:func:`range_groups`; the rules and why: module docstring). Scale-preserving ops (``MaxPool``,
    ``Reshape``, ``Transpose``...) get none: every converter carries their input's scale through.
    A layer, composite or op named in ``keep_float`` (any of its nodes) gets none, so converters
    keep it in float.

    Raises:
        OptionError: a ``keep_float`` name is not a layer or op that would get a range.
    """
    kept = kept_nodes(model, keep_float)
    inputs = [s.tensor for s in model.inputs if s.dtype in FLOAT_DTYPES]
    return [canonical_tensor(t) for t in inputs] + [out for group, out in range_groups(model) if not kept & set(group)]


def range_groups(model: Model, *, in_loops: bool = False) -> list[tuple[tuple[str, ...], str]]:
    """``(nodes, tensor)`` for each range of every layer, fused composite and requantizing op (with
    the Relu/Relu6 it fuses with), in graph order: a group's range is on its output (a composite's
    ``ranged`` nodes have one too, listed first). None where a TF1 while loop's values per iteration
    are not gathered unless ``in_loops`` (they stay float: :mod:`tfopt.quantizing.engine.loops`)."""
    looped = {} if in_loops else unmeasured(model.graph_def)
    users, nodes = data_consumers(model.graph_def), node_map(model.graph_def)
    outputs = {tensor_node(s.tensor) for s in model.outputs}
    groups = {layer.linear: layer.nodes for layer in layers(model)}
    taken = {n for group in groups.values() for n in group}
    ranged: dict[str, tuple[str, ...]] = {}
    for composite in composites(model)[0]:
        if not taken & set(composite.nodes):  # a layer's own tail (its Relu6) is the layer's
            groups[composite.nodes[0]] = composite.nodes
            ranged[composite.nodes[0]] = composite.ranged
            taken.update(composite.nodes)
    for node in model.graph_def.node:  # Add -> Relu: the Relu joins the Add's group, whatever the node order
        if (node.op in REQUANTIZING_OPS or (node.op == "RealDiv" and const_input(nodes, node, 1) is not None)) \
                and node.op not in FUSED_ACTIVATIONS and node.name not in taken and _dtype(node) in FLOAT_DTYPES:
            nxt = _single_user(users, node.name, outputs)
            fused = nxt is not None and nxt.op in FUSED_ACTIVATIONS and nxt.name not in taken
            groups[node.name] = (node.name, nxt.name) if fused else (node.name,)
            taken.update(groups[node.name])
    for node in model.graph_def.node:
        if node.op in FUSED_ACTIVATIONS and node.name not in taken and _dtype(node) in FLOAT_DTYPES:
            groups[node.name] = (node.name,)
        elif node.op in ("Exit", "TensorArrayReadV3") and _dtype(node) in FLOAT_DTYPES and any(
                u.op in LINEAR_OPS and tensor_node(u.input[0]) == node.name for u in users.get(node.name, [])):
            groups[node.name] = (node.name,)  # rule 5 (module docstring)
    order = {n.name: i for i, n in enumerate(model.graph_def.node)}
    return [(group, f"{node}:0") for key, group in sorted(groups.items(), key=lambda kv: order[kv[0]])
            if not looped.keys() & set(group) for node in (*ranged.get(key, ()), group[-1])]


def kept_nodes(model: Model, keep_float: Collection[str]) -> set[str]:
    """The TF node names ``keep_float`` covers: every node of a group named by any of its nodes.

    Raises:
        OptionError: a name is no node of any group.
    """
    names = set(node_map(model.graph_def))
    groups = [set(group) for group, _ in range_groups(model)]
    known = set().union(*groups)
    unknown = [k for k in keep_float if k not in known]
    if unknown:
        from tfopt.errors import did_you_mean

        what = "not a node of this graph" if unknown[0] not in names else \
            f"{unmeasured(model.graph_def)[unknown[0]]}, float already" if unknown[0] in unmeasured(model.graph_def) else \
            "a node outside any quantized layer or op"
        raise OptionError(f"--keep-float {unknown[0]}: not a quantized layer ({what}); name a TF node of the "
                          f"layer.{did_you_mean(unknown[0], sorted(known))}")
    kept = set(keep_float)
    for group in groups:
        if group & kept:
            kept |= group
    return kept


def data_consumers(graph_def: Any) -> dict[str, list[Any]]:
    """Node name -> the nodes reading it through a data (not control) input."""
    return {name: [n for n, i in uses if not is_control(n.input[i])] for name, uses in consumers(graph_def).items()}


def const_input(nodes: Mapping[str, Any], node: Any, index: int) -> Any:
    """The ``Const`` node feeding ``node``'s input ``index`` (inside a TF1 while loop: through the
    constant ``Enter`` that brings it in, and the ``Identity`` a frozen variable's read left), or None."""
    source = nodes.get(tensor_node(node.input[index])) if len(node.input) > index else None
    if source is not None and source.op == "Enter" and source.attr["is_constant"].b:
        source = nodes.get(tensor_node(source.input[0]))
        while source is not None and source.op == "Identity":
            source = nodes.get(tensor_node(source.input[0]))
    return source if source is not None and source.op == "Const" else None


# --- composite matching -----------------------------------------------------------------------------

class _Graph:
    """The lookups the composite matchers share: nodes by name, data readers, graph outputs."""

    def __init__(self, model: Model):
        self.nodes = node_map(model.graph_def)
        self.users = data_consumers(model.graph_def)
        self.outputs = {tensor_node(s.tensor) for s in model.outputs}
        self.order = {n.name: i for i, n in enumerate(model.graph_def.node)}

    def operands(self, node: Any) -> list[str]:
        """The node names of ``node``'s non-constant data inputs (every op here has one output)."""
        refs = [r for r in node.input if not is_control(r)]
        return [tensor_node(r) for r in refs if self.nodes.get(tensor_node(r)) is None
                or self.nodes[tensor_node(r)].op != "Const"]

    def gated(self, seed: Any) -> Composite | str | None:
        """``x·g(x)`` around ``seed`` (g's nonlinearity); a skip reason if it nearly is one, else None.

        From ``seed`` down through constant ops (``1 +``, ``/6``) to the gate, a ``Mul`` whose
        other operand is ``x`` (or ``x`` times a constant, as ``0.5·x``); then up from ``seed``:
        its argument must be built of ``x``, constants and ``GATES[seed.op]`` ops only."""
        kind, argument_ops = GATES[seed.op]
        chain, node = [seed.name], seed
        while True:
            readers = self.users.get(node.name, [])
            gates = [r for r in readers if r.op == "Mul" and len([o for o in self.operands(r) if o != node.name]) == 1]
            if gates:
                gate, other = gates[0], [o for o in self.operands(gates[0]) if o != node.name]
                break
            steps = [r for r in readers if r.op in CONSTANT_OPS and self.operands(r) == [node.name]]
            if len(steps) != 1:
                return None
            node = steps[0]
            chain.append(node.name)
        scaled = [other[0]]
        while (held := self.nodes.get(scaled[-1])) is not None and held.op in ("Mul", "RealDiv", "Neg") \
                and len(self.operands(held)) == 1:
            scaled.append(self.operands(held)[0])  # 0.5·x -> x
        x = scaled.pop()
        argument = self._ancestors(seed.name, x, argument_ops)
        cube = argument is not None and any(self.nodes[n].op == "Pow" or len(self.operands(self.nodes[n])) == 2
                                            for n in argument[:-1] if self.nodes[n].op in ("Pow", "Mul"))
        if argument is None or (seed.op == "Tanh" and not cube):
            return None  # (x·tanh(x) is no GELU: its argument has no x³, by Pow or x·x·x)
        nodes = [*argument[:-1], *scaled, *chain, gate.name]
        while (nxt := _single_user(self.users, nodes[-1], self.outputs)) is not None \
                and nxt.op in ("Mul", "RealDiv") and self.operands(nxt) == [nodes[-1]]:
            nodes.append(nxt.name)  # (x·relu6(x + 3))/6, (x·(1 + erf))·0.5
        return self._closed(kind, seed, x, nodes)

    def layer_norm(self, rsqrt: Any) -> Composite | str | None:
        """LayerNorm around ``rsqrt``: ``rsqrt(Mean((x − Mean(x))²) + ε)``, then the smallest region
        of ``NORM_OPS`` over ``x`` that every use of the statistics flows into (γ, β, the
        centring) and nothing else reads inside; a skip reason if there is none, else None."""
        variance = self._through_constants(rsqrt.input[0], ("Add", "AddV2"))
        if variance is None or variance.op != "Mean" or not self.operands(variance):
            return None
        square = self.nodes[self.operands(variance)[0]]
        diff = self.nodes[self.operands(square)[0]] if square.op == "Square" and self.operands(square) else square
        if diff.op not in ("SquaredDifference", "Sub") or len(self.operands(diff)) != 2:
            return None
        means = [o for o in self.operands(diff) if self.nodes[o].op == "Mean"]
        xs = [o for o in self.operands(diff) if o not in means[:1]]
        if not means or self.operands(self.nodes[means[0]]) != xs:
            return None
        x = xs[0]
        # what the statistics flow into: NORM_OPS reading them (and x, constants), up to MAX_NODES
        region, frontier = {means[0]}, [means[0]]
        while frontier and len(region) <= MAX_NODES:
            for user in self.users.get(frontier.pop(), []):
                if user.name not in region and user.op in NORM_OPS and set(self.operands(user)) <= region | {x}:
                    region.add(user.name)
                    frontier.append(user.name)
        candidates = [nodes for nodes in (self._ancestors(n, x, NORM_OPS) for n in region)
                      if nodes is not None and rsqrt.name in nodes and means[0] in nodes]
        for nodes in sorted(candidates, key=len):  # the smallest region all the statistics flow into
            if self._inside(nodes, nodes[-1]) is None:
                return self._closed("LayerNorm", rsqrt, x, nodes, ranged=(means[0],))
        return f"LayerNorm at {rsqrt.name}: no output that all of its statistics flow into"

    def _closed(self, kind: str, seed: Any, x: str, nodes: list[str], ranged: tuple[str, ...] = ()) -> Composite | str:
        """The composite, unless an inner tensor is read outside it (the reason then)."""
        leak = self._inside(nodes, nodes[-1])
        if leak is not None:
            return f"{kind} at {seed.name}: {leak}, so its ops are quantized one by one"
        inner = sorted(set(nodes) - {nodes[-1]}, key=self.order.__getitem__)
        return Composite(kind, f"{x}:0", (*inner, nodes[-1]), ranged)

    def _inside(self, nodes: Collection[str], output: str) -> str | None:
        """Why ``nodes`` is no closed region with output ``output`` (an inner tensor read outside it,
        or a graph output), or None."""
        members = set(nodes)
        for name in members - {output}:
            if name in self.outputs:
                return f"{name} is a graph output"
            readers = [u.name for u in self.users.get(name, []) if u.name not in members]
            if readers:
                return f"{name} is also read by {readers[0]}"
        return None

    def _ancestors(self, name: str, x: str, ops: Collection[str]) -> list[str] | None:
        """``name`` and the nodes it reads down to ``x`` (excluded), inputs before their readers;
        None if one of them (``name`` aside) is no ``ops`` op or there are more than ``MAX_NODES``."""
        seen: dict[str, None] = {}
        stack: list[tuple[str, bool]] = [(name, False)]
        while stack:
            n, expanded = stack.pop()
            if expanded:
                seen[n] = None
                continue
            if n == x or n in seen:
                continue
            if (n != name and self.nodes[n].op not in ops) or len(seen) + len(stack) > MAX_NODES:
                return None
            stack.append((n, True))
            stack.extend((o, False) for o in self.operands(self.nodes[n]) if o not in seen)
        return list(seen)

    def _through_constants(self, ref: str, ops: Collection[str]) -> Any:
        """The node behind ``ref``, stepping over ``ops`` with one non-constant operand."""
        node = self.nodes.get(tensor_node(ref))
        while node is not None and node.op in ops and len(self.operands(node)) == 1:
            node = self.nodes.get(self.operands(node)[0])
        return node


def _single_user(users: Mapping[str, list[Any]], name: str, outputs: Collection[str]) -> Any:
    """The one node reading ``name``, unless ``name`` is also read elsewhere or is a graph output."""
    readers = users.get(name, [])
    return readers[0] if len(readers) == 1 and name not in outputs else None


def _is_bias(nodes: Mapping[str, Any], node: Any) -> bool:
    """``BiasAdd``, or ``Add``/``AddV2`` of a constant vector (a bias that was never a BiasAdd)."""
    const = const_input(nodes, node, 1)
    return node.op == "BiasAdd" or (const is not None and len(const.attr["value"].tensor.tensor_shape.dim) <= 1)


def _channels(const: Any) -> int | None:
    """The last dimension of a ``Const`` node's value (a weight's output channels, a bias's length)."""
    dims = const.attr["value"].tensor.tensor_shape.dim if const is not None else []
    return int(dims[-1].size) if dims else None


def _dtype(node: Any) -> str:
    return dtype_name(node.attr["T"].type) if "T" in node.attr else "float32"
