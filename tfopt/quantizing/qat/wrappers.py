"""TFMOT's quantize wrappers with the int8 engine's activation ranges instead of TFMOT's defaults.

``quantize_annotate_model`` + ``quantize_apply`` (``Default8BitQuantizeScheme``) wrap a tf_keras
model's layers; every quantizer keeps its range in a ``<name>_min`` / ``<name>_max`` variable pair,
initialised by TFMOT to ``[-6, 6]`` (activations) and learned as an exponential moving average
(decay 0.999) while training. A short fine-tune barely moves them from there (``0.999^135 = 0.87``
after three epochs of 45 steps), so they start from the ranges the engine chose on the frozen,
folded graph instead (:class:`~tfopt.quantizing.engine.quantize.Engine`, its calibration method, no weight
transforms: equalization rescales the channels of the tensors it spans and the wrappers hold the
original weights).

**Which graph tensor a quantizer's range comes from.** Each variable pair quantizes one value of the
float model, computed on the first :data:`PROBE` calibration samples with the *original* model:

- ``quantize_layer`` (the input quantizer): the model input it reads;
- ``output`` and ``post_activation``: the wrapped layer's output (for ``Conv -> BatchNorm -> ReLU``
  TFMOT moves the range onto the ReLU, whose output in the folded graph is the ReLU's too:
  ``relu(BN(conv(x)))`` and ``relu(conv'(x) + b')`` are the same tensor);
- ``pre_activation``: the layer's output with its activation replaced by ``linear`` (a Dense with
  softmax: the logits).

That value is compared with every tensor the engine gave a range, of the same shape, on the same
samples; the closest within ``MATCH_RTOL · max(1, max|v|)`` (max abs difference; folding moves
floats by ~1e-6) is the tensor, and its range, nudged (:func:`tfopt.quantizing.engine.fake_quant.nudge`),
initialises the pair. Matching values, not names, because folding renames and removes nodes.

**When there is no engine range** (the engine quantizes no tensor with that value: TFMOT wants a
range where the engine's placement puts none), the pair gets the value's min/max over the probe
samples, widened to contain 0 and nudged (``source: "calibration min/max"``). A wrapper whose layer
the original model does not have (a layout TFMOT replaced) keeps TFMOT's default
(``source: "TFMOT default"``). Every pair is reported with its source.

**Weights** (``kernel``, ``depthwise_kernel``...): ``LastValueQuantizer`` recomputes them from the
weights on every training step (symmetric, narrow range: ``[-max|W|, max|W|]`` per output channel,
the last axis, or per tensor when its variable holds one value); :func:`set_weight_ranges` applies
the same rule, so a model that is never trained (init only) and one whose last step moved the
weights after the range was taken both run on their current weights' ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.graph import Model

PROBE = 64  # calibration samples the values are compared (and fallback ranges taken) on
MATCH_RTOL = 1e-3
ACTIVATION_VARS = ("quantize_layer", "output", "post_activation", "pre_activation")


@dataclass
class QuantizerInit:
    """One activation quantizer of the QAT model and where its initial range came from."""

    layer: str  # the QAT model's layer (``quant_conv1``, ``quantize_layer``)
    variable: str  # ``output``, ``post_activation``, ``pre_activation`` or ``quantize_layer``
    min: float
    max: float
    source: str  # "engine", "calibration min/max" or "TFMOT default"
    tensor: str | None = None  # the frozen graph's tensor whose engine range it took

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "variable": self.variable, "min": self.min, "max": self.max,
                "source": self.source, "tensor": self.tensor}


def quantize_keras(model: Any) -> Any:
    """``quantize_apply(quantize_annotate_model(model))`` with TFMOT's ``Default8BitQuantizeScheme``."""
    from tfopt._tf import tfmot as load_tfmot

    tfmot = load_tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_scheme

    q = tfmot.quantization.keras
    return q.quantize_apply(q.quantize_annotate_model(model), scheme=default_8bit_quantize_scheme.Default8BitQuantizeScheme())


def initialise(qat: Any, original: Any, portable: Model, ranges: Mapping[str, tuple[float, float]],
               samples: Mapping[str, np.ndarray]) -> list[QuantizerInit]:
    """Set every activation quantizer of ``qat`` from ``ranges`` (module docstring), and its weight ranges.

    Args:
        qat: :func:`quantize_keras` of ``original``.
        original: the float tf_keras model.
        portable: the frozen, folded graph the engine's ranges are of.
        ranges: ``"node:index"`` -> ``(min, max)``, the engine's activation ranges.
        samples: calibration samples, ``{input name: array}``.

    Returns:
        One :class:`QuantizerInit` per activation quantizer, in layer order.
    """
    from tfopt.quantizing.engine.fake_quant import nudge

    probe = {k: np.asarray(v[:PROBE]) for k, v in samples.items()}
    values = _keras_values(qat, original, probe)
    graph = _graph_values(portable, probe, list(ranges))
    done: list[QuantizerInit] = []
    for layer in qat.layers:
        pairs = _range_pairs(layer)
        for variable in (v for v in ACTIVATION_VARS if v in pairs):
            low, high = pairs[variable]
            value = values.get((layer.name, variable))
            if value is None:
                done.append(QuantizerInit(layer.name, variable, float(low.numpy()), float(high.numpy()), "TFMOT default"))
                continue
            tensor = _closest(value, graph)
            lo, hi = nudge(*(ranges[tensor] if tensor is not None else (value.min(), value.max())))
            low.assign(lo)
            high.assign(hi)
            done.append(QuantizerInit(layer.name, variable, lo, hi, "engine" if tensor else "calibration min/max", tensor))
    set_weight_ranges(qat)
    return done


