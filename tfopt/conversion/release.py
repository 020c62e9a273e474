"""A model with tensors outside its graph (over 2 GB): the original model's numbers recorded before
any artifact is written, then the loaded model released.

The original (a loaded SavedModel, Keras model or checkpoint) holds its variables in memory: for
the 2.2 GB table of issue 28 a Keras export holds it twice (4.4 GB). Kept as the verification
reference, it stays in memory while each converter child runs and while the report opens each
runtime. What the artifacts are compared with is known before they exist: the original's outputs
on the verification inputs (``VerifyInputs.sets()``) and on the report's inputs, and its latency.
:func:`record_and_release` computes those first, then drops every field of the models that runs
the original (:data:`tfopt.conversion.store.LIVE` less ``baseline``), so the frozen graph, whose
large tensors are files, is all that stays. A later step that needs the original again (a failed
bound's reproducibility check) runs the frozen graph, which freezing verified against it. Those runs of
the original are held to ``--verify-timeout`` as verification's are (:mod:`tfopt.verification.deadline`).
"""

from __future__ import annotations

import gc
from typing import Any

from tfopt.graph import Model

RELEASED = ("reference", "variable_values", "keepalive")  # the Model fields that hold the original model


def releasable(p: Any, prepared: Any) -> bool:
    """Whether the original of ``prepared`` (a ``Prepared`` of plan ``p``) is recorded and released:
    a model with external tensors, verified, without tfopt's int8 engine (which runs the original
    while it searches, so the original is kept)."""
    return prepared.portable.external is not None and p.options.freeze.verify and prepared.int8 is None


def record_and_release(p: Any, prepared: Any, loaded: Model | None = None) -> bool:
    """For a model with external tensors, verified (``p``: a ``ConvertPlan``; ``prepared``: its
    ``Prepared``): the original's outputs on every verification input set
    (``prepared.reference_outputs``) and the report's part (``prepared.report_reference``), then
    :data:`RELEASED` cleared on ``prepared``'s models and on ``loaded`` (the model the caller loaded
    and handed over, changed in place). Returns whether the original was released."""
    from tfopt.conversion.parts import ReferenceOutputs
    from tfopt.verification.deadline import verify_timeout

    portable = prepared.portable
    if not releasable(p, prepared) or all(getattr(portable, name) is None for name in RELEASED):
        return False
    reference = prepared.reference_outputs or ReferenceOutputs(portable)
    with verify_timeout(p.options.freeze.verify_timeout):  # the bound of the original's runs, as in verifying
        for inputs_at in prepared.verified_at.sets() if prepared.verified_at is not None else []:
            reference(inputs_at)
        prepared.report_reference = prepared.report_reference or _record_report(p, prepared)
    cleared = dict.fromkeys(RELEASED)
    prepared.portable, prepared.runtime = portable.replace(**cleared), prepared.runtime.replace(**cleared)
    for model in [loaded] if loaded is not None else []:
        for name in RELEASED:
            setattr(model, name, None)
    reference.release(prepared.portable)
    prepared.reference_outputs = reference
    gc.collect()  # TensorFlow's function objects hold the variables in reference cycles
    return True


def record_given_data(p: Any, prepared: Any) -> None:
    """With given data (``--eval-data``, else calibration samples) and verification on: the report's
    part of the original (``prepared.report_reference``) recorded before any artifact is built, so a
    sample the original does not run on stops the conversion with its typed error
    (:func:`tfopt.report.measure.record_reference`: the option, the sample, TensorFlow's node) before
    every target is converted, not after. The report measures the artifacts on these numbers."""
    from tfopt.verification.deadline import verify_timeout

    if prepared.report_reference is not None or not p.options.freeze.verify or \
            not (p.options.report.eval_data or prepared.samples):
        return
    with verify_timeout(p.options.freeze.verify_timeout):  # timed by the report, once the converters are idle
        prepared.report_reference = _record_report(p, prepared, timed=False)


def _record_report(p: Any, prepared: Any, timed: bool = True) -> Any:
    from tfopt.conversion.stages import inputs_of
    from tfopt.report.build import record_original

    r, portable = p.options.report, prepared.portable
    return record_original(portable, eval_data=inputs_of(p, prepared).eval(portable.inputs), samples=prepared.samples,
                           seed=r.seed, runs=r.report_runs, verified_at=prepared.verified_at,
                           allow_nonfinite=r.allow_nonfinite, timed=timed)
