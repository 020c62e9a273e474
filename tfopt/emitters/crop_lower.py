"""``CropAndResize`` as gathers and lerps, in TensorFlow's own float32 arithmetic.

TensorFlow's CPU kernel, for box ``b = (y1, x1, y2, x2)`` (normalized), image ``box_ind[b]`` of
``H × W`` and a crop of ``ch × cw``, samples at (float32 throughout, in this order)::

    hs = (y2 − y1)·(H − 1) / (ch − 1)                       (0 when ch = 1)
    in_y[i] = y1·(H − 1) + i·hs                             (ch > 1)
            = 0.5·(y1 + y2)·(H − 1)                         (ch = 1)

(``in_x`` likewise) and writes ``extrapolation_value`` where ``in_y ∉ [0, H − 1]`` or
``in_x ∉ [0, W − 1]``. Bilinear: ``t, l = ⌊in⌋``, ``b, r = ⌈in⌉``, ``dy = in_y − t``,
``dx = in_x − l``, ``top = v[t, l] + (v[t, r] − v[t, l])·dx`` (``bottom`` likewise) and
``out = top + (bottom − top)·dy``; nearest: ``v[roundf(in_y), roundf(in_x)]`` (halves away from
zero: ``⌊in⌋ + (in − ⌊in⌋ ≥ 0.5)``, exact, where ``tf.round`` would round halves to even).

Why: tf2onnx writes a ``Loop`` of ``Resize(coordinate_transformation_mode=tf_crop_and_resize)``,
whose coordinate is ``y1·(H − 1) + i·(y2 − y1)·(H − 1)/(ch − 1)`` evaluated left to right; for a
box edge at the image's border (``x2 = 1``, the commonest box) that lands one ulp past ``W − 1``
(``0.2·7 + 3·0.8·7/3 = 7.0000005``), and ONNX writes the extrapolation value (0) for the whole
border column where TensorFlow samples the image. This lowering runs before tf2onnx
(:func:`tfopt.emitters.onnx._lower_for_tf2onnx`), so ONNX Runtime computes TensorFlow's
coordinates. Error: the coordinates are TensorFlow's to the bit (the same float32 operations in
the same order), the values a few ulp of ``max|image|`` (the lerp's roundings).

Not for TFLite (which has no ``CropAndResize`` builtin and keeps refusing it): its converter turns
the division by the constant ``ch − 1`` into a product with the rounded reciprocal, which moves a
flipped box's (``x1 > x2``) border coordinate one ulp outside the image (measured: a whole column
written as the extrapolation value). OpenVINO converts the op itself, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import Lowering, Operand

WHAT = "gathers and lerps at TensorFlow's float32 sample coordinates"


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    """Images of a real dtype (TensorFlow computes them in float32), boxes float32, NHWC of known rank."""
    image, boxes = operands[0], operands[1]
    if image.shape is not None and len(image.shape) != 4:
        return f"CropAndResize on a rank-{len(image.shape)} image: lowered for NHWC images only"
    if not (image.dtype.is_floating or image.dtype.is_integer) or image.dtype.name == "float64":
        return f"CropAndResize on {image.dtype.name}: lowered for float32/16 and integer images only"
    if boxes.dtype.name != "float32":
        return f"CropAndResize with {boxes.dtype.name} boxes: lowered for float32 boxes only"
    return None


def _axis(t: Any, start: Any, end: Any, size: Any, crop: Any) -> tuple[Any, Any]:
    """``(in, valid)``: one axis's sample coordinates ``[B, crop]`` and where they fall in the image."""
    last = t.cast(size - 1, t.float32)
    many = t.cast(crop - 1, t.float32)
    scale = (end - start) * last / t.maximum(many, 1.0)
    steps = t.cast(t.range(crop), t.float32)[None, :]
    coord = t.where(crop > 1, start * last + steps * scale, 0.5 * (start + end) * last)
    return coord, t.logical_and(coord >= 0.0, coord <= last)


def crop_and_resize(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    image, boxes, box_ind, crop_size = inputs
    image = t.cast(image, t.float32)
    shape = t.shape(image)
    height, width = shape[1], shape[2]
    crop_h, crop_w = crop_size[0], crop_size[1]
    y1, x1, y2, x2 = (boxes[:, k: k + 1] for k in range(4))
    in_y, valid_y = _axis(t, y1, y2, height, crop_h)  # [B, ch]
    in_x, valid_x = _axis(t, x1, x2, width, crop_w)  # [B, cw]
    n_boxes = t.shape(boxes)[0]
    batch = t.broadcast_to(t.reshape(t.cast(box_ind, t.int32), [-1, 1, 1]), t.stack([n_boxes, crop_h, crop_w]))

    def at(ys: Any, xs: Any) -> Any:
        """``image[box_ind, ys, xs, :]`` for ``ys [B, ch]``, ``xs [B, cw]`` (clamped: outside is masked)."""
        ys = t.clip_by_value(t.cast(ys, t.int32), 0, height - 1)
        xs = t.clip_by_value(t.cast(xs, t.int32), 0, width - 1)
        rows = t.broadcast_to(ys[:, :, None], t.shape(batch))
        cols = t.broadcast_to(xs[:, None, :], t.shape(batch))
        return t.gather_nd(image, t.stack([batch, rows, cols], axis=-1))

    method = node.attr["method"].s.decode() if "method" in node.attr else "bilinear"
    if method == "nearest":
        def nearest(c: Any) -> Any:
            low = t.floor(c)
            return low + t.cast(c - low >= 0.5, t.float32)

        out = at(nearest(in_y), nearest(in_x))
    else:
        top_y, bottom_y, left_x, right_x = t.floor(in_y), t.math.ceil(in_y), t.floor(in_x), t.math.ceil(in_x)
        dy = (in_y - top_y)[:, :, None, None]
        dx = (in_x - left_x)[:, None, :, None]
        top_left, top_right = at(top_y, left_x), at(top_y, right_x)
        bottom_left, bottom_right = at(bottom_y, left_x), at(bottom_y, right_x)
        top = top_left + (top_right - top_left) * dx
        bottom = bottom_left + (bottom_right - bottom_left) * dx
        out = top + (bottom - top) * dy
    valid = t.logical_and(valid_y[:, :, None], valid_x[:, None, :])[:, :, :, None]
    fill = node.attr["extrapolation_value"].f if "extrapolation_value" in node.attr else 0.0
    return [t.where(t.broadcast_to(valid, t.shape(out)), out, t.fill(t.shape(out), t.constant(fill, t.float32)))]


def lower_crops(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every ``CropAndResize`` of the main graph and
    of the function bodies it reaches lowered (:func:`crop_and_resize`); the graph tf2onnx converts."""
    from tfopt.emitters.tflite_lower_bodies import lower_everywhere

    return lower_everywhere(graph_def, Lowering("CropAndResize", check, crop_and_resize, WHAT))
