"""Cross-layer equalization and high-bias absorption (Nagel et al. 2019, "Data-Free Quantization").

Pattern, on a frozen, BatchNorm-folded graph (channels-last)::

    layer1 -> [BiasAdd b1] -> [Relu | LeakyRelu | Relu6 | none] -> [Minimum m] -> layer2

layer1/layer2 being Conv2D, DepthwiseConv2dNative or MatMul with constant weights, and every node
between them read by the next one only. Positive homogeneity, ``f(x/s) = f(x)/s`` for ``s > 0``
(Relu, LeakyRelu, identity, ``min(·, m/s)``), gives, per channel i::

    layer2(f(layer1(x)·/s + b1/s) · s) == layer2(f(layer1(x) + b1))
    W1'[.., i] = W1[.., i] / s_i     b1'_i = b1_i / s_i     m'_i = m_i / s_i     W2'[.., i, ..] = W2[.., i, ..]·s_i

With ``r1_i = max|W1[.., i]|`` (output channel) and ``r2_i = max|W2[.., i, ..]|`` (input channel),
``s_i = √(r1_i·r2_i) / r2_i`` makes both ranges ``√(r1_i·r2_i)``: the per-tensor range of each
layer is no longer set by one large channel while the others quantize to a few levels. A chain
(conv -> depthwise -> conv) is equalized pair by pair, in graph order, repeated until no factor
moves by more than ``tolerance`` (in log) or ``iterations`` rounds have run.

ReLU6 is *not* homogeneous: ``relu6(x/s)·s = min(relu(x), 6·s)``, equal to ``relu6(x)`` only for
``s = 1``. Its exact rewrite, ``Relu6(x) -> Minimum(Relu(x), 6/s)`` with the per-channel constant
``6/s_i``, keeps the float model (AIMET instead replaces every ReLU6 by ReLU, which does not) but
costs speed in every int8 target: no converter fuses a per-channel clip into the layer, so each pair
leaves an elementwise op between two int8 layers (TFLite: a ``MINIMUM`` with its own requantization
after a ``CONV_2D`` whose fused activation drops to ``RELU``; ONNX Runtime: a float ``Min`` between a
``DequantizeLinear`` and a ``QuantizeLinear``; OpenVINO CPU: an f32 ``Eltwise`` and a ``Reorder``).
Any clip by one constant for every channel does the same (Keras ``ReLU(max_value=m)`` is
``Minimum(Relu(x), m)``: ``m`` becomes ``m/s_i``), and no per-tensor form is exact: a clip ``c``
gives ``min(relu(x/s_i), c)·s_i = min(relu(x), c·s_i)``, which is ``min(relu(x), m)`` for every
``x`` only if ``c·s_i = m`` for every channel, i.e. all ``s_i`` equal. So ``relu6="skip"`` (default)
leaves a pair with a per-tensor clip between its layers alone and reports it (the layers keep their
fused ``conv + bias + ReLU6`` kernels); ``relu6="clip"`` rewrites it anyway. Measured: skipping the
six ReLU6 pairs of ``tfopt.demos.examples``' digits MobileNet loses no accuracy (fake-quant graph, per
channel and per tensor weights: 98.3 % top-1 either way), while the clip form of MobileNetV2 ran
1.3× slower in TFLite and 2.2× in OpenVINO on a Xeon with VNNI (on an AVX2 EPYC, paired medians:
1.3-1.5× in OpenVINO, 1.6× in ONNX Runtime). Pairs joined by ``Relu``, ``LeakyRelu``, nothing or an already
per-channel ``Minimum`` are equalized as before: nothing between them changes form.

High-bias absorption (``samples`` given): the paper's data-free version needs the BatchNorm's β and
γ (``c = max(0, β − 3γ)``), gone once the BN is folded. Instead ``c_i = max(0, min pre-activation_i)``
over the calibration data (``clip(0, min, max)`` with no activation, exact for every input), and::

    f(z − c) = f(z) − c  when z ≥ c ≥ 0           b1' = b1 − c,  m' = m − c
    layer2(y − c) + Σ_i W2[.., i, ..]·c_i = layer2(y)   b2' = b2 + W2ᵀc

Exact on every input whose pre-activation stays at or above the calibration minimum (the
calibration data itself included), and only when layer2 is a matmul, a VALID conv or a 1x1 conv: a
padded conv sees the shift as zeros at the borders, so that pair is reported and left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import Model, consumers, node_map, rewrite_node, tensor_node, tensor_port, unique_name
from tfopt.graphdef.order import topological_rank
from tfopt.passes._linear import BIAS_OPS, add_bias, const_array, const_operand, set_const
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph, protected_nodes
from tfopt.quantizing.engine._channels import (
    LAYER_OPS,
    Layer,
    Samples,
    as_layer,
    channel_max,
    channel_stats,
    constant_input_response,
    data_consumers,
    out_channels,
    sample_batches,
    scale_axes,
)

HOMOGENEOUS = frozenset({"Relu", "LeakyRelu"})  # f(x/s) = f(x)/s for every s > 0
# A per-tensor clip between a pair: equalizing it exactly makes it per-channel (module doc).
_CLIP_SKIP = ("{} between them clips every channel at {}: equalizing would make the clip per-channel ({}), "
              "an elementwise op between two int8 layers that breaks the runtimes' conv+activation fusion "
              "(relu6='clip' equalizes it anyway)")
NOT_HOMOGENEOUS = frozenset({"Sigmoid", "Tanh", "Elu", "Selu", "Softplus", "Softsign", "Exp", "Gelu"})


@dataclass
class EqualizedPair:
    """One equalized pair. ``spread`` = max/min of layer1's per-output-channel weight ranges."""

    layer1: str
    layer2: str
    activation: str
    spread_before: float
    spread_after: float
    absorbed: float = 0.0  # max_i c_i moved from layer1's bias into layer2's

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class EqualizeReport:
    pairs: list[EqualizedPair] = field(default_factory=list)
    rounds: int = 0
    skips: list[Skip] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"pairs": [p.as_dict() for p in self.pairs], "rounds": self.rounds,
                "skips": [str(s) for s in self.skips]}


