"""The values an input may hold, read from the domain-restricted ops it reaches.

A made-up float is standard normal; half of it is negative. An input that goes through ``Sqrt``
(a mass through ``sqrt(m/z)``), ``Log``, ``Rsqrt``, ``Acos``... then gives the original model NaN
and nothing can be verified (issue 24: ionmob's CCS predictors). Each placeholder is followed
forward through ops that keep elementwise meaning, carrying the map from the input ``x`` to the
value ``v`` reached, and each restricted op's domain ``D`` is pulled back to ``x``:

- moving ops (``Identity``, ``Cast``, ``Reshape``, ``ConcatV2``, ``StridedSlice``, ``Enter``...): ``v = x``;
- ``Neg``: ``v = -x``, so ``x ∈ -D``;
- ``x + c``, ``x - c``, ``c - x``, ``x * c``, ``x / c`` with a constant ``c`` of one sign: ``D`` shifted
  or scaled by ``c`` (for an array ``c``, the intersection over its extremes: the preimage of an
  interval under ``x -> a*x + b`` is an interval, and intersecting the ones at ``c_min`` and ``c_max``
  bounds every ``c`` in between);
- any other op ends the walk: what it computes is not an elementwise map of ``x`` tfopt can invert;
- a call into the function library (``While``/``StatelessWhile``, ``If``/``StatelessIf``/``Case``,
  ``PartitionedCall``, a direct call; :mod:`tfopt.graphdef.calls`): the value goes on as the called
  body's argument (input ``i`` -> ``signature.input_arg[i]``; ``If``/``Case``: input 0 selects, input
  ``i`` is argument ``i - 1``), through the body's nodes and nested calls, by the same rules, and the
  domain found there is pulled back through the caller's chain to ``x``.

A ``While`` body sees its loop variables' initial values in the first iteration only: the next one
sees what the body returned (``x -> f(x)``). The walk reads the first iteration: an argument fed a
constant (a loop counter) is that constant there, so ``u * s**i`` scales by ``s**0 = 1``, and small
ops over known values (``Cast``, ``Pow``, ``Mul``, ``Add``...) are folded. Outputs of a body are not
followed back in. The domain found is thus what the first iteration needs (all of them, when the
variable is passed through unchanged): a necessary condition, never a guessed one.

Domains: ``Sqrt`` ``[0, inf)``; ``Log``, ``Rsqrt``, ``Lgamma``, ``Digamma`` and the base of a
``Pow`` whose exponent is not a constant of whole numbers ``(0, inf)`` (``[0, inf)`` when the
constant exponent is positive); ``Log1p`` ``(-1, inf)``; ``Acos``, ``Asin`` ``[-1, 1]``; ``Atanh``
``(-1, 1)``; ``Acosh`` ``[1, inf)``. An input reaching several is held to their intersection (none,
when it is empty). Values are then drawn strictly inside (:func:`draw`). Names play no part.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.graphdef.scopes import Scope
from tfopt.verification.body_scopes import constant, follow

_CARRY = {"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "StridedSlice", "Slice", "Transpose", "Tile",
          "BroadcastTo", "Enter", "Switch", "_SwitchN", "Merge", "ConcatV2", "Concat", "Pack", "ToFloat", "IdentityN",
          "StopGradient", "PreventGradient", "Max", "Min"}  # a reduction's max/min is one of x's values


@dataclass(frozen=True)
class Domain:
    """An interval ``lo..hi`` (``*_open``: the end itself is excluded) and why (``op 'node'``)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = True
    hi_open: bool = True
    why: str = ""

    def __and__(self, other: Domain) -> Domain:
        lo, lo_open = max((self.lo, self.lo_open), (other.lo, other.lo_open))  # equal ends: the open one
        hi, hi_closed = min((self.hi, not self.hi_open), (other.hi, not other.hi_open))
        why = ", ".join(dict.fromkeys(w for d in (self, other) for w in d.why.split(", ") if w))  # each op once
        return Domain(lo, hi, lo_open, not hi_closed, why)

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def text(self) -> str:
        """``(0, inf)``, ``[-1, 1]``."""
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


