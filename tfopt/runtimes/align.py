"""Map each artifact tensor back to the TF node it computes, and order the result as TensorFlow does.

One mapping for every target (``tfopt debug compare`` and the per-layer quantization ranking of
:mod:`tfopt.quantizing.native.layer_targets` both use it). An artifact is described as a list of
:class:`ArtifactTensor` (one per op output, in the artifact's own topological order); each is
aligned by the first rule that applies:

1. **anchor**: the runtime paired it with a model input or output (by name, see
   :mod:`tfopt.runtimes.base`): that spec's node.
2. **name**: the TF node names its names carry (:func:`tf_names`): TFLite's fused ``a;b;c``
   (each part a TF node), tf2onnx's ``node:0`` tensor and node names, OpenVINO's port names
   (``node:0``) and friendly names. Suffixes tfopt's int8 engine and the quantizers add are taken
   off (``X/act_quant``, ``X/float``, ``X_quantized``: values of ``X``). tf2onnx's helper nodes
   (``X__n3``: a Transpose *before* ``X``) carry no TF name. A fused tensor (``Relu;BiasAdd;
   convolution``) is the **boundary** of its group: the named node latest in TF's topological order,
   so a fused conv+bias+relu is compared with TF's relu output, never its conv output.
3. **structure** (OpenVINO drops most names when it moves transposes): an op whose data inputs are
   aligned, and which exactly one TF consumer of those nodes matches in kind (:data:`KINDS`:
   ``Convolution`` ~ ``Conv2D``, ``Add`` ~ ``BiasAdd``...), is that consumer. When none does, one
   more step is looked at, past TF adds/multiplies of a constant (a zero bias the converter
   dropped, a scale it folded into the weights).
4. **through**: a layout or quantization op (Transpose, Reshape, Convert, FakeQuantize,
   Quantize/DequantizeLinear...) with no matching consumer holds its input's value: it stays
   aligned to its input's node (the comparison undoes NCHW/NHWC layouts). A quantize op whose
   input's only TF consumer is a ReLU/clamp holds that activation's value: its ``[0, max]`` range
   clips as the ReLU did, and OpenVINO removes the ReLU it replaces.

Constants (weights, and ops computing only from constants) are not aligned. Every other tensor
that no rule aligns is reported with its reason (:attr:`Alignment.unaligned`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt.graph import is_control, node_map, tensor_node
from tfopt.graphdef.order import topological_rank

# ops through which TF passes a value unchanged (a consumer behind them consumes the value)
TF_TRANSPARENT = frozenset({"Identity", "IdentityN", "Snapshot", "StopGradient", "PreventGradient", "CheckNumerics"})
# artifact ops that only move, convert or (de)quantize a value: rule 4
THROUGH = frozenset({"transpose", "reshape", "convert", "fakequantize", "quantizelinear", "dequantizelinear",
                     "quantize", "dequantize", "squeeze", "unsqueeze", "identity", "cast"})
QUANTIZE = frozenset({"fakequantize", "quantizelinear", "quantize"})
ACTIVATIONS = frozenset({"relu", "clamp"})  # what a quantization range can stand in for
FOLDABLE = frozenset({"add", "mul", "sub", "batchnorm"})  # a converter may fold these into a conv/matmul
# op type (lower case, no underscores) -> kind shared across TF and the artifact formats
KINDS = {
    "conv2d": "conv", "conv": "conv", "convolution": "conv", "depthwiseconv2dnative": "conv",
    "groupconvolution": "conv", "depthwiseconv2d": "conv", "conv2dbackpropinput": "deconv",
    "convtranspose": "deconv", "convolutionbackpropdata": "deconv", "transposeconv": "deconv",
    "matmul": "matmul", "batchmatmulv2": "matmul", "batchmatmul": "matmul", "fullyconnected": "matmul", "gemm": "matmul",
    "biasadd": "add", "addv2": "add", "add": "add", "mul": "mul", "multiply": "mul", "sub": "sub", "subtract": "sub",
    "relu": "relu", "relu6": "clamp", "clamp": "clamp", "clip": "clamp", "maxpool": "maxpool", "maxpool2d": "maxpool",
    "avgpool": "avgpool", "averagepool": "avgpool", "averagepool2d": "avgpool", "concatv2": "concat",
    "concatenation": "concat", "concat": "concat", "mean": "mean", "reducemean": "mean", "softmax": "softmax",
    "sigmoid": "sigmoid", "logistic": "sigmoid", "tanh": "tanh", "pad": "pad", "padv2": "pad",
    "fusedbatchnormv3": "batchnorm", "batchnorminference": "batchnorm", "batchnormalization": "batchnorm",
}
_HELPER = re.compile(r"__n\d+$")  # tf2onnx's helper nodes (``X__n3``, ``X/act_quant_QuantizeLinear__n4``)
_SUFFIX = re.compile(r"(:\d+|/act_quant(_\d+)?|/float|/weights_quant|/bias_quant\d*|_quantized|_output_0)$")


@dataclass(frozen=True)
class ArtifactTensor:
    """One output of one artifact op.

    Attributes:
        key: the runtime's handle for it (a TFLite tensor index, an ONNX tensor name, an
            OpenVINO ``friendly_name:port``).
        names: every name the artifact knows it (or its op, for output 0) by.
        op: the producing op's type (``Input`` for a model input, ``Const`` for a constant).
        inputs: keys of its op's inputs (unknown keys count as constants).
        value: ``True`` when its values can be compared (floating point, or TFLite int8/int16 with a
            scale); ``False`` for shapes, indices and unscaled integers.
    """

    key: str
    names: tuple[str, ...]
    op: str
    inputs: tuple[str, ...] = ()
    value: bool = True


@dataclass(frozen=True)
class Aligned:
    """An artifact tensor and the TF node it computes."""

    key: str
    node: str
    how: str  # "anchor", "name", "structure" or "through"
    fused: tuple[str, ...] = ()  # every TF node its name covers (boundary: ``node``)


@dataclass
class Alignment:
    """The artifact's tensors against one TF graph.

    Attributes:
        tensors: ``{artifact key: Aligned}``, artifact order.
        order: TF node -> its position in TF's canonical topological order (:mod:`tfopt.graphdef.order`).
        unaligned: ``[(artifact key, first name, reason)]`` for every non-constant value tensor not aligned.
    """

    tensors: dict[str, Aligned] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    unaligned: list[tuple[str, str, str]] = field(default_factory=list)

    def by_node(self) -> dict[str, list[Aligned]]:
        """TF node -> the artifact tensors aligned to it (artifact order), nodes in TF order."""
        out: dict[str, list[Aligned]] = {}
        for item in sorted(self.tensors.values(), key=lambda a: self.order.get(a.node, -1)):
            out.setdefault(item.node, []).append(item)
        return out

    def covering(self, node: str) -> list[Aligned]:
        """The tensors aligned to ``node`` or whose names cover it (a quantizer that removed a ReLU
        after a MatMul names the MatMul's output after the ReLU), artifact order."""
        return [a for a in self.tensors.values() if a.node == node or node in a.fused]

    def node_of(self, key: str) -> str | None:
        item = self.tensors.get(key)
        return item.node if item is not None else None


def tf_names(name: str) -> list[str]:
    """The TF node names an artifact tensor or op name carries, in the order given.

    ``"a/Relu;a/BiasAdd;a/conv"`` -> all three; ``"x:0"`` -> ``x``; ``"a/Relu/act_quant"`` and
    ``"output_0/float"`` (tfopt's int8 engine) -> ``a/Relu``, ``output_0``; tf2onnx's helper
    ``"a/BiasAdd__n0"`` -> none (it is a Transpose feeding ``a/BiasAdd``, not its value)."""
    out: list[str] = []
    for part in name.split(";"):
        part = re.sub(r":\d+$", "", part.strip())
        if not part or _HELPER.search(part):
            continue
        previous = None
        while previous != part:
            previous, part = part, _SUFFIX.sub("", part)
        if part and part not in out:
            out.append(part)
    return out


def kind(op: str) -> str:
    """The shared kind of an op type of any format (:data:`KINDS`; else its own name, normalized)."""
    key = op.lower().replace("_", "")
    return KINDS.get(key, key)


def align(graph_def: Any, tensors: Sequence[ArtifactTensor], anchors: Mapping[str, str] | None = None) -> Alignment:
    """Align ``tensors`` (artifact topological order) with ``graph_def``'s nodes (rules in the module docstring).

    Args:
        graph_def: the TF graph the artifact was converted from.
        tensors: the artifact's op outputs, producers before consumers.
        anchors: artifact key -> TF node for the model's inputs and outputs, as the runtime paired them.
    """
    nodes = node_map(graph_def)
    result = Alignment(order=topological_rank(graph_def))
    consumers = _consumers(nodes)
    constant: set[str] = set()
    known = {t.key for t in tensors}
    for t in tensors:
        if anchors and t.key in anchors and anchors[t.key] in nodes:
            result.tensors[t.key] = Aligned(t.key, anchors[t.key], "anchor")
            continue
        data = [k for k in t.inputs if k in known and k not in constant]
        if t.op == "Const" or (t.op != "Input" and not data):
            constant.add(t.key)
            continue
        named = [n for raw in t.names for n in tf_names(raw) if n in nodes and nodes[n].op != "Const"]
        if named:
            boundary = max(named, key=lambda n: result.order.get(n, -1))
            result.tensors[t.key] = Aligned(t.key, boundary, "name", tuple(named))
            continue
        parents = [result.tensors[k].node for k in data if k in result.tensors]
        reason = _structure(t, parents, nodes, consumers, result)
        if reason and t.value:
            result.unaligned.append((t.key, t.names[0] if t.names else t.key, reason))
    return result


def _structure(t: ArtifactTensor, parents: list[str], nodes: Mapping[str, Any],
               consumers: Mapping[str, list[str]], result: Alignment) -> str:
    """Rules 3 and 4 for ``t``; records the alignment and returns ``""``, or returns why not."""
    if not parents:
        return f"{t.op}: no TF name and none of its inputs is aligned"
    wanted = kind(t.op)
    taken = {a.node for a in result.tensors.values() if a.how in ("name", "structure", "anchor")}
    free: list[str] = []
    for depth in (1, 2):  # depth 2: past a constant add/mul the converter folded into the op before
        found = {c for p in parents for c in _reachable(p, depth, nodes, consumers) if kind(nodes[c].op) == wanted}
        ordered = sorted(found, key=lambda n: result.order.get(n, -1))
        free = [c for c in ordered if c not in taken] or ordered
        if free:
            break
    if len(free) == 1:
        result.tensors[t.key] = Aligned(t.key, free[0], "structure", (free[0],))
        return ""
    if wanted in THROUGH:
        parent = max(parents, key=lambda n: result.order.get(n, -1))
        users = consumers.get(parent, [])
        if wanted in QUANTIZE and len(users) == 1 and kind(nodes[users[0]].op) in ACTIVATIONS:
            parent = users[0]  # a [0, max] quantization range clips as the ReLU it replaced does
        result.tensors[t.key] = Aligned(t.key, parent, "through")
        return ""
    if free:
        return f"{t.op}: ambiguous, {len(free)} TF consumers of its inputs are {wanted} ops ({', '.join(free[:3])})"
    return f"{t.op}: no TF name, and no TF consumer of {', '.join(parents[:2])} is a {wanted} op"


def _reachable(parent: str, depth: int, nodes: Mapping[str, Any], consumers: Mapping[str, list[str]]) -> list[str]:
    """``parent``'s consumers (depth 1), or the consumers of those that only add or multiply a constant (depth 2)."""
    direct = consumers.get(parent, [])
    if depth == 1:
        return direct
    out = []
    for user in direct:
        node = nodes[user]
        others = [tensor_node(r) for r in node.input if not is_control(r) and tensor_node(r) != parent]
        if kind(node.op) in FOLDABLE and others and all(nodes[o].op == "Const" for o in others if o in nodes):
            out.extend(consumers.get(user, []))
    return out


def _consumers(nodes: Mapping[str, Any]) -> dict[str, list[str]]:
    """TF node -> the nodes reading its value, looking through :data:`TF_TRANSPARENT` ops."""
    direct: dict[str, list[str]] = {}
    for node in nodes.values():
        for ref in node.input:
            if not is_control(ref):
                direct.setdefault(tensor_node(ref), []).append(node.name)
    out: dict[str, list[str]] = {}
    for name in nodes:
        seen, frontier, found = {name}, list(direct.get(name, [])), []
        while frontier:
            user = frontier.pop()
            if user in seen:
                continue
            seen.add(user)
            if nodes[user].op in TF_TRANSPARENT:
                frontier.extend(direct.get(user, []))
            else:
                found.append(user)
        out[name] = found
    return out


def boundaries(alignment: Alignment, values: Iterable[str] | None = None) -> dict[str, str]:
    """TF node -> the one artifact tensor that stands for it: the last aligned to it in artifact
    order (after a FakeQuantize or QDQ pair: the value the next layer reads), among ``values``
    (keys that hold comparable values) when given."""
    allowed = set(values) if values is not None else None
    out: dict[str, str] = {}
    for node, items in alignment.by_node().items():
        keys = [a.key for a in items if allowed is None or a.key in allowed]
        if keys:
            out[node] = keys[-1]
    return out


def onnx_tensors(proto: Any, values: Iterable[str] = ()) -> list[ArtifactTensor]:
    """An ONNX model's graph inputs and node outputs; ``values``: the tensor names holding comparable values
    (every one when empty). Output 0 also carries its node's name (stable where a quantizer renames tensors)."""
    wanted = set(values)
    out = [ArtifactTensor(i.name, (i.name,), "Input", (), not wanted or i.name in wanted) for i in proto.graph.input]
    for node in proto.graph.node:
        for port, name in enumerate(node.output):
            if name:
                out.append(ArtifactTensor(name, (name, node.name) if port == 0 else (name,), node.op_type,
                                          tuple(i for i in node.input if i), not wanted or name in wanted))
    return out


def openvino_tensors(ov_model: Any) -> list[ArtifactTensor]:
    """An ``ov.Model``'s op outputs (key ``friendly_name:port``), Results left out; port 0 also carries
    the op's friendly name."""
    keys: dict[tuple[str, int], str] = {}
    out = []
    for op in ov_model.get_ordered_ops():
        op_type = op.get_type_name()
        if op_type == "Result":
            continue
        sources = []
        for i in op.inputs():
            source = i.get_source_output()
            sources.append(keys.get((source.get_node().get_friendly_name(), source.get_index()), ""))
        for port, output in enumerate(op.outputs()):
            key = f"{op.get_friendly_name()}:{port}"
            keys[(op.get_friendly_name(), port)] = key
            names = (*sorted(output.get_names()), *((op.get_friendly_name(),) if port == 0 else ()))
            out.append(ArtifactTensor(key, names, {"Constant": "Const", "Parameter": "Input"}.get(op_type, op_type),
                                      tuple(s for s in sources if s), output.get_element_type().is_real()))
    return out