@dataclass
class _Pair:
    layer1: Layer
    layer2: Layer
    act: Any | None
    clip: Any | None  # Minimum node
    clip_const: Any | None
    scale: np.ndarray


def equalize(model: Model, iterations: int = 20, *, relu6: Literal["clip", "skip"] = "skip",
             samples: Samples | None = None, tolerance: float = 1e-3,
             new_biases: bool = True) -> tuple[Model, EqualizeReport]:
    """Cross-layer equalization (and, given ``samples``, high-bias absorption); see the module doc.

    Args:
        model: a frozen, BatchNorm-folded model; never modified.
        iterations: at most this many rounds over all pairs.
        relu6: a per-tensor clip between a pair (``Relu6``, or a ``Minimum`` by one constant):
            ``"skip"`` leaves the pair alone and reports it (the layers keep their fused
            activation); ``"clip"`` equalizes it, ``Relu6`` rewritten as ``Minimum(Relu, 6/s)``
            (exact in float, but a per-channel elementwise op that no int8 runtime fuses).
        samples: calibration data (``{input: array}`` or a list of such dicts) for absorption;
            ``None`` skips it.
        tolerance: converged when no factor changes by more than ``exp(tolerance)`` in a round.
        new_biases: False: no absorption gives a layer a bias it has not (layer1's zero bias,
            layer2's zero or absent one): the pair is reported and left alone (the engine's
            ``no_new_bias``, :class:`tfopt.quantizing.engine.quantize.Recipe`).

    Returns:
        ``(model, report)``; the input model itself when nothing changed.

    Raises:
        OptionError: a bad ``iterations`` or ``relu6``, or samples missing a model input.
    """
    if relu6 not in ("clip", "skip"):
        raise OptionError(f"equalize: relu6 must be 'clip' or 'skip', not {relu6!r}")
    if iterations < 1:
        raise OptionError(f"equalize: iterations must be at least 1, not {iterations}")
    graph_def = copy_graph(model.graph_def)
    nodes, users, protected = node_map(graph_def), consumers(graph_def), protected_nodes(model)
    report = EqualizeReport()
    pairs: list[_Pair] = []
    rank = topological_rank(graph_def)
    for node in sorted((n for n in graph_def.node if n.op in LAYER_OPS), key=lambda n: rank[n.name]):
        found = _match(nodes, users, protected, node, relu6)
        if isinstance(found, Skip):
            report.skips.append(found)
        elif found is not None:
            pairs.append(found)
    weights = {p.op.name: const_array(p.weights).astype(np.float64) for pr in pairs for p in (pr.layer1, pr.layer2)}
    before = [_spread(channel_max(weights[p.layer1.op.name], p.layer1.out_axes)) for p in pairs]
    report.rounds, moved = _iterate(pairs, weights, iterations, tolerance)
    for pair, spread in zip(pairs, before):
        if moved:
            _write(graph_def, pair, weights)
        after = _spread(channel_max(weights[pair.layer1.op.name], pair.layer1.out_axes))
        report.pairs.append(EqualizedPair(pair.layer1.op.name, pair.layer2.op.name, _act_name(pair), spread, after))
    absorbed = samples is not None and _absorb(model.replace(graph_def=graph_def), pairs, report, samples, tolerance,
                                               new_biases)
    return (model.replace(graph_def=graph_def) if moved or absorbed else model), report


