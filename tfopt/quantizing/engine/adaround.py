"""AdaRound: learn whether each weight rounds up or down (Nagel et al. 2020, "Up or Down? Adaptive
Rounding for Post-Training Quantization"), for every Conv2D / DepthwiseConv2dNative / MatMul whose
kernel is a float32 Const (possibly read through Identity).

Weight grid: the engine's (:mod:`tfopt.quantizing.engine.weight_grid`; ``qmax = L = 2**(bits-1) - 1``,
127 for int8; ``s`` per output channel of a Conv2D / depthwise layer, or per tensor)::

    s = max(max|W|, MIN_AMAX) / qmax
    W_q = s · clip(⌊W/s⌋ + r, -qmax, qmax),   r ∈ {0, 1}

the grid the engine's fake quants store: fake-quantizing ``W_q`` again is the identity. An element
with ``|w| = max|W|`` is pinned to ±qmax, so ``max|W_q| = max|W|`` and the scale does not move (a
channel below ``MIN_AMAX`` has no pinned element and keeps the step ``MIN_AMAX / qmax``).
Round-to-nearest is ``r = [W/s - ⌊W/s⌋ ≥ ½]``; AdaRound learns ``r`` instead, relaxed as the
rectified sigmoid ``h(V) = clip(σ(V)·(ζ-γ) + γ, 0, 1)``, ζ = 1.1, γ = -0.1, minimising per layer::

    ‖W x - W̃(V) x̂‖²  +  λ · Σ (1 - |2h(V) - 1|^β),      W̃(V) = s · clip(⌊W/s⌋ + h(V), -qmax, qmax)

The first term is the layer's output error (before bias and activation), summed over channels and
averaged over output positions; the second pushes every ``h`` to 0 or 1. ``V`` starts where
``h(V) = W/s - ⌊W/s⌋`` (the soft weights equal the float weights); λ = 0 for the first 20 % of the
iterations (warm start), then λ = 0.01 with β annealed by a cosine from 20 to 2. Adam, lr 1e-3,
mini-batches of 32 activation items. The result is the hard rounding ``r = [h(V) ≥ ½]``.

Sequential (the paper's asymmetric reconstruction): in graph order, ``x̂`` is the layer's input
with the layers before it already AdaRounded, the target ``W x`` comes from the float graph, so each
layer also corrects what its predecessors left. Activations stay float. A bounded random subset of
input items is kept per layer (``max_values`` floats: whole images for a conv, rows for a MatMul).

A layer whose hard rounding does not beat round-to-nearest on those items gets round-to-nearest.
A ``time_budget`` gives each layer an equal share of what is left; a layer stopped early keeps what
it learned, one that got no iteration keeps its float weights (the fake-quant step rounds them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tfopt._tf import const_value, tf
from tfopt.errors import OptionError, did_you_mean
from tfopt.graph import (
    DT_FLOAT,
    Model,
    TensorSpec,
    attr_bytes,
    canonical_tensor,
    consumers,
    control_inputs,
    dtype_name,
    node_map,
    tensor_node,
    tensor_port,
)
from tfopt.passes.base import Skip
from tfopt.quantizing.engine.weight_grid import levels, weight_grid
from tfopt.terminal.progress import Step

log = logging.getLogger(__name__)

ZETA, GAMMA = 1.1, -0.1  # stretch of the rectified sigmoid, so h reaches 0 and 1 at finite V
_CHUNK = 25  # optimisation steps per compiled call; the time budget is checked between calls
# The ops AdaRounded, and the attributes each is called with (the graph node's own values).
_OP_ATTRS = {"Conv2D": ("strides", "padding", "explicit_paddings", "data_format", "dilations"),
             "DepthwiseConv2dNative": ("strides", "padding", "explicit_paddings", "data_format", "dilations"),
             "MatMul": ("transpose_a", "transpose_b")}


@dataclass(frozen=True)
class AdaRoundHyper:
    """The optimisation's hyperparameters (the paper's and AIMET's defaults).

    Attributes:
        reg_param: λ, the weight of the rounding regulariser.
        beta: β at the start and the end of the annealing.
        warm_start: fraction of the iterations run with λ = 0.
        learning_rate: Adam's step size on V (fewer iterations need a larger one: 1e-2 for 200).
        batch_size: activation items (images, or rows for a MatMul) per iteration.
        max_values: floats of layer input (and of output) kept per layer.
    """

    reg_param: float = 0.01
    beta: tuple[float, float] = (20.0, 2.0)
    warm_start: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_values: int = 1 << 22


@dataclass
class LayerRounding:
    """One layer's outcome.

    Attributes:
        layer: the Conv2D/DepthwiseConv2dNative/MatMul node; ``weights``: its Const.
        status: ``"adaround"`` (learned rounding written), ``"nearest"`` (it did not beat
            round-to-nearest, which was written instead) or ``"float"`` (not done: weights unchanged).
        iterations / planned: optimisation steps run / asked for.
        error_nearest / error_adaround: mean squared output error of each rounding on the layer's
            collected activations (``None`` when not measured).
    """

    layer: str
    op: str
    weights: str
    status: str = "float"
    iterations: int = 0
    planned: int = 0
    seconds: float = 0.0
    error_nearest: float | None = None
    error_adaround: float | None = None
    reason: str = ""


@dataclass
class AdaRoundReport:
    """What :func:`adaround` did: every candidate layer, and every op it declined (with the reason)."""

    bits: int
    per_channel: bool
    layers: list[LayerRounding] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> list[str]:
        return [r.layer for r in self.layers if r.status != "float"]

    @property
    def kept_float(self) -> list[str]:
        return [r.layer for r in self.layers if r.status == "float"]


class _Layer(NamedTuple):
    node: Any  # the Conv2D / DepthwiseConv2dNative / MatMul
    const: Any  # its weights


def find_layers(graph_def: Any) -> tuple[list[_Layer], list[Skip]]:
    """The AdaRound candidates in graph order, and the ops declined with their reason."""
    nodes, users = node_map(graph_def), consumers(graph_def)
    found, skips = [], []
    for node in graph_def.node:
        const, reason = _weight_const(nodes, users, node) if node.op in _OP_ATTRS else (None, "")
        if const is not None:
            found.append(_Layer(node, const))
        elif reason:
            skips.append(Skip(node.name, f"not AdaRounded: {reason}"))
    return found, skips


def _weight_const(nodes: dict[str, Any], users: dict[str, list[Any]], node: Any) -> tuple[Any, str]:
    if attr_bytes(node, "data_format", b"NHWC") != b"NHWC":
        return None, f"data_format {attr_bytes(node, 'data_format').decode()}; only NHWC is handled"
    if node.op == "MatMul" and node.attr["transpose_a"].b:
        return None, "MatMul with transpose_a (input rows are not on axis 0)"
    ref, producer = node.input[1], nodes.get(tensor_node(node.input[1]))
    while producer is not None and producer.op == "Identity" and not control_inputs(producer):
        if len(users[producer.name]) > 1:
            return None, f"weights read through '{producer.name}' are shared by {len(users[producer.name])} consumers"
        ref, producer = producer.input[0], nodes.get(tensor_node(producer.input[0]))
    if producer is None or producer.op != "Const" or tensor_port(ref) or control_inputs(producer):
        return None, f"weights are not constant ({producer.op if producer is not None else 'missing'})"
    if len(users[producer.name]) > 1:
        return None, f"weights '{producer.name}' are shared by {len(users[producer.name])} consumers"
    if producer.attr["dtype"].type != DT_FLOAT:
        return None, f"weights are {dtype_name(producer.attr['dtype'].type)}; only float32 is AdaRounded"
    return producer, ""


def adaround(model: Model, samples: Mapping[str, np.ndarray], *, per_channel: bool = True, bits: int = 8,
             iterations: int = 1000, time_budget: float | None = None, layers: Collection[str] | None = None,
             seed: int = 0, progress: Callable[[Any], None] | None = None,
             hyper: AdaRoundHyper | None = None) -> tuple[Model, AdaRoundReport]:
    """AdaRound the weights of a frozen model (see the module docstring for the method), layer by
    layer in graph order, each on inputs read with the layers before it already AdaRounded.

    Args:
        model: a frozen model; it is not modified.
        samples: calibration inputs, input name -> array with the samples on the input's batch axis
            (:func:`tfopt.verification.data_batches.sample_axes`: axis 0, a time-major ``[time, batch, n]``'s 1).
        per_channel: one scale per output channel of a conv/depthwise layer (MatMul weights are
            per tensor, as the engine's fake quants: ``weight_grid.PER_CHANNEL_OPS``); else one per tensor.
        bits: weight bits (symmetric narrow range: ±(2**(bits-1) - 1)).
        iterations: optimisation steps per layer.
        time_budget: seconds for the whole run, shared equally by the layers still to do.
        layers: op or weight-Const names to AdaRound (default: every candidate).
        seed: for the activation subsample and the mini-batches.
        progress: called with a :class:`~tfopt.terminal.progress.Step` per layer.
        hyper: :class:`AdaRoundHyper` (defaults when ``None``).

    Returns:
        The model with AdaRounded weight Consts, and an :class:`AdaRoundReport`.

    Raises:
        OptionError: bad ``bits``/``iterations``/``time_budget``, samples missing an input or of
            unequal counts, or a name in ``layers`` that is not a candidate.
    """
    start = time.monotonic()
    hyper = hyper or AdaRoundHyper()
    for bad, what in ((not 2 <= bits <= 8, f"bits={bits}: use 2..8"),
                      (iterations < 1, f"iterations={iterations}: use at least 1"),
                      (time_budget is not None and time_budget < 0, f"time_budget={time_budget}: use seconds >= 0")):
        if bad:
            raise OptionError(f"adaround {what}")
    samples, axes = _check_samples(model, samples)
    found, skips = find_layers(model.graph_def)
    if layers is not None:
        found = _select(found, skips, layers)
    report = AdaRoundReport(bits=bits, per_channel=per_channel, skips=skips)
    rng = np.random.default_rng(seed)
    rounded: dict[str, np.ndarray] = {}  # weight Const name -> rounded weights, fed to later layers' runs
    for i, layer in enumerate(found):
        if progress is not None:
            progress(Step("AdaRound", i + 1, len(found)))
        row = LayerRounding(layer.node.name, layer.node.op, layer.const.name, planned=iterations)
        report.layers.append(row)
        left = float("inf") if time_budget is None else time_budget - (time.monotonic() - start)
        if left <= 0:
            row.reason = "time budget used up before this layer"
            continue
        deadline = time.monotonic() + left / (len(found) - i)  # an equal share of what is left
        began = time.monotonic()
        x, y = _collect(model, layer, samples, axes, rounded, rng, hyper.max_values)
        w = _round_layer(layer, x, y, row, per_channel=per_channel, bits=bits, hyper=hyper, rng=rng,
                         deadline=deadline)
        row.seconds = time.monotonic() - began
        if w is not None:
            rounded[layer.const.name] = w
        log.info("AdaRound %s: %s after %d/%d iterations (error %s vs nearest %s)", row.layer, row.status,
                 row.iterations, row.planned, row.error_adaround, row.error_nearest)
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    for node in graph_def.node:
        if node.name in rounded:
            node.attr["value"].tensor.CopyFrom(tf().make_tensor_proto(rounded[node.name]))
    report.seconds = time.monotonic() - start
    return model.replace(graph_def=graph_def), report


def _check_samples(model: Model, samples: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The samples as arrays, and each input's batch axis (the one rule of given data:
    :func:`tfopt.verification.data_batches.sample_axes`)."""
    from tfopt.verification.data_batches import sample_axes

    names = [s.name for s in model.inputs]
    unknown, missing = [k for k in samples if k not in names], [n for n in names if n not in samples]
    if unknown or missing:
        hint = did_you_mean(unknown[0], names) if unknown else ""
        raise OptionError(f"adaround samples: give every model input ({', '.join(names)}); "
                          f"unknown {unknown}, missing {missing}.{hint}")
    arrays = {k: np.asarray(v) for k, v in samples.items()}
    if any(v.ndim == 0 for v in arrays.values()):
        raise OptionError("adaround samples: every input needs the same, non-zero number of samples on its batch axis")
    axes = {k: int(a or 0) for k, a in sample_axes(arrays, model.inputs).items()}
    if len({v.shape[axes[k]] for k, v in arrays.items()}) != 1 or any(not v.shape[axes[k]] for k, v in arrays.items()):
        raise OptionError("adaround samples: every input needs the same, non-zero number of samples on its batch axis")
    return arrays, axes


def _select(found: list[_Layer], skips: list[Skip], names: Collection[str]) -> list[_Layer]:
    known = {n: layer for layer in found for n in (layer.node.name, layer.const.name)}
    declined = {s.node: s.reason for s in skips}
    for name in names:
        if name not in known:
            why = f" ({declined[name]})" if name in declined else did_you_mean(name, known)
            raise OptionError(f"adaround layers: '{name}' is not a Conv2D/DepthwiseConv2dNative/MatMul with "
                              f"constant float32 weights{why}")
    wanted = {known[n].node.name for n in names}
    return [layer for layer in found if layer.node.name in wanted]


def _collect(model: Model, layer: _Layer, samples: dict[str, np.ndarray], axes: Mapping[str, int],
             rounded: dict[str, np.ndarray], rng: np.random.Generator, max_values: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x̂, W x)``: the layer's input with ``rounded`` weights fed in, and the float graph's
    output, on a random subset of the samples (taken on each input's batch axis ``axes``) holding at
    most about ``max_values`` floats each."""
    from tfopt.runtimes.tensorflow import GraphRunner

    x_ref, y_ref = canonical_tensor(layer.node.input[0]), f"{layer.node.name}:0"
    runner = GraphRunner(model.replace(outputs=[TensorSpec("x", x_ref, "float32", None),
                                                TensorSpec("y", y_ref, "float32", None)]))
    feeds = {f"{name}:0": value for name, value in rounded.items()}
    fixed = [int(d) for s in model.inputs if s.shape and len(s.shape) > axes[s.name]
             for d in [s.shape[axes[s.name]]] if d is not None]
    chunk, count = fixed[0] if fixed else 16, next(v.shape[axes[k]] for k, v in samples.items())
    if count < chunk and fixed:  # a fixed batch dimension is fed whole; a partial chunk is dropped
        raise OptionError(f"adaround samples: {count} sample(s), but the model's batch dimension is fixed at {chunk}")
    order, xs, ys, size = rng.permutation(count), [], [], 0
    try:
        for begin in range(0, count - chunk + 1 if fixed else count, chunk):
            feed = {k: np.take(v, order[begin:begin + chunk], axis=axes[k]) for k, v in samples.items()}
            out = runner(feed)
            xs.append(runner({**feed, **feeds})["x"] if feeds else out["x"])
            ys.append(out["y"])
            size += max(xs[-1].size, ys[-1].size)
            if size >= max_values:
                break
    finally:
        runner.close()
    keep = max(1, max_values // max(1, xs[0][0].size, ys[0][0].size))  # samples were taken in random order
    return np.concatenate(xs)[:keep].astype(np.float32), np.concatenate(ys)[:keep].astype(np.float32)


def _round_layer(layer: _Layer, x: np.ndarray, y: np.ndarray, row: LayerRounding, *, per_channel: bool, bits: int,
                 hyper: AdaRoundHyper, rng: np.random.Generator, deadline: float) -> np.ndarray | None:
    """Learn ``V`` for one layer; return the weights to write (``None``: keep float) and fill ``row``."""
    t, node = tf(), layer.node
    w = const_value(layer.const).astype(np.float32)
    qmax = levels(bits)
    layer_grid = weight_grid(w, node.op, per_channel=per_channel, levels=qmax)
    scale = layer_grid.scale.astype(np.float32)
    pinned = np.abs(w) == layer_grid.amax  # keeps its exact value, so max|W_q| = max|W|
    ratio = np.where(pinned, np.sign(w) * qmax, w / scale)
    base = np.floor(ratio)
    rest = np.where(pinned, 0.0, ratio - base)
    free = (~pinned).astype(np.float32)

    def grid(r: np.ndarray) -> np.ndarray:
        return np.where(pinned, w, scale * np.clip(base + free * r, -qmax, qmax)).astype(np.float32)

    nearest = grid((rest >= 0.5).astype(np.float32))
    # V0 solves h(V0) = rest, so the soft weights start equal to W (rest in [0, 1) keeps it finite).
    v = t.Variable(-np.log((ZETA - GAMMA) / (rest - GAMMA) - 1).astype(np.float32))
    apply_op = _op(node)
    train = _trainer(t, apply_op, v, base.astype(np.float32), scale, free, qmax, hyper.learning_rate)
    xt, yt = t.constant(x), t.constant(y)
    n, batch = len(x), min(hyper.batch_size, len(x))
    warm, steps = int(hyper.warm_start * row.planned), np.arange(row.planned)
    # λ = 0 while warming up, then β follows a cosine from its start to its end value.
    rel = np.clip((steps - warm) / max(1, row.planned - warm), 0, 1)
    betas = hyper.beta[1] + 0.5 * (hyper.beta[0] - hyper.beta[1]) * (1 + np.cos(np.pi * rel))
    lams = np.where(steps < warm, 0.0, hyper.reg_param)
    while row.iterations < row.planned:
        if time.monotonic() >= deadline:
            row.reason = f"time budget: stopped after {row.iterations} of {row.planned} iterations"
            break
        chunk = steps[row.iterations:row.iterations + _CHUNK]
        idx = np.stack([rng.choice(n, batch, replace=False) if n > batch else np.arange(n) for _ in chunk])
        train(xt, yt, t.constant(idx), t.constant(betas[chunk], t.float32), t.constant(lams[chunk], t.float32))
        row.iterations += len(chunk)
    if row.iterations == 0:
        row.reason = row.reason or "no iteration fit in this layer's share of the time budget"
        return None
    h = np.clip(1 / (1 + np.exp(-v.numpy())) * (ZETA - GAMMA) + GAMMA, 0, 1)
    learned = grid((h >= 0.5).astype(np.float32))
    # Measured on every collected item at once: the output is no larger than y (max_values floats).
    row.error_nearest, row.error_adaround = (float(t.reduce_mean(t.square(apply_op(xt, q) - yt)))
                                             for q in (nearest, learned))
    if row.error_adaround <= row.error_nearest:
        row.status = "adaround"
        return learned
    row.status = "nearest"
    row.reason = (row.reason + "; " if row.reason else "") + "learned rounding did not beat round-to-nearest"
    return nearest


def _op(node: Any) -> Callable[[Any, Any], Any]:
    """``(x, w) -> op(x, w)``: the node's own op with its own attributes."""
    def value(a: Any) -> Any:
        kind = a.WhichOneof("value")
        return list(a.list.i) if kind == "list" else a.s.decode() if kind == "s" else getattr(a, kind)

    attrs = {key: value(node.attr[key]) for key in _OP_ATTRS[node.op] if key in node.attr}
    fn = getattr(tf().raw_ops, node.op)
    if node.op == "MatMul":
        return lambda x, w: fn(a=x, b=w, **attrs)
    return lambda x, w: fn(input=x, filter=w, **attrs)


def _trainer(t: Any, apply_op: Callable[[Any, Any], Any], v: Any, base: np.ndarray, scale: np.ndarray,
             free: np.ndarray, qmax: int, lr: float) -> Callable[..., Any]:
    """Adam steps on ``recon + λ·reg`` (see the module docstring), one per row of ``idx``; compiled once
    per layer, so Python is not paid per step."""
    m, s, step = t.Variable(t.zeros_like(v)), t.Variable(t.zeros_like(v)), t.Variable(0.0)
    b1, b2, eps = 0.9, 0.999, 1e-8

    @t.function(reduce_retracing=True)
    def train(x: Any, y: Any, idx: Any, betas: Any, lams: Any) -> None:
        for k in t.range(t.shape(idx)[0]):
            xb, yb = t.gather(x, idx[k]), t.gather(y, idx[k])
            with t.GradientTape() as tape:
                h = t.clip_by_value(t.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
                w = scale * t.clip_by_value(base + free * h, -qmax, qmax)
                recon = t.reduce_mean(t.reduce_sum(t.square(apply_op(xb, w) - yb), axis=-1))
                reg = t.reduce_sum(free * (1.0 - t.pow(t.abs(2.0 * h - 1.0), betas[k])))
                loss = recon + lams[k] * reg
            g = tape.gradient(loss, v)
            step.assign_add(1.0)
            m.assign(b1 * m + (1 - b1) * g)
            s.assign(b2 * s + (1 - b2) * t.square(g))
            v.assign_sub(lr * (m / (1 - b1 ** step)) / (t.sqrt(s / (1 - b2 ** step)) + eps))

    return train

