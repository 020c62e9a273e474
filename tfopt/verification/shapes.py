"""Which unknown input dimensions the graph ties together, found by asking TensorFlow.

A made-up shape that sets axis 0 of every input to the batch fails every time-major model: a TF1
``dynamic_rnn`` over ``inputs [time, batch, 80]`` asserts that ``seq_lengths [batch]`` and the state
``[1, batch, 896]`` share ``inputs``' axis 1. Ties are found by structure, not by position or name:

1. Every unknown dimension of every input gets its own symbol, fed as a distinct prime that appears
   nowhere else in the graph (11, 13, 17, ...; no probe when an input would pass ``PROBE_BUDGET``).
2. The original model runs on them. When it refuses, TensorFlow's message names the sizes that
   disagree: a runtime shape assertion ("Expected shape ... is [41] but saw shape: [43]"), a
   ``ConcatV2``/``MatMul``/elementwise op inside a loop ("shape[0] = [41,80] vs. shape[1] =
   [47,16]"), or, when the run's message names fewer than two symbols, TensorFlow's static shape
   inference on the graph with those input shapes ("Dimensions must be equal, but are 41 and 43";
   "... 41 and 80" fixes a symbol to the known 80). Exactly two symbols in one message are one tie:
   their classes merge (union-find) and the probe runs again, at most once per symbol. A refusal that
   names no probe (a deep residual conv's crops do not fit 13) is probed once more with the classes
   past the batch at primes > ``LARGE_PROBE``; a *derived* dimension: :mod:`tfopt.verification.derived_ties`.
   A *product* tie: TensorFlow names one symbol and a size that is the product of two or more other
   symbols ("Length of seq_lengths != input.dims(0), (23 vs. 143)" with 143 = 11 x 13: per-word
   lengths of ``[batch, words, chars]`` reshaped to ``[batch*words, chars]``). The primes are distinct,
   so the factors are unique; that class is then sized as the product of its factors' classes
   (batch outermost, as a row-major reshape of ``[batch, ...]`` lays the samples out).
   A *split* tie (:mod:`tfopt.verification.split_ties`): a ``Split`` of the probed axis into N parts
   (multi-GPU towers) makes its class a multiple of N, a ``SplitV`` of constant sizes or an ``Unpack``
   fixes it. A graph with one unknown dimension is probed only when it holds such a node; a probe
   past the element budget asks TensorFlow's shape inference alone (nothing runs).
3. The *batch* is the class spanning the most inputs (a state ``[1, batch, n]`` meets a time-major
   sequence on its axis 1), else the one holding the first input's *leading* axis; another class
   holding a leading axis is a batch too unless it shares an input with that one (a time-major input's
   time is not). An input's leading axis is the one its structure names (:attr:`TensorSpec.batch_axis`,
   :mod:`tfopt.graphdef.batch_axis`: a lone time-major ``x [time, batch, n]``'s 1), else axis 0; among
   classes spanning as many inputs, the one the structure names wins.

Shapes for a search size ``n`` then give every batch class the batch size, every fixed class its size
and every other class ``n``: ``inputs n x 2 x 80, seq_lengths 2, state 1 x 2 x 896``. A class that must
be a multiple of m takes m times that (a batch of 2 over 3 towers is 6 rows; one sample is 3 rows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import TensorSpec
from tfopt.verification.derived_ties import DerivedTie, derived_sizes, learn_derived
from tfopt.verification.primes import PRIMES as _PRIMES
from tfopt.verification.split_ties import SplitTie, count_splits, split_tie
from tfopt.verification.tf_errors import plain

Dim = tuple[str, int]  # (input name, axis)
PROBE_BUDGET = 1 << 20  # elements per input at the probe's sizes: a 3-D volume of primes stays small
LARGE_PROBE = 1000  # a second probe's sizes past the batch: a deep residual conv refuses 13 (its crops)
_STATIC = re.compile(r"Dimensions must be equal, but are (\d+) and (\d+)")
_INT = re.compile(r"(?<![\w.:/'\"-])(\d+)(?![\w.'\"])")


class DimTies:
    """Unknown input dimensions grouped into classes that must be equal (a union-find)."""

    def __init__(self, specs: Sequence[TensorSpec]):
        self.specs = list(specs)
        self.parent: dict[Dim, Dim] = {(s.name, a): (s.name, a) for s in specs if s.shape is not None
                                       for a, d in enumerate(s.shape) if d is None}
        self.fixed: dict[Dim, int] = {}  # class root -> the known size it is tied to
        self.products: dict[Dim, tuple[Dim, ...]] = {}  # class root -> the dims whose sizes multiply to it
        self.multiples: dict[Dim, int] = {}  # class root -> its size is a multiple of this (a split into towers)
        self.derived: dict[Dim, DerivedTie] = {}  # class root -> the op whose other operand sizes it
        self.graph = b""  # the serialized graph once a dimension is derived (its sizes need shape inference);
        # bytes, not a GraphDef, so that the fleet's cache stores the ties as data

    @classmethod
    def from_shapes(cls, specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]]) -> DimTies:
        """Ties read from shapes the model answered: unknown dims of equal size are one class."""
        ties = cls(specs)
        by_size: dict[int, Dim] = {}
        for dim in ties.parent:
            size = int(shapes[dim[0]][dim[1]])
            ties.union(dim, by_size.setdefault(size, dim))
        return ties

    def find(self, dim: Dim) -> Dim:
        while self.parent[dim] != dim:
            self.parent[dim] = self.parent[self.parent[dim]]
            dim = self.parent[dim]
        return dim

    def union(self, a: Dim, b: Dim) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[rb] = ra
        if rb in self.fixed:
            self.fixed.setdefault(ra, self.fixed.pop(rb))
        if rb in self.products:
            self.products.setdefault(ra, self.products.pop(rb))
        if rb in self.multiples:
            self.multiples[ra] = math.lcm(self.multiples.get(ra, 1), self.multiples.pop(rb))
        return True

    def free(self, root: Dim) -> bool:
        """Whether class ``root`` takes a size of its own (neither fixed, a product nor derived)."""
        return root not in self.fixed and root not in self.products and root not in self.derived

    def factors(self, root: Dim) -> list[Dim]:
        """The class roots whose sizes multiply to product class ``root``, outermost first: the batch
        first, as a row-major reshape of ``[batch, words, ...]`` to ``[batch*words, ...]`` lays it out."""
        batch = self.batch_roots()
        return sorted((self.find(d) for d in self.products[root]), key=lambda r: r not in batch)

    def classes(self) -> dict[Dim, list[Dim]]:
        out: dict[Dim, list[Dim]] = {}
        for dim in self.parent:
            out.setdefault(self.find(dim), []).append(dim)
        return out

    def batch_roots(self) -> set[Dim]:
        """The batch classes (see the module docstring, step 3)."""
        classes = self.classes()
        spans = {r: {n for n, _ in dims} for r, dims in classes.items()}
        said = {(s.name, s.batch_axis) for s in self.specs if s.batch_axis is not None}
        first = {s.name: s.batch_axis if s.batch_axis is not None else 0 for s in self.specs}
        leading = [r for r, dims in classes.items() if any(a == first[n] for n, a in dims) and self.free(r)]
        shared = [r for r in classes if len(spans[r]) > 1 and self.free(r)]
        if not leading and not shared:
            return set()
        order = {s.name: i for i, s in enumerate(self.specs)}
        best = max(leading + shared, key=lambda r: (len(spans[r]), bool(said & set(classes[r])), r in leading,
                                                    -min(order[n] + a for n, a in classes[r])))
        best_inputs = {n for n, _ in classes[best]}
        return {best} | {r for r in leading if not {n for n, _ in classes[r]} & best_inputs}

    def shapes(self, batch: int | None, size: int | Mapping[Dim, int]) -> dict[str, tuple[int, ...]]:
        """Every input's shape: batch classes ``batch``, fixed classes their size, others ``size``
        (an int, or a size per class root; with ``batch`` None, batch classes too)."""
        batch_roots = self.batch_roots()
        out = {}
        for spec in self.specs:
            dims = spec.shape if spec.shape is not None else (None,)
            out[spec.name] = tuple(d if d is not None else self._size((spec.name, a), batch_roots, batch, size)
                                   for a, d in enumerate(dims))
        sized = derived_sizes(self.graph, self.specs, out, {d: self.derived[self.find(d)] for d in self.parent
                                                                if self.find(d) in self.derived}) if self.derived else {}
        return {n: tuple(sized.get((n, a), d) for a, d in enumerate(shape)) for n, shape in out.items()}

    def _size(self, dim: Dim, batch_roots: set[Dim], batch: int | None, size: int | Mapping[Dim, int]) -> int:
        if dim not in self.parent:  # an input of unknown rank: fed as a vector of the batch
            return batch if batch is not None else 2
        root = self.find(dim)
        if root in self.fixed:
            return self.fixed[root]
        if root in self.products:
            return int(np.prod([self._size(f, batch_roots, batch, size) for f in self.factors(root)]))
        if root in self.derived:  # sized by shape inference once the other inputs are (:meth:`shapes`); 0
            return 0  # where it cannot size it: refused, where 1 would broadcast against any length
        unit = self.multiples.get(root, 1)
        if root in batch_roots and batch is not None:
            return batch * unit
        value = size if isinstance(size, int) else size[root]
        return value if value % unit == 0 else value * unit  # a probe prime stays a factor of its size

    def sample_rows(self) -> int:
        """Rows of one sample on a batch axis: the towers a split cuts the batch into (1 without)."""
        return math.lcm(1, *(self.multiples.get(r, 1) for r in self.batch_roots()))

    def other_sizes(self, shapes: Mapping[str, Sequence[int]]) -> list[int]:
        """The sizes of the non-batch, unfixed classes in ``shapes``."""
        batch_roots = self.batch_roots()
        return sorted({int(shapes[r[0]][r[1]]) for r in self.classes() if r not in batch_roots and self.free(r)})

    def example(self, batch: int) -> str:
        """``--verify-shape`` arguments that keep the ties: ``inputs:Nx2x80 seq_lengths:2``; each
        free class a letter (N, M, K, ...), the batch its size, a product its factors side by side
        (``char_lens:2N`` for ``batch x words``)."""
        letters = iter("NMKLPQRSTUVW")
        batch_roots = self.batch_roots()
        names = {root: f"{self.multiples.get(root, '')}{next(letters, 'N')}"
                 for root in self.classes() if root not in batch_roots and (self.free(root) or root in self.derived)}

        def text(root: Dim) -> str:
            if root in self.products:
                parts = [text(f) for f in self.factors(root)]
                numbers = [int(p) for p in parts if p.isdigit()]
                return (str(int(np.prod(numbers))) if numbers else "") + "".join(p for p in parts if not p.isdigit())
            return names[root] if root in names else str(self._size(root, batch_roots, batch, 0))

        parts = []
        for spec in self.specs:
            dims = spec.shape if spec.shape is not None else (None,)
            shape = [str(d) if d is not None else str(batch) if (spec.name, a) not in self.parent
                     else text(self.find((spec.name, a))) for a, d in enumerate(dims)]
            parts.append(f"{spec.name}:{'x'.join(shape)}")
        return " ".join(parts)

    def learn(self, message: str, symbols: Mapping[int, Dim]) -> bool:
        """Merge the two classes ``message`` names, or record a product tie (see the module
        docstring, step 2); False when it names no tie."""
        static = _STATIC.search(message)
        if static:
            a, b = (int(v) for v in static.groups())
            if a in symbols and b in symbols:
                return self.union(symbols[a], symbols[b])
            if (a in symbols) != (b in symbols):
                symbol, other = (a, b) if a in symbols else (b, a)
                if self.product(symbols[symbol], other, symbols):
                    return True
                root = self.find(symbols[symbol])
                if not self.free(root) or _probe_factors(other, symbols):  # a product of probes is no known size
                    return False
                self.fixed[root] = other
                return True
            return False
        ints = {int(v) for v in _INT.findall(plain(message))}
        named = sorted(ints & set(symbols))
        if len(named) == 1:
            return any(self.product(symbols[named[0]], v, symbols) for v in sorted(ints - set(symbols)))
        return len(named) == 2 and self.union(symbols[named[0]], symbols[named[1]])

    def learn_split(self, tie: SplitTie | None, symbols: Mapping[int, Dim]) -> bool:
        """Record what a split of a probed axis needs (:mod:`tfopt.verification.split_ties`): the one
        probe that divides the size it saw (``k`` probes of it when the axis holds ``k x`` the
        dimension) becomes a multiple of ``N / gcd(N, k)``, or is fixed to ``S / k``."""
        found = [(dim, tie.size // value) for value, dim in symbols.items() if tie.size % value == 0] if tie else []
        if tie is None or len(found) != 1 or not self.free(self.find(found[0][0])):
            return False
        root, k = self.find(found[0][0]), found[0][1]
        if tie.exactly is not None:
            if tie.exactly % k:
                return False
            self.fixed[root] = tie.exactly // k
            self.multiples.pop(root, None)
            return True
        need = math.lcm(self.multiples.get(root, 1), tie.multiple // math.gcd(tie.multiple, k))
        if need == self.multiples.get(root, 1):
            return False
        self.multiples[root] = need
        return True

    def learn_failure(self, message: str, shapes: Mapping[str, Sequence[int]], graph_def: Any) -> bool:
        """A split tie from a refusal at made-up ``shapes`` (not probes): each class is known by its
        size there where no other free class has that size (the batch of 2 among sizes of 8)."""
        sizes: dict[int, list[Dim]] = {}
        for root in self.classes():
            if self.free(root):
                sizes.setdefault(int(shapes[root[0]][root[1]]), []).append(root)
        return self.learn_split(split_tie(message, graph_def), {v: r[0] for v, r in sizes.items() if len(r) == 1})

    def product(self, dim: Dim, value: int, symbols: Mapping[int, Dim]) -> bool:
        """Record that ``dim``'s class is the product of the symbols ``value`` factors into (two or
        more distinct probe primes, none of them ``dim``'s own); False when it does not factor so."""
        factors = _probe_factors(value, symbols)
        root = self.find(dim)
        roots = {self.find(f) for f in factors}
        if not factors or root in roots or not self.free(root):
            return False
        self.products[root] = tuple(factors)
        return True


