"""The primes the shape search and the made-up inputs probe with: a size that is a prime no other
dimension has shows, in TensorFlow's answer, which dimension it came from."""

from __future__ import annotations

import itertools
import math

PRIMES = [p for p in range(11, 2000) if all(p % q for q in range(2, math.isqrt(p) + 1))]
"""The probe primes from 11 (below it, kernel sizes and channel counts share the values)."""


def prime_above(n: int) -> int:
    """The smallest prime greater than ``n``."""
    return next(p for p in itertools.count(n + 1) if p > 1 and all(p % q for q in range(2, math.isqrt(p) + 1)))