_POSITIVE = Domain(0.0, math.inf, True)
_NONNEG = Domain(0.0, math.inf, False)
_UNIT = Domain(-1.0, 1.0, False, False)
_DOMAINS = {"Sqrt": _NONNEG, "Rsqrt": _POSITIVE, "Log": _POSITIVE, "Lgamma": _POSITIVE, "Digamma": _POSITIVE,
            "Log1p": Domain(-1.0, math.inf, True), "Acos": _UNIT, "Asin": _UNIT,
            "Atanh": Domain(-1.0, 1.0, True, True), "Acosh": Domain(1.0, math.inf, False)}


def _pow_domain(user: Any, index: int, scope: Scope) -> Domain | None:
    """The base of ``x ** e``: any for whole-number constant ``e``; ``[0, inf)`` for positive ``e``."""
    if index != 0:
        return None
    e = constant(scope, user.input[1])
    if e is not None and e.size and np.all(e == np.round(e)):
        return None
    return _NONNEG if e is not None and e.size and np.all(e > 0) else _POSITIVE


# Pull-back of a domain through one op: op -> f(domain, constant operand, input index) (None: stop).
Pullback = Callable[[Domain, "np.ndarray | None", int], "Domain | None"]


def _affine(d: Domain, scale: float, shift: float) -> Domain:
    """The preimage of ``d`` under ``x -> scale * x + shift`` (``scale != 0``)."""
    ends = sorted([((d.lo - shift) / scale, d.lo_open), ((d.hi - shift) / scale, d.hi_open)], key=lambda e: e[0])
    return Domain(ends[0][0], ends[1][0], ends[0][1], ends[1][1], d.why)


def _every(d: Domain, c: np.ndarray | None, scale: Callable[[float], float],
           shift: Callable[[float], float]) -> Domain | None:
    """The preimage for every element of ``c``: the intersection at its extremes."""
    if c is None or not c.size or not np.all(np.isfinite(c)):
        return None
    ends = [float(c.min()), float(c.max())]
    if any(scale(e) == 0 for e in ends) or (scale(ends[0]) > 0) != (scale(ends[1]) > 0):
        return None  # a scale of both signs (or zero) maps x onto everything
    pre = [_affine(d, scale(e), shift(e)) for e in ends]
    return pre[0] & pre[1]


_PULLBACK: dict[str, Pullback] = {
    "Add": lambda d, c, i: _every(d, c, lambda e: 1.0, lambda e: e),
    "Sub": lambda d, c, i: _every(d, c, lambda e: 1.0 if i == 0 else -1.0, lambda e: -e if i == 0 else e),
    "Mul": lambda d, c, i: _every(d, c, lambda e: e, lambda e: 0.0),
    "RealDiv": lambda d, c, i: _every(d, c, lambda e: 1.0 / e if e else 0.0, lambda e: 0.0) if i == 0 else None,
}
_PULLBACK.update({"AddV2": _PULLBACK["Add"], "BiasAdd": _PULLBACK["Add"], "Div": _PULLBACK["RealDiv"]})


def input_domains(graph_def: Any, names: Any = None) -> dict[str, Domain]:
    """Placeholder name -> the :class:`Domain` its values must keep to (only restricted inputs;
    ``names``: only these placeholders)."""

    main = Scope(graph_def)
    out: dict[str, Domain] = {}
    for node in graph_def.node:
        if node.op not in ("Placeholder", "PlaceholderWithDefault") or (names is not None and node.name not in names):
            continue
        domain = _walk(main, node.name)
        if domain is not None and not domain.empty():
            out[node.name] = domain
    return out


