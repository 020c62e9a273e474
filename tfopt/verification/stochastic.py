"""Stochastic graphs: random ops that survive freezing make the original model disagree with itself.

When a graph keeps a stateful random op (dropout tfopt could not bind, noise added to an output),
two runs of the *original* on the same feeds already differ, so a difference between the original
and a derived model says nothing about the derived one. Verification therefore asks, when outputs
differ: does a second run of the reference reproduce the first (bitwise, NaN equal to NaN)? If not,
it raises :class:`~tfopt.errors.StochasticModelError` naming the random ops the outputs depend on,
instead of blaming the stage or the artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.errors import StochasticModelError
from tfopt.graph import ancestors

# Stateful random ops: a fresh draw on every run. (Stateless ones are a function of their seed input.)
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "ParameterizedTruncatedNormal",
    "RandomShuffle", "RandomShuffleQueue", "RandomCrop", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
    "Multinomial", "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt", "StatefulStandardNormal",
    "StatefulStandardNormalV2", "StatefulTruncatedNormal", "StatefulRandomBinomial", "RngReadAndSkip",
    "RngSkip", "RandomIndexShuffle",
})

GENERIC_HINT = "Remove or disable these ops in the model (noise, sampling), or skip the check with --no-verify"


def random_ops(graph_def: Any, outputs: Sequence[str] | None = None) -> list[str]:
    """Stateful random ops (``op 'name'``) that ``outputs`` depend on (all of them without ``outputs``),
    in graph order; those inside a function of the library are named ``function/op``."""
    needed = ancestors(graph_def, outputs) if outputs is not None else None
    found = [f"{n.op} '{n.name}'" for n in graph_def.node
             if n.op in RANDOM_OPS and (needed is None or n.name in needed)]
    for function in graph_def.library.function:
        found += [f"{n.op} '{function.signature.name}/{n.name}'" for n in function.node_def if n.op in RANDOM_OPS]
    return found


def check_reproducible(run: Callable[[Mapping[str, Any]], Mapping[str, Any]], feeds: Mapping[str, Any],
                       first: Mapping[str, Any], *, graph_def: Any, outputs: Sequence[str], tensors: Sequence[str],
                       at: str, what: str, hint: str = "") -> None:
    """Run the reference again on ``feeds``; raise when it does not reproduce ``first``.

    Args:
        run: the reference model (bindings included); ``first`` is what it returned on ``feeds``.
        graph_def: the graph whose random ops are named (the one that still draws them).
        outputs: output names to compare; tensors: the tensors in ``graph_def`` whose random
            ancestors are named.
        at: where (``at x:2x6 (made up inputs)``); what: what was being verified.
        hint: how to turn the noise off, when the caller knows (a dropout placeholder to bind).

    Raises:
        StochasticModelError: a second run differs from ``first``.
    """
    second = run(feeds)
    differ = [n for n in outputs if not np.array_equal(np.asarray(first[n]), np.asarray(second[n]), equal_nan=True)]
    if not differ:
        return
    name = differ[0]
    gap = np.max(np.abs(np.asarray(first[name], np.float64) - np.asarray(second[name], np.float64)))
    found = random_ops(graph_def, tensors)
    where = (f"it draws random numbers in {', '.join(found[:5])}" + (f" and {len(found) - 5} more" if len(found) > 5
                                                                        else "")
             if found else "no stateful random op is visible in its graph (the runtime itself is nondeterministic)")
    raise StochasticModelError(
        f"verifying {what}: the original model is stochastic: two runs of it on the same inputs {at} differ "
        f"(output '{name}', max abs diff {gap:.3g}), so the difference is not the fault of {what}: {where}. "
        + (hint or GENERIC_HINT), found)
