"""The original model under a second kernel choice: its graph run in TensorFlow sessions, Grappler's rewrites on and off.

:mod:`tfopt.verification.conditioning` asks this only after a check on made-up inputs failed (a passing
check costs nothing): how far the original's own numbers move when TensorFlow computes the same graph
with other kernels. Its reference is a ``tf.function`` run eagerly (a Keras model, a SavedModel's
signature) or the graph in a session (a frozen ``.pb``); a stage's graph and most artifacts are compared
with it after other rewrites and other kernels. On a model that amplifies round-off, that alone moves the
numbers, while its batch and its rows one at a time may still agree.

Measured (issue 24, V2: deepac-lstm, a Keras 2 250-step Bidirectional LSTM, on 8 standard-normal rows,
AVX-512 Zen 4, TensorFlow 2.21, in the bound's units ``max|a - b| / (1 + max|b|)``):

==============================================  =============  ==============
                                                oneDNN on      oneDNN off
==============================================  =============  ==============
its Keras call vs its graph in a session        0.0242         3e-8
its graph in a session, Grappler on vs off      0              3e-8
its batch vs its rows one at a time             1.5e-7         0.146
its Keras call, oneDNN on vs off                0.0242
==============================================  =============  ==============

With oneDNN on, the eager call takes oneDNN's kernels and the session does not (the session gives the
numbers of oneDNN off); the frozen graph, run as written, differs from the Keras call by exactly that. So
the second kernel choice is the session, in this process: a child process with ``TF_ENABLE_ONEDNN_OPTS``
flipped would see the same 0.0242 only by loading the original model again there (its loader's options,
``--unsafe`` code, seconds and another TensorFlow process), and flipping oneDNN under the *graph* moves it
by 3e-8. Grappler on vs off is the rewrite choice: a tiny ``tf.function`` whose constants Grappler pushes
together (``c1 * (x * c2)`` -> ``x * (c1 c2)``) in a 60-step logistic map gives 0.10 (session, Grappler on)
and 0.23 (off) against its eager call, on every CPU and with oneDNN on or off.

The graph is the one the caller gives: the loaded original for the freezing check, the frozen graph for
the optimizing check, the portable graph for artifacts and the report. A graph whose variables the loader
froze wrongly would also differ from the reference here; :mod:`tfopt.verification.conditioning` then
finds no self-consistent scale and stops with :class:`~tfopt.errors.IllConditionedError`: an error, never
a pass (known limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tfopt.graph import Model

WHAT = "its own run vs its graph in a TensorFlow session, Grappler's rewrites on and off"


class KernelChoices:
    """``choices(feeds) -> [outputs, ...]``: ``model``'s graph in one session per Grappler setting, each fed
    ``bindings`` too, each call held to the original's time bound
    (:class:`~tfopt.verification.deadline.BoundedReference`). Sessions open on the first call; a setting
    whose session cannot run the feeds gives nothing. :meth:`close` ends them."""

    def __init__(self, model: Model, bindings: Mapping[str, Any] | None = None):
        nodes = {n.name for n in model.graph_def.node} if model.graph_def is not None else set()
        self.model = model  # a binding freezing already made a constant has no placeholder left to feed
        self.bindings = {k: v for k, v in (bindings or {}).items() if k.split(":")[0] in nodes}
        self._runners: list[Any] | None = None

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        got = []
        for runner in self._open():
            try:
                got.append({k: np.asarray(v) for k, v in runner({**feeds, **self.bindings}).items()})
            except Exception:  # nothing measured by this choice (a graph tfopt could not import, a refused kernel)
                continue
        return got

    def _open(self) -> list[Any]:
        if self._runners is None:
            from tfopt.runtimes.tensorflow import GraphRunner
            from tfopt.verification.deadline import BoundedReference

            self._runners = []
            if self.model.graph_def is not None:
                for rewrites in (True, False):
                    try:
                        runner = GraphRunner(self.model, rewrites=rewrites)
                    except Exception:  # a graph TensorFlow cannot import here: this choice measures nothing
                        continue
                    self._runners.append(BoundedReference(runner, self.model.graph_def, self.model.inputs))
        return self._runners

    def close(self) -> None:
        for runner in self._runners or []:
            runner.close()
        self._runners = []
