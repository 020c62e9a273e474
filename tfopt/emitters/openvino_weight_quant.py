"""Move the shape ops on a quantized weight before its dequantization, so the CPU plugin runs the layer in int8.

OpenVINO's TensorFlow frontend stores a fake-quantized weight compressed: an int8 constant, a
``Convert`` to f32 and a ``Multiply`` by its per-channel scale. A depthwise kernel fake-quantized
per output channel (``[H, W, 1, in·mult]``, see :mod:`tfopt.quantizing.engine.fake_quant`) then goes
through a ``Reshape`` back to ``[H, W, in, mult]`` and the frontend's ``Transpose``/``Unsqueeze``
into a ``GroupConvolution`` kernel; the low-precision transformations do not move the scale
through them, and the layer stays f32 (measured: a ``mult = 2`` depthwise layer ran f32 in an
otherwise u8 model). So the shape ops are applied to the constants instead::

    Wq -> Convert -> Multiply(s) -> Reshape -> Transpose -> Unsqueeze -> GroupConvolution     before
    f(Wq) -> Convert -> Multiply(s') -> GroupConvolution                                       after

with ``f`` the shape ops composed and ``s' = f(broadcast(s, Wq.shape))`` collapsed to size 1
along every axis it is constant on (``[1, 1, 1, in·mult]`` becomes ``[in, mult, 1, 1, 1]``): the
same values, element for element.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOW_PRECISION = frozenset({"i8", "u8"})  # (4-bit constants are packed: get_data() is not one value per element)
SHAPE_OPS = frozenset({"Reshape", "Transpose", "Unsqueeze", "Squeeze"})


def fold_weight_reshapes(ov_model: Any) -> int:
    """Rewrite every matching weight in ``ov_model`` in place (module docstring); returns how many."""
    from openvino import opset13 as ops

    folded = 0
    for multiply in [op for op in ov_model.get_ordered_ops() if op.get_type_name() == "Multiply"]:
        parts = _dequantization(multiply)
        if parts is None:
            continue
        weight, scale = parts
        full = np.broadcast_to(scale, weight.shape)
        last = multiply
        while True:
            users = [t.get_node() for t in last.output(0).get_target_inputs()]
            if len(users) != 1 or not _foldable(users[0]):
                break
            weight, full = _apply(users[0], weight), _apply(users[0], np.ascontiguousarray(full))
            last = users[0]
        if last is multiply:
            continue
        keep = tuple(1 if np.all(full == full.take([0], axis=i)) else d for i, d in enumerate(full.shape))
        new_scale = np.ascontiguousarray(full[tuple(slice(0, 1) if k == 1 else slice(None) for k in keep)])
        dequantized = ops.multiply(ops.convert(ops.constant(np.ascontiguousarray(weight)), "f32"),
                                   ops.constant(new_scale.astype(np.float32)))
        replace_node(last, dequantized)
        folded += 1
    if folded:
        ov_model.validate_nodes_and_infer_types()
    return folded


def replace_node(old: Any, new: Any) -> None:
    """``new`` in place of ``old`` in its model: ``old``'s readers read ``new``, which takes its name."""
    new.set_friendly_name(old.get_friendly_name())
    old.output(0).replace(new.output(0))


def _dequantization(multiply: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(int weight, scale)`` of ``Constant -> Convert -> Multiply(Constant)``, else None."""
    convert, scale = (multiply.input_value(i).get_node() for i in (0, 1))
    if convert.get_type_name() != "Convert" or scale.get_type_name() != "Constant":
        return None
    weight = convert.input_value(0).get_node()
    if weight.get_type_name() != "Constant" or weight.get_output_element_type(0).get_type_name() not in LOW_PRECISION:
        return None
    return weight.get_data(), scale.get_data()


def _foldable(node: Any) -> bool:
    return (node.get_type_name() in SHAPE_OPS and node.get_output_partial_shape(0).is_static
            and all(node.input_value(i).get_node().get_type_name() == "Constant" for i in range(1, node.get_input_size())))


def _apply(node: Any, value: np.ndarray) -> np.ndarray:
    if node.get_type_name() == "Transpose":
        return value.transpose([int(p) for p in node.input_value(1).get_node().get_data()])
    return value.reshape([int(d) for d in node.get_output_shape(0)])
