"""Optimize a frozen model: the registered passes to a fixed point, then TF-runtime-only fusion.

Two models come out: the *portable* one (folded, unfused: what TFLite, ONNX and OpenVINO read)
and the *runtime* one (plus Grappler's ``_Fused*`` ops: the frozen ``.pb`` / serving SavedModel).
Both are verified against the original model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt.graph import Model, op_histogram
from tfopt.passes import PassStats, registry, run_passes, select_passes
from tfopt.verification.testing import OutputDiff
from tfopt.verification.tolerances import OPTIMIZE_ATOL, OPTIMIZE_RTOL

DEFAULT_ATOL = OPTIMIZE_ATOL  # (see tfopt.verification.tolerances)
DEFAULT_RTOL = OPTIMIZE_RTOL
REAL_INPUTS = ("eval-data", "calibration")  # tfopt.verification.verify_inputs.VerifyInputs.source of real data


@dataclass
class OptimizeReport:
    passes: list[PassStats] = field(default_factory=list)
    nodes_before: int = 0
    nodes_portable: int = 0
    nodes_runtime: int = 0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    verification: dict[str, list[OutputDiff]] = field(default_factory=dict)

    def skips(self) -> list[tuple[str, str]]:
        return [(p.name, str(s)) for p in self.passes for s in p.skips]

    def as_dict(self) -> dict[str, Any]:
        return {"nodes_before": self.nodes_before, "nodes_portable": self.nodes_portable,
                "nodes_runtime": self.nodes_runtime, "ops_before": self.ops_before, "ops_after": self.ops_after,
                "passes": [p.as_dict() for p in self.passes],
                "verification": {k: [d.__dict__ for d in v] for k, v in self.verification.items()}}


def optimize(frozen: Model, *, passes: str | Sequence[str] = "default", skip: Sequence[str] = (),
             grappler: Sequence[str] | None = None, verify: bool = True, atol: float = DEFAULT_ATOL,
             rtol: float = DEFAULT_RTOL, seed: int = 0, verified_at: Any = None,
             fit_data: Mapping[str, Any] | None = None) -> tuple[Model, Model, OptimizeReport]:
    """Run the selected passes on a frozen model.

    Args:
        frozen: from :func:`tfopt.freeze`.
        passes: ``"default"``, ``"none"``, a comma-separated string or a list of pass names.
        skip: pass names to leave out.
        grappler: Grappler optimizers to run offline after tfopt's passes (``["constfold", ...]``).
        verify: compare both results with the original model on seeded inputs.
        verified_at: the :class:`tfopt.verification.verify_inputs.VerifyInputs` freezing was verified on (default:
            chosen again, see :mod:`tfopt.verification.verify`).
        fit_data: real rows the lossy passes fit on (calibration, else eval rows: more than the few every stage
            is verified on); default: ``verified_at``'s rows when they are real.

    Returns:
        ``(portable, runtime, report)``.

    Raises:
        OptionError: an unknown pass or Grappler optimizer.
        VerificationError: an optimized model's outputs differ beyond ``atol``/``rtol``.
    """
    from tfopt.passes.fuse_activation import Grappler

    chosen = registry.build(select_passes(passes, skip))
    if grappler:
        chosen.append(Grappler(list(grappler)))
    portable_passes = [p for p in chosen if not p.tf_runtime_only and not p.lossy]
    runtime_passes = [p for p in chosen if p.tf_runtime_only and not p.lossy]
    lossy_passes = [p for p in chosen if p.lossy]
    report = OptimizeReport(nodes_before=len(frozen.graph_def.node), ops_before=op_histogram(frozen.graph_def))
    portable, stats = run_passes(frozen, portable_passes) if portable_passes else (frozen, [])
    runtime, runtime_stats = run_passes(portable, runtime_passes, max_iterations=1) if runtime_passes else (portable, [])
    report.passes = stats + runtime_stats
    report.nodes_portable = len(portable.graph_def.node)
    report.nodes_runtime = len(runtime.graph_def.node)
    report.ops_after = op_histogram(runtime.graph_def)
    if verify:
        from tfopt.verification.verify import verify_against_reference

        bindings = frozen.bindings if frozen.reference is not None else {}
        for label, model in (("portable", portable), ("runtime", runtime)):
            if label == "runtime" and runtime is portable:
                continue
            report.verification[label] = verify_against_reference(
                frozen, model, bindings, atol=atol, rtol=rtol, seed=seed, inputs=verified_at,
                what=f"the optimized ({label}) model", stage="optimizing")
    if lossy_passes:
        portable, runtime = _lossy(portable, runtime, lossy_passes, runtime_passes, report, verify=verify, atol=atol,
                                   rtol=rtol, seed=seed, inputs=verified_at, fit_data=fit_data)
    return portable, runtime, report


def _lossy(portable: Model, runtime: Model, lossy: Sequence[Any], runtime_passes: Sequence[Any],
           report: OptimizeReport, *, verify: bool, atol: float, rtol: float, seed: int,
           inputs: Any = None, fit_data: Mapping[str, Any] | None = None) -> tuple[Model, Model]:
    """Passes that change the numbers on purpose (``cluster_weights``), once, after the exact ones
    were verified. Their result is the new reference: the TF-runtime graph is fused again from it
    (and checked against it), and artifacts are verified against it. They see the real inputs the
    stages are verified on (``--eval-data``/``--calibration`` rows), or ``fit_data`` (calibration, else
    eval rows) when given; never made-up ones."""
    real = inputs is not None and getattr(inputs, "source", None) in REAL_INPUTS
    for p in lossy:
        p.data = dict(fit_data) if fit_data is not None else inputs.feeds if real else None
    changed, stats = run_passes(portable, lossy, max_iterations=1)
    report.passes += [s for s in stats if s.skips or changed is not portable]  # silent when it had nothing to do
    if changed is portable:
        return portable, runtime
    changed = changed.replace(reference=None)  # its own graph is now what artifacts must match
    if runtime is portable:
        return changed, changed
    fused, _ = run_passes(changed, runtime_passes, max_iterations=1)
    if verify:
        from tfopt.verification.verify import verify_against_reference

        report.verification["runtime (after lossy passes)"] = verify_against_reference(
            changed, fused, {}, atol=atol, rtol=rtol, seed=seed, inputs=inputs,
            what="the optimized (runtime) model", stage="optimizing")
    return changed, fused
