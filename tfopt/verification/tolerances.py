"""Every verification tolerance tfopt applies, in one place.

A check passes when ``|got - expected| <= atol + rtol * max|expected|`` elementwise, ``max`` over
each output's finite values: the tolerance scales with the output's magnitude (a float sum of
terms of size M carries error ~ M·eps in every element, including those that end up near 0), so a
model whose outputs are in the hundreds is not held to 1e-5 absolute (see :func:`tfopt.verification.testing.compare`).

- **Freezing** changes no arithmetic (variables become the same constants): ``1e-5``/``1e-5``.
- **Optimizing** folds BatchNorm into weights and reorders float arithmetic (``W·s`` then conv is
  not conv then ``·s`` bit for bit): ``rtol`` is ``1e-4``.
- **Artifacts** are bounded only at float precisions, by one number used as both ``atol`` and
  ``rtol``: fp32 ``1e-4`` (another runtime's kernels), fp16 ``1e-2`` (10 mantissa bits). Quantized
  artifacts are measured and reported, not bounded: their error is the trade being made (gate it
  with ``--fail-if``).
"""

from __future__ import annotations

FREEZE_ATOL = 1e-5
FREEZE_RTOL = 1e-5
OPTIMIZE_ATOL = 1e-5
OPTIMIZE_RTOL = 1e-4
ARTIFACT = {"fp32": 1e-4, "fp16": 1e-2}
