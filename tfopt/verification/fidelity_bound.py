"""The artifact bound held over every sample the report measures, not only the verification inputs.

Verification runs each artifact on a few inputs (the first :data:`~tfopt.verification.data_batches.DATA_ROWS`
rows of given data, or a made-up batch of 1-2); the report then runs it on every sample it measures
(all of ``--eval-data``, up to 32 calibration samples, or 8 made-up ones). An artifact can be right on
the first and wrong on the others: a float32 ``LOG(1 + EXP(x))`` that saturates past x ~ 88, a float16
graph that overflows past 65504 on one sample only. So the report's outputs are held to the same
check as verification, :func:`tfopt.verification.testing.compare` with ``atol = rtol = ARTIFACT[precision]``
(``|got - ref| <= t + t * max|ref|`` per output, NaN only where the original has NaN), over all its
samples: one bound for one artifact. Its ``fidelity.scaled_err`` is then ``<= t`` for every artifact
kept. An artifact beyond it fails as verification fails (:class:`~tfopt.errors.VerificationError`,
exit 7): removed, recorded in ``failed``, nothing of it written. Not bounded, as in verification:
int8 artifacts, and float artifacts of a quantization-aware model (they quantize). Nor with
``--cluster``/``--prune``: the report measures against the uncompressed model (the cost of the
compression, on purpose), while verification checked each artifact against the compressed one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from tfopt.errors import VerificationError
from tfopt.verification.testing import compare
from tfopt.verification.tolerances import ARTIFACT

KEY = "beyond_bound"  # a report row's record of the first output beyond the bound (popped by the caller)


def artifact_bounds(artifacts: list[Any], quantization_aware: bool, compressed: bool = False) -> dict[str, float]:
    """Artifact path -> the bound verification applied to it (float precisions; none for a QAT model, none
    when ``compressed``: the report's reference is then the uncompressed model, not the one verified against)."""
    if quantization_aware or compressed:
        return {}
    return {a.path: ARTIFACT[a.precision] for a in artifacts if a.precision in ARTIFACT}


def manifest_bounds(manifest: Mapping[str, Any], quantization_aware: bool | None = None) -> dict[str, float]:
    """:func:`artifact_bounds` of the artifacts a ``manifest.json`` lists (``tfopt verify``): QAT and
    compression as the conversion recorded them in its options, or ``quantization_aware`` when given
    (one artifact verified on its own has no recorded options)."""
    from types import SimpleNamespace

    options = manifest.get("options") or {}
    qat = bool(options.get("quantization_aware")) if quantization_aware is None else quantization_aware
    artifacts = [SimpleNamespace(path=a["path"], precision=a["precision"]) for a in manifest["artifacts"]]
    return artifact_bounds(artifacts, qat, compressed=bool(options.get("compression")))


def beyond_bound(expected: Mapping[str, Any], got: Mapping[str, Any], bound: float,
                 unranked: Collection[str] = ()) -> dict[str, Any] | None:
    """The first output of ``got`` beyond ``bound`` over every sample (verification's check), or None."""
    bad = [d for d in compare(expected, got, atol=bound, rtol=bound, unranked=unranked) if not d.ok]
    if not bad:
        return None
    problem = bad[0].problem if not bad[0].problem.startswith("max abs err") else "differs"  # the error follows
    return {"output": bad[0].name, "max_abs_err": bad[0].max_abs_err, "problem": problem or "differs", "bound": bound}


def fidelity_error(row: Mapping[str, Any], samples: int, verified_at: Any) -> VerificationError:
    """The error of a report row that :func:`beyond_bound` marked (``row[KEY]``)."""
    from tfopt.targets import target

    bad = row[KEY]
    runtime = target(row["format"], "format").runtime_name
    where = f", verified at {verified_at.describe()} only" if verified_at is not None else ""
    return VerificationError(
        f"verifying {row['format']} {row['precision']} ({runtime}) against the original model (TensorFlow) on the "
        f"report's {samples} samples{where}: output '{bad['output']}': {bad['problem']} "
        f"(max abs err {bad['max_abs_err']:.3g}, bound {bad['bound']:g}); the artifact is right on the verification "
        "inputs and wrong on other samples; nothing was written")
