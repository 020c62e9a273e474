"""Image resizes as two constant matrix products, exact to TensorFlow's own kernels.

Every TensorFlow image resize is linear and separable: for ``x[N, H, W, C]`` and an output of
``oH × oW``, ``y[n, i, j, c] = Σ_{h, w} A[i, h] · B[j, w] · x[n, h, w, c]`` with ``A`` (``oH × H``)
depending only on the height axis (sizes, ``align_corners``, ``half_pixel_centers``, the kernel,
``scale``/``translation``) and ``B`` (``oW × W``) on the width. The converters re-implement the
kernels, and not all of them the same way TensorFlow does:

* ``ResizeBicubic``: TensorFlow samples its cubic from a 1024-entry table (``delta`` rounded to
  1/1024) with Keys' ``a = −0.75`` and clamped edges, or, with ``half_pixel_centers``, ``a = −0.5``
  and outside taps dropped and renormalized. tf2onnx always writes ``a = −0.5``
  (0.4 off on the legacy kernel); even the right ``a`` misses the table's rounding by ~2e-3 at a
  ratio that is not a multiple of 1/1024. TFLite has no bicubic builtin.
* ``ResizeArea`` (tf2onnx maps it to nearest) and ``ScaleAndTranslate`` (``tf.image.resize``
  with lanczos3/5, gaussian, mitchellcubic, or ``antialias=True``) have no builtin in TFLite.

So where the input's height and width and the size (and scale/translation) are constants, this
module asks TensorFlow itself for ``A`` and ``B``: the op applied to the identity basis along one
axis, the other axis of size 1 resized to 1 (the identity for every kernel), gives that axis's
matrix column by column. It then checks the product form against the op on a random image (at
most 1e-5 relative, else the node is left alone) and replaces the node by ``y = A · x · Bᵀ`` per
image and channel, written
as ``Transpose → MatMul(Aᵀ) → Transpose → MatMul(Bᵀ) → Transpose`` (float32; integer or half
images are cast first, as TensorFlow's kernels compute in float). Error: fp32 rounding of sums of
at most ``H`` (``W``) products, zeros included — a few ulp of ``max|x|``, and the weights are
TensorFlow's own floats. Cost: ``O(oH·H + oW·W)`` constants and a dense product per axis, which
for an image of a few hundred pixels a side is small; above :data:`MAX_MATRIX` entries per axis
the node is left to the converter (reported as a skip).

A ``ResizeBicubic`` of constant size whose image's height and width are dynamic gets TensorFlow's
weights built in the graph instead (:mod:`tfopt.emitters.resize_dynamic`); any other node whose
spatial size is not static is left to the converter, with the reason.

The size (scale, translation) reaches the lowering as values through ``Lowering.constants``
(:func:`resize_lowering`): constants, or computed from constants and the inputs' static dimensions
(:mod:`tfopt.emitters.static_values`: ``tf.image.resize`` computes its scale from ``Shape(images)[1:3]``
before folding). The same resizes inside functional control flow (``tf.cond`` branches, ``tf.while_loop``
bodies, ``Case`` branches, called functions, nested ones) are lowered in the library, each body once
(:mod:`tfopt.emitters.tflite_lower_bodies`): there the size comes from the body's own constants and
static shapes, the image's shape from the body's arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt.passes.base import Skip

MAX_MATRIX = 1 << 20  # entries of one axis's matrix (4 MB as float32)
FLOAT_OUT = ("ResizeBicubic", "ResizeBilinear", "ResizeArea", "ScaleAndTranslate")  # float32 whatever the input
# Resizes no converter has an exact form of (TFLite, tf2onnx and OpenVINO alike): bilinear and nearest
# keep each target's native resize.
NEEDS_MATRIX = ("ResizeBicubic", "ResizeArea", "ScaleAndTranslate")


def lower_resizes(graph_def: Any) -> tuple[Any, list[str], list[Skip]]:
    """``graph_def`` (a copy when anything changes) with each resize of :data:`NEEDS_MATRIX`
    replaced by its two matrix products where that is exact; the report lines of the
    replaced nodes and the skips (with the reason) of the others. The main graph's nodes and
    those of every function body it reaches (named ``<function>/<node>``)."""
    from tfopt.emitters.tflite_lower_bodies import lower_reported

    return lower_reported(graph_def, NEEDS_MATRIX, resize_lowering)


WHAT = "two constant matrix products, TensorFlow's weights"


def resize_lowering(node: Any, *_static: Any) -> Any:
    """A resize of :data:`NEEDS_MATRIX` as a ``Lowering`` (``None`` for another op): its size (scale,
    translation) inputs reach its check as values (``Lowering.constants``: the scope's constants and static
    shapes, in the main graph or a body), which finds the matrices, or the weights built in the graph, or the
    reason there are none."""
    if node.op not in NEEDS_MATRIX:
        return None
    from tfopt.emitters.tflite_lowering import Lowering

    found: list[tuple[Any, str]] = []  # (build, what it becomes) of this node, once its check passed

    def check(node: Any, operands: Any) -> str | None:
        build, what = _lowering_or_reason(node, operands[0], [o.value for o in operands[1:]])
        if build is None:
            return what
        found.append((build, what))
        return None

    inputs = sum(1 for ref in node.input if not ref.startswith("^"))
    return Lowering(node.op, check, lambda node, inputs: found[-1][0](node, inputs), WHAT,
                    constants=tuple(range(1, inputs)), describe=lambda *_: found[-1][1])


def _lowering_or_reason(node: Any, image: Any, values: list[np.ndarray | None]) -> tuple[Any, str]:
    """``(build, what it becomes)``: TensorFlow's matrices when the image's size is static, a
    bicubic's weights built in the graph when it is not (:mod:`tfopt.emitters.resize_dynamic`);
    else ``(None, why not)``."""
    from tfopt.emitters.resize_dynamic import WHAT as DYNAMIC
    from tfopt.emitters.resize_dynamic import dynamic_bicubic

    matrices = _matrices_or_reason(node, image, values)
    if not isinstance(matrices, str):
        return _builder(*matrices), WHAT
    build = dynamic_bicubic(node, image, values) if "must be static" in matrices else None
    return (build, DYNAMIC) if build is not None else (None, matrices)


def _matrices_or_reason(node: Any, image: Any, values: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray] | str:
    """``(A, B)`` of :func:`axis_matrices`, or why this node keeps its op."""
    shape = image.shape
    if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
        return f"{node.op} on a {shape} image: height and width must be static (fix them with --inputs)"
    if any(v is None for v in values):
        return f"{node.op}: its size{'/scale/translation' if node.op == 'ScaleAndTranslate' else ''} must be constant"
    if node.op not in FLOAT_OUT and image.dtype.name != "float32":
        return f"{node.op} on {image.dtype.name}: lowered for float32 only"
    height, width = int(shape[1]), int(shape[2])
    size = [int(v) for v in values[0]]  # type: ignore[union-attr]
    if size[0] * height > MAX_MATRIX or size[1] * width > MAX_MATRIX:
        return f"{node.op} {height}x{width} -> {size[0]}x{size[1]}: over {MAX_MATRIX} weights per axis"
    a, b = axis_matrices(node, (height, width), values)  # type: ignore[arg-type]
    probe = np.random.default_rng(0).standard_normal((1, height, width, 1)).astype(np.float32)
    want = _apply(node, probe, values)[0, :, :, 0]  # type: ignore[arg-type]
    got = a @ probe[0, :, :, 0] @ b.T
    if not np.allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max(initial=0.0)))):
        return f"{node.op}: its product form differs from TensorFlow's ({np.abs(got - want).max():.2g})"
    return a, b


def axis_matrices(node: Any, hw: tuple[int, int], values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``A[oH, H]`` and ``B[oW, W]`` of ``node`` (a resize NodeDef) on an ``H × W`` image, from
    TensorFlow's kernel run on the identity basis of each axis (the other axis 1 → 1)."""
    height, width = hw
    size = [int(v) for v in values[0]]
    rest = [np.asarray(v, np.float32) for v in values[1:]]  # ScaleAndTranslate: scale, translation
    eye_h = np.eye(height, dtype=np.float32).reshape(1, height, 1, height)
    eye_w = np.eye(width, dtype=np.float32).reshape(1, 1, width, width)
    only_h = [np.array([size[0], 1], np.int32)] + [np.array([v[0], d], np.float32) for v, d in zip(rest, (1.0, 0.0))]
    only_w = [np.array([1, size[1]], np.int32)] + [np.array([d, v[1]], np.float32) for v, d in zip(rest, (1.0, 0.0))]
    a = _apply(node, eye_h, only_h)[0, :, 0, :]
    b = _apply(node, eye_w, only_w)[0, 0, :, :]
    return a.astype(np.float32), b.astype(np.float32)