def set_weight_ranges(qat: Any) -> None:
    """Each weight quantizer's ``[-max|W|, max|W|]`` from the current weights (module docstring)."""
    for layer in qat.layers:
        # the wrapper puts the quantized tensor on the inner layer's attribute: read the variable by name
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        for name, (low, high) in _range_pairs(layer).items():
            weight = variables.get(name) if name not in ACTIVATION_VARS else None
            if weight is None:
                continue
            w = np.abs(np.asarray(weight.numpy(), dtype=np.float32))
            size = int(np.prod(low.shape))
            amax = w.reshape(-1, w.shape[-1]).max(axis=0) if size > 1 and size == w.shape[-1] else np.full(low.shape, w.max())
            amax = np.maximum(amax, 1e-8).reshape(low.shape).astype(np.float32)
            low.assign(-amax)
            high.assign(amax)


def _range_pairs(layer: Any) -> dict[str, tuple[Any, Any]]:
    """``{name: (min variable, max variable)}`` of a TFMOT layer, from its variables' names
    (``quant_conv/post_activation_min:0`` -> ``post_activation``)."""
    found: dict[str, dict[str, Any]] = {}
    for v in layer.weights:
        short = v.name.split("/")[-1].split(":")[0]
        for end in ("_min", "_max"):
            if short.endswith(end):  # a QuantizeLayer's pair is named after the layer (quantize_layer_1_min)
                name = short[: -len(end)]
                found.setdefault("quantize_layer" if name == layer.name else name, {})[end] = v
    return {k: (d["_min"], d["_max"]) for k, d in found.items() if len(d) == 2}


def _keras_values(qat: Any, original: Any, probe: Mapping[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """``{(QAT layer, variable): value}`` of the float ``original`` on ``probe``, for every
    activation quantizer whose value the original model computes."""
    import tf_keras

    by_name = {layer.name: layer for layer in original.layers}
    inputs = {_name(t): i for i, t in enumerate(original.inputs)}
    wanted: dict[tuple[str, str], Any] = {}  # -> a Keras tensor of ``original``, or (layer, its input)
    for layer in qat.layers:
        pairs = _range_pairs(layer)
        if "quantize_layer" in pairs:
            source = _name(layer.input)
            if source in inputs:
                wanted[(layer.name, "quantize_layer")] = original.inputs[inputs[source]]
        inner = by_name.get(getattr(getattr(layer, "layer", None), "name", ""))
        if inner is None or len(inner.inbound_nodes) != 1:  # shared layers have no single output
            continue
        for variable in ("output", "post_activation"):
            if variable in pairs:
                wanted[(layer.name, variable)] = inner.output
        if "pre_activation" in pairs and hasattr(inner, "activation"):
            wanted[(layer.name, "pre_activation")] = (inner, inner.input)
    tensors = [t[1] if isinstance(t, tuple) else t for t in wanted.values()]
    if not tensors:
        return {}
    feeds = [probe[_name(t)] for t in original.inputs]
    outputs = tf_keras.Model(original.inputs, tensors)(feeds if len(feeds) > 1 else feeds[0], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    values: dict[tuple[str, str], np.ndarray] = {}
    for (key, target), out in zip(wanted.items(), outputs):
        values[key] = _linear(target[0], out) if isinstance(target, tuple) else np.asarray(out)
    return values


def _name(tensor: Any) -> str:
    return str(tensor.name).split(":")[0]


def _linear(layer: Any, x: Any) -> np.ndarray:
    """``layer`` on ``x`` with its activation replaced by ``linear`` (its pre-activation value)."""
    import tf_keras

    activation = layer.activation
    try:
        layer.activation = tf_keras.activations.linear
        return np.asarray(layer(x, training=False))
    finally:
        layer.activation = activation


def _graph_values(model: Model, probe: Mapping[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
    """The frozen graph's ``tensors`` on ``probe`` (one session run)."""
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(model.graph_def, name="")
    fetches = [graph.get_tensor_by_name(name) for name in tensors]
    feeds = {graph.get_tensor_by_name(s.tensor): np.asarray(probe[s.name], np.dtype(s.dtype)) for s in model.inputs}
    with t.compat.v1.Session(graph=graph) as session:
        return dict(zip(tensors, session.run(fetches, feeds)))


def _closest(value: np.ndarray, graph: Mapping[str, np.ndarray]) -> str | None:
    """The graph tensor equal to ``value`` within ``MATCH_RTOL · max(1, max|value|)``, the closest
    one if several; ``None`` when none is."""
    bound = MATCH_RTOL * max(1.0, float(np.max(np.abs(value))) if value.size else 1.0)
    best: tuple[float, str] | None = None
    for name, other in graph.items():
        if other.shape != value.shape:
            continue
        err = float(np.max(np.abs(other.astype(np.float64) - value))) if value.size else 0.0
        if err <= bound and (best is None or err < best[0]):
            best = (err, name)
    return best[1] if best is not None else None