class Equalize(Pass):
    """cross-layer equalization of conv/matmul pairs (int8 engine; not in the default pipeline)."""

    name = "equalize"

    def __init__(self, iterations: int = 20, *, relu6: Literal["clip", "skip"] = "skip",
                 samples: Samples | None = None) -> None:
        self.iterations, self.relu6, self.samples = iterations, relu6, samples

    def run(self, model: Model) -> PassResult:
        result, report = equalize(model, self.iterations, relu6=self.relu6, samples=self.samples)
        return PassResult(result, result is not model, report.skips)


def _producer(nodes: Mapping[str, Any], ref: str) -> Any | None:
    return nodes.get(tensor_node(ref)) if tensor_port(ref) == 0 else None


def _match(nodes: dict[str, Any], users: dict[str, Any], protected: set[str], layer2: Any,
           relu6: str) -> _Pair | Skip | None:
    """The pair ending at ``layer2``; a Skip when it is one but cannot be equalized; None when
    ``layer2``'s input is not a layer1 -> [bias] -> [activation] -> [Minimum] chain at all."""
    node = _producer(nodes, layer2.input[0])
    act: Any = None
    clip: Any = None
    clip_const: Any = None
    bias_add: Any = None
    if node is not None and node.op == "Minimum":
        operand = const_operand(nodes, node)
        if operand is None:
            return None
        clip, (clip_const, ref) = node, operand
        node = _producer(nodes, ref)
    if node is not None and node.op in HOMOGENEOUS | NOT_HOMOGENEOUS | {"Relu6"}:
        act, node = node, _producer(nodes, node.input[0])
    if node is not None and node.op in BIAS_OPS:
        operand = const_operand(nodes, node, second_only=node.op == "BiasAdd")
        if operand is None:
            return None
        bias_add, node = node, _producer(nodes, operand[1])
    if node is None or node.op not in LAYER_OPS:
        return None

    def skip(reason: str) -> Skip:
        return Skip(node.name, f"not equalized with '{layer2.name}': {reason}")

    if act is not None and act.op in NOT_HOMOGENEOUS:
        return skip(f"{act.op} '{act.name}' between them is not positive-homogeneous (f(x/s)·s ≠ f(x))")
    if act is not None and act.op == "Relu6" and relu6 == "skip":
        return skip(_CLIP_SKIP.format(f"Relu6 '{act.name}'", 6, "min(relu(x), 6/s_i)"))
    for n in (node, bias_add, act, clip):
        if n is None:
            continue
        if n.name in protected:
            return skip(f"'{n.name}' is a model output; scaling its channels would change it")
        readers = data_consumers(users, n.name)
        if len(readers) != 1:
            return skip(f"'{n.name}' feeds {len(readers)} consumers; scaling its channels would change what "
                        "the others read")
    layer1, second = as_layer(nodes, users, node), as_layer(nodes, users, layer2)
    if isinstance(layer1, str):
        return skip(layer1)
    if isinstance(second, str):
        return skip(second)
    channels = out_channels(layer1)
    in_channels = [d.size for d in second.weights.attr["value"].tensor.tensor_shape.dim][second.in_axis]
    if bias_add is not None and (layer1.bias_add is None or layer1.bias_add.name != bias_add.name):
        return skip(f"'{bias_add.name}' does not add an unshared per-channel constant")
    if in_channels != channels:
        return skip(f"{channels} output channels feed {in_channels} input channels")
    if clip_const is not None:
        size = const_array(clip_const).size
        if size not in (1, channels) or len(users.get(clip_const.name, [])) > 1:
            return skip(f"Minimum '{clip.name}' does not clip with an unshared scalar or per-channel constant")
        bound = const_array(clip_const).reshape(-1)
        if relu6 == "skip" and np.all(bound == bound[0]):
            return skip(_CLIP_SKIP.format(f"Minimum '{clip.name}'", f"{float(bound[0]):g}",
                                          f"min(x, {float(bound[0]):g}/s_i)"))
    return _Pair(layer1, second, act, clip, clip_const, np.ones(channels))


