"""Two corrections to the ``Resize`` nodes tf2onnx writes for TensorFlow's image resizes.

**Scales that floor below the size.** For a static image tf2onnx gives ``Resize`` the float32
``scales = out / in``, and ONNX computes the output size as ``floor(in · scale)``: with
``in = 5, out = 9``, ``float32(9/5) = 1.7999999`` gives 8 columns where TensorFlow has 9 (ONNX's
checker then rejects the file: the Transpose after it says 9). Each such scale becomes the
smallest float32 ``s ≥ out/in`` (exactly, as rationals), so ``floor(in · s) = out`` and the
coordinate map ``x/s`` moves by at most one ulp.

**The legacy bicubic kernel.** TensorFlow's ``ResizeBicubic`` without ``half_pixel_centers``
(the TF1 default, either ``align_corners``) is Keys' cubic with ``a = −0.75`` over clamped
edge pixels; tf2onnx writes ``a = −0.5`` with ``exclude_outside = 1`` (the half-pixel kernel)
for every ResizeBicubic. A cubic ``Resize`` whose ``coordinate_transformation_mode`` is
``asymmetric`` or ``align_corners`` can only come from the legacy kernel, so it gets
``cubic_coeff_a = −0.75, exclude_outside = 0``. This matters only for a bicubic resize left to
tf2onnx (an output size the data decides: :mod:`tfopt.emitters.resize_lower` replaces those of a
constant size by TensorFlow's exact weights, :mod:`tfopt.emitters.resize_dynamic` when the image's
size is dynamic); TensorFlow still rounds the sample offset to 1/1024, so at ratios
that are not multiples of 1/1024 the two differ by ~1e-3. No ``Resize`` form reaches TensorFlow's
numbers there: ``sizes`` or ``scales``, ``asymmetric``/``align_corners``/``half_pixel`` or
``tf_crop_and_resize`` with an roi, ONNX's cubic weighs every tap at the exact offset. So when
verification finds an output off, it names each such node and the way out
(:func:`approximate_ops`, the target's ``approximations`` role): static height and width, which
:mod:`tfopt.emitters.resize_lower` turns into TensorFlow's own weights.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

LEGACY_CUBIC_A = -0.75
LEGACY_MODES = (b"asymmetric", b"align_corners")


def fix_resizes(proto: Any) -> int:
    """Apply both corrections to ``proto``'s main graph (in place). Returns the nodes changed."""
    changed = 0
    for node in proto.graph.node:
        if node.op_type == "Resize":
            changed += _legacy_cubic(node)
    return changed + _exact_scales(proto)


def _legacy_cubic(node: Any) -> int:
    attrs = {a.name: a for a in node.attribute}
    if attrs.get("mode") is None or attrs["mode"].s != b"cubic":
        return 0
    mode = attrs.get("coordinate_transformation_mode")
    if mode is None or mode.s not in LEGACY_MODES:
        return 0
    from onnx import helper

    kept = [a for a in node.attribute if a.name not in ("cubic_coeff_a", "exclude_outside")]
    del node.attribute[:]
    node.attribute.extend(kept)
    node.attribute.extend([helper.make_attribute("cubic_coeff_a", LEGACY_CUBIC_A),
                           helper.make_attribute("exclude_outside", 0)])
    return 1


def _exact_scales(proto: Any) -> int:
    """Replace each constant ``scales`` input whose ``floor(in · scale)`` falls short of the size it
    stands for (``round(in · scale)``) by the smallest float32 that reaches it."""
    from onnx import numpy_helper

    from tfopt.emitters.onnx_shapes import inferred_shapes

    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    resizes = [n for n in graph.node if n.op_type == "Resize" and len(n.input) >= 3 and n.input[2] in inits
               and (len(n.input) < 4 or not n.input[3])]
    if not resizes:
        return 0
    shapes = inferred_shapes(proto)
    changed = 0
    for node in resizes:
        dims = shapes.get(node.input[0])
        scales = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        if dims is None or len(dims) != len(scales):
            continue
        exact = np.array([_reaching(s, d) for s, d in zip(scales, dims)], np.float32)
        if np.array_equal(exact, scales):
            continue
        name = f"{node.input[2]}_exact"
        if name not in inits:
            inits[name] = numpy_helper.from_array(exact, name)
            graph.initializer.append(inits[name])
        node.input[2] = name
        changed += 1
    return changed


def _reaching(scale: np.float32, size: int | None) -> np.float32:
    """The smallest float32 ``s ≥ out/size`` with ``out = round(size · scale)``; ``scale`` itself
    when the size is unknown or ``floor(size · scale)`` is already ``out``."""
    if not size:
        return scale
    out = round(size * float(scale))
    if Fraction(float(scale)) * size >= out:
        return scale
    s = np.float32(out / size)
    while Fraction(float(s)) * size < out:
        s = np.nextafter(s, np.float32(np.inf))
    return np.float32(s)


def approximate_ops(graph_def: Any) -> list[str]:
    """The bicubic resizes of ``graph_def`` (main graph and function bodies) that tf2onnx's ``Resize``
    computes (the matrix form declined them: the reason is given), each with why ONNX Runtime's
    numbers are not TensorFlow's and the way out. Empty when there are none."""
    from tfopt.emitters.resize_lower import lower_resizes

    return [f"ResizeBicubic '{skip.node}' as ONNX's cubic Resize ({skip.reason}): ONNX weighs each tap at its "
            f"exact sample offset, TensorFlow's kernel at the offset rounded to 1/1024, ~1e-3 apart where the "
            f"size ratio is not a multiple of 1/1024; give the resize a constant size (and the image a static "
            f"height and width: --inputs) and tfopt writes TensorFlow's own weights"
            for skip in lower_resizes(graph_def)[2] if skip.reason.startswith("ResizeBicubic")]