def _walk(main: Scope, start: str) -> Domain | None:
    """The intersection of the pulled-back domains of every restricted op ``start`` reaches, in the
    main graph and in the function bodies it is passed into."""
    found: list[Domain] = []

    # carried: the pull-back from a node's value to the input's, a chain of one-op preimages
    def visit(scope: Scope, user: Any, index: int, chain: list[Callable[[Domain], Domain | None]]) -> tuple[str, Any]:
        own = _pow_domain(user, index, scope) if user.op == "Pow" else _DOMAINS.get(user.op)
        if own is None:
            step = _step(user, index, scope)
            return "on", None if step is None else [*chain, step]
        why = f"{user.op} '{user.name}'{scope.where}"
        pulled = _pull(Domain(own.lo, own.hi, own.lo_open, own.hi_open, why), chain)
        found.extend([pulled] if pulled is not None else [])
        return "end", None

    follow(main, start, [], visit)
    return functools.reduce(operator.and_, found) if found else None


def _pull(domain: Domain, chain: list[Callable[[Domain], Domain | None]]) -> Domain | None:
    current: Domain | None = domain
    for step in reversed(chain):
        current = step(current) if current is not None else None
    return current


def _step(user: Any, index: int, scope: Scope) -> Callable[[Domain], Domain | None] | None:
    """How a domain on ``user``'s value pulls back to its input ``index`` (None: the walk stops)."""
    if user.op in _CARRY:
        return (lambda d: d) if index == 0 or user.op in ("ConcatV2", "Concat", "Pack", "IdentityN") else None
    if user.op == "Neg":
        return lambda d: _affine(d, -1.0, 0.0)
    pullback = _PULLBACK.get(user.op)
    if pullback is None or index not in (0, 1) or len(user.input) < 2:
        return None
    const = constant(scope, user.input[1 - index])
    if const is None:
        return None
    return lambda d: pullback(d, const, index)


def draw(domain: Domain, shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray | None:
    """Values strictly inside ``domain``: uniform in the middle 90% of a bounded interval, else the
    finite end plus ``0.1 + |N(0, 1)|`` (standard-normal magnitudes, like other made-up floats);
    integers in ``[0, 8)`` moved inside. None for dtypes this does not apply to (bool, string)."""
    if dtype.startswith(("int", "uint")):
        lo = math.floor(domain.lo) + 1 if math.isfinite(domain.lo) else -(1 << 30)
        lo = lo if domain.lo_open or lo - 1 != domain.lo else int(domain.lo)
        hi = math.ceil(domain.hi) - 1 if math.isfinite(domain.hi) else 1 << 30
        hi = hi if domain.hi_open or hi + 1 != domain.hi else int(domain.hi)
        a = max(0, lo) if lo <= 7 else lo
        b = min(a + 7, hi)
        return rng.integers(a, b + 1, size=shape).astype(dtype) if a <= b else None
    if not dtype.startswith(("float", "bfloat")):
        return None
    if math.isfinite(domain.lo) and math.isfinite(domain.hi):
        values = domain.lo + (domain.hi - domain.lo) * rng.uniform(0.05, 0.95, size=shape)
    elif math.isfinite(domain.lo):
        values = domain.lo + 0.1 + np.abs(rng.standard_normal(shape))
    elif math.isfinite(domain.hi):
        values = domain.hi - 0.1 - np.abs(rng.standard_normal(shape))
    else:
        return None
    return np.asarray(values).astype("float32" if dtype == "bfloat16" else dtype)


def reasons(graph_def: Any, specs: Any) -> dict[str, str]:
    """Input name -> ``in (0, inf): it reaches Log 'model/Log'``, for the inputs of ``specs``
    (``TensorSpec``s) whose values are restricted (for reports and messages)."""
    if graph_def is None:
        return {}
    domains = input_domains(graph_def, {s.name for s in specs})
    return {name: f"in {d.text()}: it reaches {d.why}" for name, d in domains.items()}

