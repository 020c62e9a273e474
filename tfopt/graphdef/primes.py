"""Prime sizes for probing a graph's open dimensions: fed a prime that no other size shares, a dimension shows
in TensorFlow's answer (a shape, an error message) which input dimension it came from, and a size computed from
it (``batch // 4``, a padding to a multiple of 128) differs from the one at small sizes. Shared by the layers
that probe: verification's shape search and made-up inputs (:mod:`tfopt.verification.primes` holds their probe
list) and the emitters' shape probes (:func:`tfopt.emitters.shape_values.far_size`)."""

from __future__ import annotations

import itertools
import math


def is_prime(n: int) -> bool:
    """Whether ``n`` is a prime (trial division: the sizes probed stay below 2**16)."""
    return n > 1 and all(n % q for q in range(2, math.isqrt(n) + 1))


def prime_above(n: int) -> int:
    """The smallest prime greater than ``n``."""
    return next(p for p in itertools.count(max(n + 1, 2)) if is_prime(p))


def prime_at_most(n: int) -> int | None:
    """The largest prime not greater than ``n``; ``None`` when there is none (``n < 2``)."""
    return next((p for p in range(n, 1, -1) if is_prime(p)), None)
