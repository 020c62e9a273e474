"""Run the original model and a derived one on the same seeded inputs and compare outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfopt.graph import Model
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.testing import OutputDiff, assert_equivalent, random_inputs


def reference_runner(model: Model) -> Any:
    """The original model's runner; a graph without one (a frozen .pb) runs its own GraphDef."""
    return model.reference if model.reference is not None else GraphRunner(model)


def verify_against_reference(original: Model, derived: Model, bindings: Mapping[str, Any], *,
                             atol: float, rtol: float, seed: int = 0, what: str = "the frozen model") -> list[OutputDiff]:
    feeds = random_inputs(derived.inputs, seed=seed, graph_def=derived.graph_def)
    try:
        expected = reference_runner(original)({**feeds, **bindings})
    except Exception as exc:
        raise _random_inputs_rejected(exc, derived, feeds) from exc
    expected = {s.name: expected[s.name] for s in derived.outputs}
    got = GraphRunner(derived)(feeds)
    return assert_equivalent(expected, got, atol=atol, rtol=rtol, what=what)


def _random_inputs_rejected(exc: Exception, model: Model, feeds: Mapping[str, Any]) -> Exception:
    """An integer input whose valid range the graph does not show (ids into a table tfopt cannot
    see, a class index...) can make the original model fail on the random data: say which."""
    from tfopt.errors import TfoptError, VerificationError
    from tfopt.testing import index_bounds

    known = index_bounds(model.graph_def)
    ints = [s for s in model.inputs if s.dtype.startswith(("int", "uint")) and s.name not in known]
    if isinstance(exc, TfoptError) or not ints:
        return exc
    first = " ".join(str(exc).split())[:300]
    drawn = ", ".join(f"'{s.name}' ({s.dtype}, drawn in [0, {int(feeds[s.name].max()) + 1}))" for s in ints)
    return VerificationError(f"the original model fails on tfopt's random verification inputs for {drawn}: "
                             f"{type(exc).__name__}: {first}. Integer inputs are ids or indices whose range tfopt "
                             "cannot see: give real data (convert: --calibration or --eval-data), or skip this "
                             "check with --no-verify")
