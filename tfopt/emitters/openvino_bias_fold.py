"""Move a quantized layer's bias into the thresholds of the FakeQuantize after it, so OpenVINO's CPU
plugin runs the layer as one int8 kernel with its requantization and nothing else.

The engine's int8 graph reaches OpenVINO as ``Convolution -> Add(b) -> FakeQuantize``: the layer,
its per-channel bias (a folded BatchNorm, or the one bias correction adds), the fake quant of its
output. The low-precision transformations move the weights' dequantization scale ``s`` behind the
convolution (``Convolution -> Multiply(s) -> Add(b) -> FakeQuantize``). Without ``b`` the plugin
folds ``s`` into the FakeQuantize and the layer runs as convolution + requantization; with ``b`` it
keeps ``Multiply(s)`` as an extra per-channel post-op of every layer (measured on MobileNetV2,
AMD Zen 4 with AVX-512 VNNI, one thread: the same int8 network 5-7 % slower with a bias on each
convolution, 2-3 % of it won back by this fold). So the bias goes into the thresholds instead::

    FakeQuantize(y + b, il, ih, ol, oh)  =  FakeQuantize(y, il - b, ih - b, ol, oh)

exactly, in real arithmetic (the clamp ``il <= y + b <= ih`` is ``il - b <= y <= ih - b`` and the
grid index ``(y + b - il) / (ih - il)`` is ``(y - (il - b)) / ((ih - b) - (il - b))``); in float32
the two roundings may differ by one unit in the last place, which moves a value across a rounding
tie at most: one step of the output grid. The thresholds become per channel (``b``'s shape); the
output range ``ol, oh`` does not change. Only an ``Add`` whose sole reader is the FakeQuantize and
whose other operand is a constant is folded: a bias another op also reads stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LAYERS = frozenset({"Convolution", "GroupConvolution"})


def fold_biases_into_quantize(ov_model: Any) -> int:
    """Rewrite every ``layer -> Add(constant) -> FakeQuantize`` of ``ov_model`` in place (module
    docstring); returns how many were folded."""
    from openvino import opset13 as ops

    from tfopt.emitters.openvino_weight_quant import replace_node

    folded = 0
    for add in [op for op in ov_model.get_ordered_ops() if op.get_type_name() == "Add"]:
        match = _match(add)
        if match is None:
            continue
        layer, bias, quantize = match
        low, high = (quantize.input_value(i).get_node().get_data().astype(np.float32) for i in (1, 2))
        replace_node(quantize, ops.fake_quantize(layer.output(0), ops.constant(np.ascontiguousarray(low - bias)),
                                                 ops.constant(np.ascontiguousarray(high - bias)),
                                                 quantize.input_value(3), quantize.input_value(4), quantize.get_levels()))
        folded += 1
    if folded:
        ov_model.validate_nodes_and_infer_types()
    return folded


def _match(add: Any) -> tuple[Any, np.ndarray, Any] | None:
    """``(layer, bias, FakeQuantize)`` when ``add`` is a layer's constant bias read only by a
    FakeQuantize with constant input thresholds, else None."""
    sources = [add.input_value(i).get_node() for i in (0, 1)]
    layer = next((s for s in sources if s.get_type_name() in LAYERS), None)
    constant = next((s for s in sources if s.get_type_name() == "Constant"), None)
    readers = [t.get_node() for t in add.output(0).get_target_inputs()]
    if layer is None or constant is None or len(readers) != 1 or readers[0].get_type_name() != "FakeQuantize":
        return None
    quantize = readers[0]
    if quantize.input_value(0).get_node() is not add or len(layer.output(0).get_target_inputs()) != 1:
        return None
    if any(quantize.input_value(i).get_node().get_type_name() != "Constant" for i in (1, 2)):
        return None
    bias = constant.get_data().astype(np.float32)
    if not np.all(np.isfinite(bias)):
        return None
    return layer, bias, quantize