def _apply(node: Any, images: np.ndarray, values: list[np.ndarray]) -> np.ndarray:
    """The TensorFlow op of ``node`` with its attributes, run eagerly on ``images`` (float32)."""
    from tfopt._tf import tf

    attrs = {}
    for key, value in node.attr.items():
        if key == "T":
            continue
        kind = value.WhichOneof("value")
        attrs[key] = value.s.decode() if kind == "s" else getattr(value, kind)
    names = ("size", "scale", "translation")
    inputs = {names[k]: np.asarray(v, np.int32 if k == 0 else np.float32) for k, v in enumerate(values)}
    return np.asarray(getattr(tf().raw_ops, node.op)(images=images, **inputs, **attrs))


def _builder(a: np.ndarray, b: np.ndarray) -> Any:
    """The replacement as TensorFlow code: ``x[N,H,W,C]`` → ``y[N,oH,oW,C]`` through ``Aᵀ``, ``Bᵀ``."""

    def build(node: Any, inputs: Any) -> list[Any]:
        from tfopt._tf import tf

        t = tf()
        x = inputs[0]
        if x.dtype != t.float32:
            x = t.cast(x, t.float32)
        on_h = t.linalg.matmul(t.transpose(x, [0, 2, 3, 1]), t.constant(a.T))  # [N, W, C, oH]
        on_w = t.linalg.matmul(t.transpose(on_h, [0, 3, 2, 1]), t.constant(b.T))  # [N, oH, C, oW]
        y = t.transpose(on_w, [0, 1, 3, 2])  # [N, oH, oW, C]
        return [y if node.op in FLOAT_OUT else t.cast(y, inputs[0].dtype)]

    return build
