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
    feeds = random_inputs(derived.inputs, seed=seed)
    expected = reference_runner(original)({**feeds, **bindings})
    expected = {s.name: expected[s.name] for s in derived.outputs}
    got = GraphRunner(derived)(feeds)
    return assert_equivalent(expected, got, atol=atol, rtol=rtol, what=what)
