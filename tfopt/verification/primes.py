"""The primes the shape search and the made-up inputs probe with: a size that is a prime no other
dimension has shows, in TensorFlow's answer, which dimension it came from (the prime helpers themselves:
:mod:`tfopt.graphdef.primes`, which the emitters' probes share)."""

from __future__ import annotations

from tfopt.graphdef.primes import is_prime

PRIMES = [p for p in range(11, 2000) if is_prime(p)]
"""The probe primes from 11 (below it, kernel sizes and channel counts share the values)."""