def _iterate(pairs: list[_Pair], weights: dict[str, np.ndarray], iterations: int,
             tolerance: float) -> tuple[int, bool]:
    """Equalize every pair in order, ``iterations`` times at most; returns (rounds, anything moved)."""
    moved = False
    for round_ in range(1, iterations + 1):
        worst = 0.0
        for pair in pairs:
            w1, w2 = weights[pair.layer1.op.name], weights[pair.layer2.op.name]
            r1, r2 = channel_max(w1, pair.layer1.out_axes), channel_max(w2, (pair.layer2.in_axis,))
            live = (r1 > 0) & (r2 > 0)  # a dead channel has no range to balance: leave it
            s = np.where(live, np.sqrt(np.where(live, r1 / np.where(live, r2, 1), 1)), 1.0)
            weights[pair.layer1.op.name] = scale_axes(w1, pair.layer1.out_axes, 1 / s)
            weights[pair.layer2.op.name] = scale_axes(weights[pair.layer2.op.name], (pair.layer2.in_axis,), s)
            pair.scale = pair.scale * s
            worst = max(worst, float(np.abs(np.log(s)).max(initial=0.0)))
        if worst < tolerance:
            return round_, moved
        moved = True
    return iterations, moved


def _write(graph_def: Any, pair: _Pair, weights: dict[str, np.ndarray]) -> None:
    """Write the pair's weights, layer1's bias / 1/s, and the clip / 1/s (Relu6 -> Minimum(Relu))."""
    for layer in (pair.layer1, pair.layer2):
        set_const(layer.weights, weights[layer.op.name].astype(const_array(layer.weights).dtype))
    s = pair.scale
    if pair.layer1.bias is not None:
        b = const_array(pair.layer1.bias)
        set_const(pair.layer1.bias, (b.astype(np.float64).reshape(-1) / s).astype(b.dtype).reshape(b.shape))
    if pair.act is not None and pair.act.op == "Relu6":
        # relu6(x)/s = min(relu(x/s), 6/s): the Relu6 keeps its name as the Minimum its reader reads.
        from tfopt._tf import make_const

        act, dtype = pair.act, pair.act.attr["T"].type
        relu = graph_def.node.add(name=unique_name(graph_def, f"{act.name}/relu"), op="Relu", input=[act.input[0]])
        relu.attr["T"].type = dtype
        graph_def.node.append(make_const(unique_name(graph_def, f"{act.name}/clip"), np.full_like(s, 6.0), dtype=dtype))
        pair.clip_const = graph_def.node[-1]
        rewrite_node(act, "Minimum", inputs=[relu.name, pair.clip_const.name, *act.input[1:]], types={"T": dtype})
        pair.act, pair.clip = relu, act
    if pair.clip_const is not None:
        m = const_array(pair.clip_const)
        per_channel = np.broadcast_to(m.astype(np.float64).reshape(-1), s.shape)
        set_const(pair.clip_const, (per_channel / s).astype(m.dtype))


