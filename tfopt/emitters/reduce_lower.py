"""A large float32 ``Mean``/``Sum`` as a chain of small ones, for TFLite, ONNX and OpenVINO.

A mean over millions of elements (an instance normalisation over a 3-D volume, a global mean) is
summed in float32, and how far a float32 sum is from the exact one depends on its order. Summed in
one run, each of ``n`` additions rounds a partial sum that grows to ``n·|x̄|``: the error bound is
``γₙ·Σ|xᵢ| ≈ n·u·Σ|xᵢ|`` (``u = 2⁻²⁴``), about ``u·√n`` relative when the rounding errors are random.
TensorFlow's Eigen kernel sums a reduction over contiguous memory as a tree (``log₂ n`` levels:
``u·log₂ n``); ONNX Runtime's ``ReduceMean``/``GlobalAveragePool``, OpenVINO's ``ReduceMean`` and
TFLite's ``Mean`` sum it in one run. Measured on a ``180×172×86`` volume of ``50 + N(0, 1)``: the
runtimes' instance-normalised output 3.8 (ONNX Runtime, TFLite) and 0.07 (OpenVINO) away from
TensorFlow's, which was 2e-6 from float64. A normalisation divides the mean's error by the standard
deviation, so it grows with ``|x̄|/σ``, and a network of many normalisations compounds it.

So before each converter reads the graph, a float32 ``Mean``/``Sum`` over more than :data:`BLOCK`
elements becomes reductions of at most :data:`BLOCK` elements each, spliced under the node's own
name by the shared lowering (:func:`tfopt.emitters.tflite_lower_bodies.lower_reported`: the main
graph and every body it reaches; the axes must be decided by the graph, ``Lowering.constants``)::

    mean(x, [a₁, …, aₖ]) = mean(… mean(x, [aₖ]) …, [a₁])        (every slice has the same count)
    sum(x, [a₁, …, aₖ])  = sum(… sum(x, [aₖ]) …, [a₁])

one axis at a time from the innermost (the first reads each row of contiguous memory once). An axis
longer than :data:`BLOCK` (static) is first reshaped into factors of at most :data:`BLOCK`
(``n = n₁·n₂·…``, a free reshape), each reduced in turn; a length with no such factors (a large
prime) is padded with zeros to a multiple of :data:`BLOCK` and summed, a mean then scaled by ``1/n``.
Each partial sum adds at most :data:`BLOCK` terms, so the bound is ``Σⱼ γ_{nⱼ} ≤ levels·BLOCK·u``
relative to ``Σ|xᵢ|`` (random errors: ``u·Σⱼ √nⱼ``), whatever order the runtime sums each level in:
about 1e-5 relative for the levels a 3-D volume has, against 0.15 for ``n = 2.66 M`` in one run.
Dynamic sizes are fine (the chain needs only the axes); a dynamic axis is not split (its length is
unknown), so a single dynamic axis is left as it is. Work: the first level reads the tensor once as
the original did; the rest read ``1/n₁`` of it.

Where TensorFlow itself sums in one run (a channels-last reduction over the spatial axes with more
than one channel is a column reduction, which Eigen accumulates row after row), the chain is closer
to the exact mean than TensorFlow is, and the artifact then differs from the original by
TensorFlow's own rounding (docs/concepts/reductions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.emitters.tflite_lowering import Lowering, Operand

BLOCK = 1024
"""The most elements one partial reduction adds (``u·√BLOCK ≈ 2e-6`` relative per level)."""
OPS = ("Mean", "Sum")
WHAT = "partial reductions of at most 1024 elements, one axis at a time"


def _axes(operands: Sequence[Operand]) -> list[int] | None:
    x, axes = operands
    if axes.value is None or x.shape is None:
        return None
    rank = len(x.shape)
    return sorted({int(a) % rank for a in np.atleast_1d(axes.value)}) if rank else []


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    x = operands[0]
    if x.dtype.name != "float32":
        return f"{node.op} on {x.dtype.name}: split for float32 only"
    axes = _axes(operands)
    if axes is None:
        return f"{node.op} whose axes or input rank the data decides: left to the converter"
    sizes = [x.shape[a] for a in axes] if x.shape is not None else []
    if len(axes) < 2 and (not sizes or sizes[0] is None):
        return f"{node.op} over one dynamic axis: its length is unknown, left to the converter"
    return None


def is_large(operands: Sequence[Operand]) -> bool:
    """Whether the reduction adds more than :data:`BLOCK` elements per output (or may: a dynamic
    reduced axis beside another), the ones :func:`lower_reductions` splits."""
    axes = _axes(operands)
    shape = operands[0].shape
    if not axes or shape is None:
        return False
    sizes = [shape[a] for a in axes]
    if None in sizes:
        return len(axes) > 1
    return int(np.prod(sizes)) > BLOCK


def factors(n: int) -> list[int] | None:
    """``n`` as factors of at most :data:`BLOCK`, outermost first (``None``: ``n`` has a prime factor above it)."""
    out, rest = [], n
    while rest > BLOCK:
        factor = next((d for d in range(BLOCK, 1, -1) if rest % d == 0), None)
        if factor is None:
            return None
        out.append(factor)
        rest //= factor
    return [rest, *reversed(out)]


def split_reduce(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    x, axes_value = inputs
    rank = x.shape.rank
    axes = sorted({int(a) % rank for a in np.atleast_1d(axes_value)})
    mean = node.op == "Mean"
    scale = Scale(t, mean)
    shape = x.shape.as_list()
    if sum(shape[a] is None for a in range(rank)) > 1 or any(shape[a] is None for a in axes):
        y = _axis_by_axis(t, x, axes, scale)
    else:
        y = _grouped(t, x, axes, scale)
    y = scale.apply(y)
    dims = t.unstack(t.shape(x)) if None in shape else shape
    keep = node.attr["keep_dims"].b
    out = [1 if a in axes else dims[a] for a in range(rank) if keep or a not in axes]
    return [t.reshape(y, t.stack(out) if None in shape else out)]


def _grouped(t: Any, x: Any, axes: list[int], scale: Scale) -> Any:
    """Static reduced axes (one kept axis may be dynamic): size-1 axes dropped, each run of neighbouring
    reduced (kept) axes merged into one (a free reshape: the runtimes' kernels are fastest on it), a
    reduced run longer than BLOCK written as its factors, then one level per factor, innermost first."""
    groups: list[tuple[int, bool]] = []  # (length or -1, reduced)
    for a, n in enumerate(x.shape.as_list()):
        if n == 1:
            continue
        n = -1 if n is None else n
        if groups and groups[-1][1] == (a in axes) and -1 not in (n, groups[-1][0]):
            groups[-1] = (groups[-1][0] * n, a in axes)
        else:
            groups.append((n, a in axes))
    dims: list[int] = []
    levels: list[tuple[int, int, bool]] = []  # (axis in dims, length, the run's last factor)
    pads: list[list[int]] = []
    for n, reduced in groups:
        parts = factors(n) if reduced and n > BLOCK else [n]
        pad = 0
        if parts is None:  # a large prime factor: zeros up to a multiple of BLOCK^(levels-1)
            unit = BLOCK
            while unit * BLOCK < n:
                unit *= BLOCK
            pad = -(-n // unit) * unit - n
            parts = factors(n + pad) or [n + pad]  # a multiple of BLOCK^(levels-1) always has factors
        pads.append([0, pad])
        if reduced:
            levels.extend((len(dims) + k, parts[k], k == 0) for k in range(len(parts)))
            scale.whole(n)
        dims.extend(parts)
    y = t.reshape(x, [n for n, _ in groups] or [1])
    if any(p[1] for p in pads):
        y = t.pad(y, pads)
    y = t.reshape(y, dims)
    for axis, length, _ in reversed(levels):  # innermost first: measured fastest in all three runtimes
        y = scale.level(y, axis, length, whole=False)
    return y


def _axis_by_axis(t: Any, x: Any, axes: list[int], scale: Scale) -> Any:
    """A dynamic reduced axis (or two dynamic axes): one level per axis, innermost first; no axis is split."""
    y = x
    for axis in reversed(axes):
        length = x.shape[axis]
        y = scale.level(y, axis, length if length is not None else t.shape(x)[axis], whole=True)
    return y


class Scale:
    """The levels of one split reduction and the factor that makes their result the op's.

    The levels alternate ``Sum`` and ``Mean`` (starting with the op's own): converters merge two
    reductions of one kind in a row back into one (OpenVINO's ``ReduceMerge``, TFLite's converter),
    which would undo the split. A ``Mean`` level divides by its count ``nⱼ``, so the chain gives
    ``Σx · Π_{mean levels} 1/nⱼ``; the factor turns that into ``Σx`` (a ``Sum``) or ``Σx / n`` (a
    ``Mean``, ``n`` the unpadded count). An axis reduced whole by a level of the op's kind needs no
    factor; the others multiply or divide by its length (a tensor when dynamic)."""

    def __init__(self, t: Any, mean: bool) -> None:
        self.t, self.mean, self.count = t, mean, 0
        self.static = 1.0
        self.dynamic: list[tuple[Any, bool]] = []  # (length, divide)

    def level(self, y: Any, axis: int, length: Any, *, whole: bool) -> Any:
        is_mean = (self.count % 2 == 0) == self.mean
        self.count += 1
        if whole and is_mean != self.mean:  # an unsplit axis: x̄ = Σ/n, Σ = n·x̄
            self._times(length, divide=self.mean)
        elif not whole and is_mean:
            self._times(length, divide=False)
        return (self.t.reduce_mean if is_mean else self.t.reduce_sum)(y, axis=[axis], keepdims=True)

    def whole(self, length: int) -> None:
        """A reduced run of ``length`` elements (padding excluded): a ``Mean`` divides by it. Its levels
        count their own lengths (``whole=False``); unsplit, a single level of the op's kind cancels it."""
        if self.mean:
            self._times(length, divide=True)

    def _times(self, length: Any, *, divide: bool) -> None:
        if isinstance(length, int):
            self.static = self.static / length if divide else self.static * length
        else:
            self.dynamic.append((length, divide))

    def apply(self, y: Any) -> Any:
        t = self.t
        if self.static != 1.0:
            y = y * np.float32(self.static)
        for length, divide in self.dynamic:
            n = t.cast(length, y.dtype)
            y = y / n if divide else y * n
        return y


def is_row(operands: Sequence[Operand]) -> bool:
    """Whether the reduction ends at the innermost axis (no kept axis longer than 1 after its last
    reduced one): contiguous memory, which TensorFlow sums as a tree."""
    axes, shape = _axes(operands), operands[0].shape
    if not axes or shape is None:
        return False
    return all(n == 1 for n in shape[axes[-1] + 1:])


def lower_reductions(graph_def: Any, *, rows_only: bool = False) -> tuple[Any, list[str]]:
    """``graph_def`` (a copy when anything changes) with every large float32 ``Mean``/``Sum`` of the
    main graph and of the function bodies it reaches split into partial reductions (module docstring),
    and the report lines of the ones it split.

    Args:
        graph_def: the graph a converter is about to read.
        rows_only: split only reductions over the innermost axes (:func:`is_row`), for a runtime that
            keeps TensorFlow's layout (TFLite): there TensorFlow sums a column reduction (kept channels
            inside) in one run itself, so the split would not bring the runtime closer to it, and TFLite's
            kernel is slower on the split form (measured 1.4x on a ``96³×20`` volume).
    """
    from tfopt.emitters.tflite_lower_bodies import lower_reported

    def checked(node: Any, operands: Sequence[Operand]) -> str | None:
        reason = check(node, operands)
        if reason is None and not is_large(operands):
            return f"{node.op} over at most {BLOCK} elements: summed as it is"
        if reason is None and rows_only and not is_row(operands):
            return f"{node.op} with kept axes inside: TensorFlow sums it in one run too (TFLite keeps its layout)"
        return reason

    def lowering(node: Any, _static: Any) -> Lowering:
        return Lowering(node.op, checked, split_reduce, WHAT, constants=(1,))

    graph_def, lowered, _ = lower_reported(graph_def, OPS, lowering)
    return graph_def, lowered
