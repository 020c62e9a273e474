"""Every verification tolerance tfopt applies, in one place.

A check passes when ``|got - expected| <= atol + rtol * max|expected|`` elementwise, ``max`` over
each output's finite values: the tolerance scales with the output's magnitude (a float sum of
terms of size M carries error ~ M·eps in every element, including those that end up near 0), so a
model whose outputs are in the hundreds is not held to 1e-5 absolute (see :func:`tfopt.verification.testing.compare`).

- **Freezing** changes no arithmetic (variables become the same constants): ``1e-5``/``1e-5``,
  with both graphs run as written (grappler off, :func:`tfopt._tf.graph_session`). A session's
  grappler does change arithmetic once weights are constants (BatchNorm scales folded into conv
  weights, fusions): 4.5e-5 on a 66-conv residual network whose frozen graph run as written is
  bit-identical to the Keras model. That rounding is the optimizing stage's to bound, not freezing's.
- **Optimizing** folds BatchNorm into weights and reorders float arithmetic (``W·s`` then conv is
  not conv then ``·s`` bit for bit): ``rtol`` is ``1e-4``.
- **Artifacts** are bounded only at float precisions, by one number used as both ``atol`` and
  ``rtol``: fp32 ``1e-4`` (another runtime's kernels), fp16 ``1e-2`` (10 mantissa bits). Quantized
  artifacts are measured and reported, not bounded: their error is the trade being made (gate it
  with ``--fail-if``).

An absolute bound does not scale: a recurrent model with attention (imspy's Prosit, outputs up to
13.5) differs from its own float64 answer by 2.1e-4 in TensorFlow float32, and ONNX Runtime by
4.2e-4: float32 rounding accumulated over 30 steps, not a conversion defect. The report carries
each artifact's ``scaled_err = max|got - ref| / (1 + max|ref|)`` (worst output), which is at most
``ARTIFACT[precision]`` exactly when the verification's check holds (:func:`scaled_error`).
"""

from __future__ import annotations

FREEZE_ATOL = 1e-5
FREEZE_RTOL = 1e-5
OPTIMIZE_ATOL = 1e-5
OPTIMIZE_RTOL = 1e-4
ARTIFACT = {"fp32": 1e-4, "fp16": 1e-2}


def scaled_error(max_abs_err: float, magnitude: float) -> float:
    """``max|got - ref| / (1 + max|ref|)``: with ``atol == rtol == t`` the check
    ``err <= t + t * max|ref|`` holds exactly when this is ``<= t`` (a bound in the output's units)."""
    return float(max_abs_err) / (1.0 + float(magnitude))