def _absorb(model: Model, pairs: list[_Pair], report: EqualizeReport, samples: Samples, tolerance: float,
            new_biases: bool = True) -> bool:
    """High-bias absorption (module doc), in place on ``model``'s graph (a private copy):
    b1 −= c, m −= c, b2 += W2ᵀc. Returns whether any bias moved."""
    graph_def = model.graph_def
    candidates = []
    for pair, row in zip(pairs, report.pairs):
        bias_add = pair.layer1.bias_add
        reason = (f"'{pair.layer1.op.name}' has no bias to absorb" if bias_add is None
                  else _absorb_problem(pair) or (None if new_biases else _new_bias_problem(pair)))
        if bias_add is not None and not reason:
            candidates.append((pair, row, f"{bias_add.name}:0"))
        else:
            report.skips.append(Skip(pair.layer1.op.name, f"bias not absorbed into '{pair.layer2.op.name}': {reason}"))
    if not candidates:
        return False
    stats = channel_stats(model, [pre for _, _, pre in candidates], sample_batches(samples, model.inputs))
    changed = False
    for pair, row, pre in candidates:
        _, lo, hi = stats[pre]
        c = np.maximum(lo, 0.0) if pair.act is not None else np.clip(0.0, lo, hi)
        c = np.where(np.abs(c) > tolerance * np.maximum(hi - lo, 1e-12), c, 0.0)
        if not c.any():
            continue
        add_bias(graph_def, pair.layer1, -c)
        if pair.clip_const is not None:
            m = const_array(pair.clip_const)
            per_channel = np.broadcast_to(m.astype(np.float64).reshape(-1), c.shape)
            set_const(pair.clip_const, (per_channel - c).astype(m.dtype))
        w2 = const_array(pair.layer2.weights).astype(np.float64)
        nodes, users = node_map(graph_def), consumers(graph_def)
        refreshed = as_layer(nodes, users, nodes[pair.layer2.op.name])
        add_bias(graph_def, refreshed if isinstance(refreshed, Layer) else pair.layer2,
                 constant_input_response(pair.layer2, w2, c))
        row.absorbed = float(np.abs(c).max())
        changed = True
    return changed


def _new_bias_problem(pair: _Pair) -> str | None:
    for layer in (pair.layer1, pair.layer2):
        if layer.bias is None or not np.any(const_array(layer.bias)):
            return f"'{layer.op.name}' has no bias and would get one (no_new_bias)"
    return None


def _absorb_problem(pair: _Pair) -> str | None:
    if pair.act is not None and pair.act.op not in HOMOGENEOUS:
        return f"{pair.act.op} '{pair.act.name}' is not Relu/LeakyRelu"
    op = pair.layer2.op
    if op.op == "MatMul":
        return None
    padding = op.attr["padding"].s.decode()
    shape = [d.size for d in pair.layer2.weights.attr["value"].tensor.tensor_shape.dim]
    explicit = list(op.attr["explicit_paddings"].list.i) if "explicit_paddings" in op.attr else []
    if padding == "VALID" or (shape[:2] == [1, 1] and not any(explicit)):
        return None
    return (f"its {shape[0]}x{shape[1]} {padding} zero padding would see the shift as zeros at the borders "
            "(a conv of a constant is not constant there)")


def _spread(ranges: np.ndarray) -> float:
    live = ranges[ranges > 0]
    return float(live.max() / live.min()) if live.size else 1.0


def _act_name(pair: _Pair) -> str:
    if pair.clip is not None and pair.act is not None:
        return f"{pair.act.op}+Minimum"
    return pair.act.op if pair.act is not None else ("Minimum" if pair.clip is not None else "none")
