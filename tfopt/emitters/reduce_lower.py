"""A large float32 ``Mean``/``Sum`` as a chain of small ones, for ONNX and OpenVINO (TFLite: rows).

A mean over millions of elements (an instance normalisation over a 3-D volume, a global mean) is
summed in float32, and how far a float32 sum is from the exact one depends on its order. Summed in
one run, ``n`` additions round a partial sum that grows to ``n·|x̄|``: the bound is ``γₙ·Σ|xᵢ|``
(``γₙ ≈ n·u``, ``u = 2⁻²⁴``), about ``u·√n`` relative when the rounding errors are random; a tree of
levels of ``nⱼ`` terms each is bounded by ``Σⱼ γ_{nⱼ}``. A normalisation divides the mean's error by
the standard deviation, so it grows with ``|x̄|/σ``, and a network of many normalisations compounds it.

Measured (AMD EPYC Zen 4, ``docs/concepts/reductions.md``): TensorFlow sums a reduction that ends at the
innermost axis (contiguous rows) as a tree, but a column reduction (channels-last spatial axes with
more than one channel) row after row, in one run. ONNX Runtime's ``ReduceMean``, OpenVINO's and
TFLite's ``Mean`` sum in one run too, each in its own order and, for ONNX and OpenVINO, often in another
layout (a 3-D U-Net's activations channels-first). On a ``180×172×86×1`` volume of ``50 + N(0, 1)``
normalised three times, ONNX Runtime and TFLite were 3.8 from TensorFlow and OpenVINO 0.074, with
TensorFlow 2.4e-6 from float64; on pyliverlesionseg's first normalisation (``178×170×86×20``) all
four were about 5.7e-3 from float64.

So before ONNX's and OpenVINO's converters read the graph, a float32 ``Mean``/``Sum`` over more than
:data:`BLOCK` elements becomes a chain of small reductions, spliced under the node's own name by the
shared lowering (:func:`tfopt.emitters.tflite_lower_bodies.lower_reported`: the main graph and every
body it reaches; the axes must be decided by the graph, ``Lowering.constants``). With the reduced
axes static (a kept axis may be dynamic), size-1 axes are dropped and each run of neighbouring reduced
(kept) axes merged, a free reshape; a reduced run of ``n`` elements is written as its factors
``n = n₁·n₂·…`` (:func:`factors`: at most :data:`LEVEL` each, a prime up to :data:`BLOCK` alone, a
larger prime: zeros padded to a multiple of ``LEVEL^k``), and reduced one factor at a time from the
innermost::

    Σᵢ x = Σ_{i₁} Σ_{i₂} … x[i₁, i₂, …]            x̄ = Σᵢ x / n

The levels alternate ``Sum`` and ``Mean`` (:class:`Scale`: converters merge two of one kind in a row,
OpenVINO's ``ReduceMerge`` and TFLite's converter did, undoing the split) and one constant factor
makes the result the op's. A dynamic reduced axis is reduced one axis at a time, unsplit
(``mean(x, [a, b]) = mean(mean(x, [b]), [a])``: every slice has the same count); a single dynamic
axis is left as it is. Error: ``Σⱼ γ_{nⱼ}`` with ``nⱼ ≤ 64`` (``≤ 5·64·u ≈ 2e-5`` worst case for
five levels, measured within 2 ulp of float64), whatever order each level is summed in, plus one
rounding of the factor. Work: the first level reads the tensor once, as the original did, the rest
``1/n₁`` of it; measured faster in ONNX Runtime (its strided and channels-first reductions are slow)
and as fast in OpenVINO.

TFLite keeps TensorFlow's layout, so it gets only reductions that end at the innermost axis
(``rows_only``), where TensorFlow's tree and TFLite's one run differ; a column reduction is summed in
one run by both, and the split form was 1.4x slower in TFLite. Where TensorFlow sums in one run, the
split artifact is closer to the exact result than the original, and differs from it by TensorFlow's
own rounding (pyliverlesionseg: docs/known-limits.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.emitters.tflite_lowering import Lowering, Operand

LEVEL = 64
"""The most elements one partial reduction adds when the length's prime factors allow it."""
BLOCK = 1024
"""A reduction over at most this many elements is left as it is; a prime factor up to it is one level
of its own (a larger one: zero padding, module docstring)."""
OPS = ("Mean", "Sum")
WHAT = "partial reductions of at most 64 elements each (Sum and Mean in turn)"


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
    known = [n for n in sizes if n is not None]
    if len(known) < len(sizes):
        return len(axes) > 1
    return int(np.prod(known)) > BLOCK