def _probe_factors(value: int, symbols: Mapping[int, Dim]) -> list[Dim]:
    """The dims of the two or more distinct probe primes whose product is ``value`` ([] if none)."""
    factors: list[Dim] = []
    for prime in sorted(symbols):
        if value % prime == 0:
            factors.append(symbols[prime])
            value //= prime
    return factors if value == 1 and len(factors) >= 2 else []


def batch_axes(specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]],
               ties: DimTies | None = None) -> dict[str, int | None]:
    """Input name -> the axis that holds its samples in ``shapes`` made up by :func:`DimTies.shapes`
    (None for one holding no batch dimension, fed whole: an input whose shape the graph fixes, such as
    ``[300, 400]`` or ``[1, 224, 224, 3]``, takes no other batch, nor one whose axis 0 is static and no
    batch class was found, such as a time-major ``[5, None, 4]``; 0 for one of unknown rank).

    With the search's ``ties``, an axis sized ``batch x k`` (a product tie whose outermost factor is
    the batch) holds the samples too, ``k`` rows each (:func:`cut_sample`)."""
    ties = ties if ties is not None else DimTies.from_shapes(specs, shapes)
    roots = ties.batch_roots()
    out: dict[str, int | None] = {}
    for spec in specs:
        mine = sorted(((a, ties.find((n, a))) for (n, a) in ties.parent if n == spec.name),
                      key=lambda ar: ar[0] != spec.batch_axis)  # the structure's axis first (T == B)
        batch = [a for a, r in mine if r in roots] + [a for a, r in mine if r in ties.products
                                                       and ties.factors(r)[0] in roots]
        fixed = spec.shape is not None and all(ties.find((spec.name, a)) in ties.fixed for a, _ in mine)
        # a static axis 0 ([time, batch, features] with the time fixed) holds no samples: fed whole
        static_first = bool(spec.shape) and spec.shape[0] is not None and not spec.batch_axis  # type: ignore[index]
        out[spec.name] = batch[0] if batch else None if (mine and roots) or fixed or static_first else 0
    return out


