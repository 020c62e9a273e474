"""The one set of prime helpers (tfopt.graphdef.primes) that verification's probes and the emitters' share,
against a sieve, and the sizes built on them: the probe list and the emitters' far probe size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfopt.emitters.shape_values import FAR_SIZE, far_size
from tfopt.graphdef.primes import is_prime, prime_above, prime_at_most
from tfopt.verification.primes import PRIMES

LIMIT = 5000


def _sieve(n: int) -> list[int]:
    flags = np.ones(n + 1, dtype=bool)
    flags[:2] = False
    for p in range(2, math.isqrt(n) + 1):
        if flags[p]:
            flags[p * p::p] = False
    return [int(p) for p in np.flatnonzero(flags)]


SIEVE = _sieve(LIMIT)


def test_is_prime_is_the_sieve():
    assert [n for n in range(-3, LIMIT + 1) if is_prime(n)] == SIEVE


@pytest.mark.parametrize("n", [-5, 0, 1, 2, 10, 11, 12, 1996, 1999, 4000])
def test_prime_above_and_at_most_bracket_n(n):
    above = prime_above(n)
    assert above == min(p for p in SIEVE if p > n)
    at_most = prime_at_most(n)
    assert at_most == max((p for p in SIEVE if p <= n), default=None)


def test_the_probe_list_and_the_far_size_are_the_shared_helpers():
    assert [p for p in SIEVE if 11 <= p < 2000] == PRIMES
    assert FAR_SIZE == prime_at_most((1 << 16) - 1) == 65521  # the largest prime under 2**16


@pytest.mark.parametrize("shape,per_row", [([-1, 3], 1), ([-1, -1, 8], 1), ([-1, 224, 224, 3], 1), ([-1], 1 << 20),
                                           ([-1, -1, -1], 7), ([5, 7], 1 << 31)])
def test_far_size_is_the_largest_prime_whose_tensors_stay_under_2_31_elements(shape, per_row):
    size = far_size([shape], per_row)

    def fits(n: int) -> bool:
        return math.prod(n if d < 0 else d for d in shape) < 1 << 31 and n * per_row < 1 << 31

    if size == 1:  # none fits
        assert not any(fits(p) for p in (2, 3, 5))
        return
    assert is_prime(size) and size <= FAR_SIZE and fits(size)
    larger = prime_above(size)
    assert larger > FAR_SIZE or not fits(larger)