def factors(n: int) -> list[int] | None:
    """``n`` as a product of levels: its prime factors packed into factors of at most :data:`LEVEL`
    (first fit, largest first), a prime between :data:`LEVEL` and :data:`BLOCK` alone; ``None`` when
    ``n`` has a prime factor above :data:`BLOCK`."""
    primes, rest, p = [], n, 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    if max(primes, default=1) > BLOCK:
        return None
    bins: list[int] = []
    for prime in sorted(primes, reverse=True):
        fit = next((i for i, b in enumerate(bins) if b * prime <= LEVEL), None)
        if fit is None:
            bins.append(prime)
        else:
            bins[fit] *= prime
    return sorted(bins) or [1]  # the largest innermost: the first level, which reads the whole tensor, shrinks it most


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
    dynamic = any(not isinstance(n, int) for n in out)  # a scalar result ([]) is never stacked: float32
    return [t.reshape(y, t.stack(out) if dynamic else out)]


def _grouped(t: Any, x: Any, axes: list[int], scale: Scale) -> Any:
    """Static reduced axes (one kept axis may be dynamic): size-1 axes dropped, each run of neighbouring
    reduced (kept) axes merged into one (a free reshape: the runtimes' kernels are fastest on it), a
    reduced run longer than LEVEL written as its factors, then one level per factor, innermost first."""
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
    levels: list[tuple[int, int]] = []  # (axis in dims, length)
    pads: list[list[int]] = []
    for n, reduced in groups:
        parts = factors(n) if reduced and n > LEVEL else [n]
        pad = 0
        if parts is None:  # a prime factor above BLOCK: zeros up to a multiple of LEVEL^(levels-1)
            unit = LEVEL
            while unit * LEVEL < n:
                unit *= LEVEL
            pad = -(-n // unit) * unit - n
            parts = factors(n + pad) or [n + pad]  # (n + pad) / unit <= LEVEL: every factor is
        pads.append([0, pad])
        if reduced:
            levels.extend((len(dims) + k, part) for k, part in enumerate(parts))
            scale.whole(n)
        dims.extend(parts)
    y = t.reshape(x, [n for n, _ in groups] or [1])
    if any(p[1] for p in pads):
        y = t.pad(y, pads)
    y = t.reshape(y, dims)
    for axis, length in reversed(levels):  # innermost first: measured fastest in all three runtimes
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

    graph_def, lowered, _ = lower_reported(graph_def, OPS, lambda node, static: reduction_lowering(
        node, static, rows_only=rows_only))
    return graph_def, lowered


def reduction_lowering(node: Any, _static: Any, *, rows_only: bool = False) -> Lowering | None:
    """A ``Mean``/``Sum`` as a ``Lowering`` (``None`` for another op): its check declines a reduction
    :func:`check` refuses, one over at most :data:`BLOCK` elements and, ``rows_only``, one with kept axes
    inside (:func:`lower_reductions`)."""
    if node.op not in OPS:
        return None

    def checked(node: Any, operands: Sequence[Operand]) -> str | None:
        reason = check(node, operands)
        if reason is None and not is_large(operands):
            return f"{node.op} over at most {BLOCK} elements: summed as it is"
        if reason is None and rows_only and not is_row(operands):
            return f"{node.op} with kept axes inside: TensorFlow sums it in one run too (TFLite keeps its layout)"
        return reason

    return Lowering(node.op, checked, split_reduce, WHAT, constants=(1,))