def sample_count(feeds: Mapping[str, np.ndarray], axes: Mapping[str, int | None], rows: int = 1) -> int:
    """How many samples ``feeds`` hold: the shortest batch axis (an axis of ``batch x k`` rows, a
    product tie, is longer) over ``rows`` a sample (:meth:`DimTies.sample_rows`); 1 when every input
    is fed whole."""
    return min((int(np.shape(feeds[k])[a]) // rows for k, a in axes.items() if a is not None), default=1)


def cut_sample(value: np.ndarray, axis: int | None, i: int, rows: int) -> np.ndarray:
    """Sample ``i`` of ``rows`` in ``value``: index ``i`` on ``axis``; where the axis holds
    ``rows x k`` entries (a product tie, batch outermost), the run ``[i*k, (i+1)*k)``; all of it
    when ``axis`` is None."""
    if axis is None:
        return value
    k = np.shape(value)[axis] // rows if rows else 1
    return np.take(value, range(i * k, (i + 1) * k) if k > 1 else [i], axis=axis)


def split_samples(specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray],
                  ties: DimTies | None = None) -> list[dict[str, np.ndarray]]:
    """Made-up ``feeds`` as batch-1 samples, each input cut on its batch axis (:func:`batch_axes`,
    :func:`cut_sample`)."""
    axes = batch_axes(specs, {k: np.shape(v) for k, v in feeds.items()}, ties)
    rows = sample_count(feeds, axes, ties.sample_rows() if ties is not None else 1)
    return [{k: cut_sample(v, axes.get(k, 0), i, rows) for k, v in feeds.items()} for i in range(rows)]


def find_ties(run: Callable[[Mapping[str, Any]], Any], specs: Sequence[TensorSpec], graph_def: Any,
              feeds_at: Callable[[Mapping[str, Sequence[int]]], Mapping[str, Any]]) -> DimTies:
    """Probe the original model (``run``) at distinct prime sizes until it answers or names no tie.

    Args:
        run: the original model on feeds.
        specs: its inputs.
        graph_def: the graph (for static shape inference and the constants primes avoid; may be None).
        feeds_at: made-up feeds for given shapes.
    """
    ties = DimTies(specs)
    splits = count_splits(graph_def)
    if len(ties.parent) < (1 if splits else 2):
        return ties
    taken = _graph_ints(graph_def) | {d for s in specs for d in (s.shape or ()) if d is not None}
    primes = [p for p in _PRIMES if p not in taken]
    big = False  # a refusal that names no probe: the probe's sizes were too small for the net
    for _ in range(len(ties.parent) + min(splits, 8) + 1):
        roots, batch = [r for r in ties.classes() if ties.free(r)], ties.batch_roots() if big else set()
        small, large = iter(primes), iter(p for p in primes if p > LARGE_PROBE)
        symbol_of = {r: next(large if big and r not in batch else small) * ties.multiples.get(r, 1) for r in roots}
        shapes = ties.shapes(None, symbol_of)
        symbols = {v: r for r, v in symbol_of.items()}
        if all(np.prod(shape) <= PROBE_BUDGET for shape in shapes.values()):
            try:
                run(feeds_at(shapes))
                return ties
            except Exception as exc:  # a refusal names the sizes that disagree
                message = str(exc)
            if (ties.learn_split(split_tie(message, graph_def), symbols)
                    or learn_derived(ties, message, symbols, graph_def, shapes) or ties.learn(message, symbols)):
                continue
        static = static_problem(graph_def, specs, shapes) if graph_def is not None else ""
        if not static or not (ties.learn_split(split_tie(static, graph_def), symbols) or ties.learn(static, symbols)):
            if big:
                return ties
            big = True  # once more past the batch at primes > LARGE_PROBE
    return ties


def static_problem(graph_def: Any, specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]]) -> str:
    """TensorFlow's shape-inference error for ``graph_def`` with inputs of ``shapes`` ("" if none)."""
    from tfopt._tf import GraphFacts
    from tfopt.graph import with_input_shapes

    g = with_input_shapes(graph_def, {s.name: shapes.get(s.name) for s in specs}, ops=("Placeholder",))
    try:
        GraphFacts(g)
    except Exception as exc:
        return str(exc)
    return ""


def _graph_ints(graph_def: Any) -> set[int]:
    """Small integers the graph holds (shape constants, attrs): a prime among them is no symbol."""
    out: set[int] = set()
    if graph_def is None:
        return out
    for node in graph_def.node:
        if node.op == "Const":
            tensor = node.attr["value"].tensor
            out.update(int(d.size) for d in tensor.tensor_shape.dim)
            out.update(int(v) for v in list(tensor.int_val)[:64] + list(tensor.int64_val)[:64])
            if tensor.dtype in (3, 9) and 0 < len(tensor.tensor_content) <= 512:  # int32 / int64 content
                out.update(int(v) for v in np.frombuffer(tensor.tensor_content,
                                                         np.int32 if tensor.dtype == 3 else np.int64))
        for key in ("shape", "_output_shapes"):
            if key in node.attr:
                shape_list = node.attr[key].list.shape if key == "_output_shapes" else [node.attr[key].shape]
                out.update(int(d.size) for s in shape_list for d in s.dim)
    return out
