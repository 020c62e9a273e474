"""An output MOSTLY saturated on made-up inputs is a check that can hardly fail (issue 24, DePTH's TCR-HLA
model: 92 % of its sigmoid scores within 1e-4 of 0 or 1 on standard-normal inputs, every artifact's error 0),
although not EVERY value is, so the whole-output test never fired.

Generated heads x @ W -> sigmoid or tanh over 16 standard-normal features: ``width`` 8, seven units
whose logits have a standard deviation of ``scale`` (saturated at 300) beside an informative one (every
row carries information); ``width`` 1, one unit per sample whose weights give the first made-up row a
logit of 2 (that row is informative, the other saturates). A wrong model adds 5 % to the saturated
units' weights (but for their part along the first row): invisible where they saturate. Before: verified
on standard normal, the wrong model passed. Now the ladder finds the least saturated scale and the error
is caught, or, when no scale helps (``scale`` 1e5), the record and the summary say how much was saturated."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model
from tfopt.errors import VerificationError
from tfopt.verification.saturation import MOSTLY
from tfopt.verification.tolerances import ARTIFACT

FEATURES = 16
SATURATED = 7  # of 8 units (87.5 %, beyond saturation.MOSTLY)
CASES = [("sigmoid", 8), ("tanh", 8), ("sigmoid", 1), ("tanh", 1)]


def _first() -> np.ndarray:
    """The first row tfopt makes up for ``x`` (seed 0, standard normal)."""
    from tfopt.graph import TensorSpec
    from tfopt.verification.testing import random_inputs

    return random_inputs([TensorSpec("x", "x:0", "float32", (None, FEATURES))], seed=0)["x"][0].astype(np.float64)


def _weights(width: int, scale: float, seed: int = 5) -> np.ndarray:
    """Columns of logit standard deviation ``scale`` (the first seven of eight, or the one), then 0.5."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((FEATURES, width)) / np.sqrt(FEATURES)
    w[:, :SATURATED] *= scale
    w[:, SATURATED:] *= 0.5
    if width == 1:  # a logit of 2 on the first made-up row: one informative sample of two
        first = _first()
        w[:, 0] -= first * (first @ w[:, 0] - 2) / (first @ first)
    return w.astype(np.float32)


def _model(head: str, w: np.ndarray):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, FEATURES), name="x")
        z = t.matmul(x, t.constant(w))
        t.identity(getattr(t, head)(z) if head != "linear" else z, name="y")

    return graph_model(build, {"x": (None, FEATURES)}, ["y"])


def _wrong(w: np.ndarray) -> np.ndarray:
    """5 % more of the saturated units' weights, but for their part along the first made-up row."""
    first = _first()
    saturated = w[:, :SATURATED]
    wrong = w.copy()
    wrong[:, :SATURATED] += 0.05 * (saturated - np.outer(first, first @ saturated) / (first @ first))
    return wrong


@pytest.mark.parametrize("head,width", CASES, ids=[f"{h}-{w}" for h, w in CASES])
def test_a_mostly_saturated_head_is_unsaturated_and_a_wrong_model_caught(head, width):
    from tfopt.verification.saturation import NORMAL
    from tfopt.verification.testing import random_inputs
    from tfopt.verification.verify import verify_against_reference

    w = _weights(width, 300.0)
    original = _model(head, w)
    normal = random_inputs(original.inputs, seed=0)["x"] @ w
    from scipy.special import expit

    y = (np.tanh if head == "tanh" else expit)(normal)
    near = np.min(np.abs(y[..., None] - np.array([-1.0, 0.0, 1.0])), axis=-1) <= 1e-4
    assert near.mean() >= 0.5 and not near.all(axis=1).all()  # mostly, not every row, saturated: was not seen
    bound = ARTIFACT["fp32"]
    with pytest.raises(VerificationError, match="differs"):  # before: passed, compared where it saturates
        verify_against_reference(original, _model(head, _wrong(w)), {}, atol=bound, rtol=bound)
    _, report = tfopt.freeze(original)
    at = report.verified_at
    assert at.values != NORMAL and not at.saturated and "y" in at.saturated_before
    assert "% of values within" in at.saturated_before["y"]
    assert at.saturated_fraction["y"] <= MOSTLY and at.as_dict()["values"]["saturated_fraction"]["y"] <= MOSTLY


def test_a_head_no_scale_unsaturates_is_said_to_be_mostly_saturated():
    """Logits of standard deviation 1e5: saturated at every rung; verified, and the weak evidence said."""
    from tfopt.verification.saturation import REAL_CHECK

    _, report = tfopt.freeze(_model("sigmoid", _weights(8, 1e5)))
    at = report.verified_at
    assert MOSTLY < at.saturated_fraction["y"] < 1 and "% of values within" in at.saturated["y"]
    assert "evidence weak" in at.summary() and REAL_CHECK in at.summary()
    recorded = at.as_dict()["values"]
    assert recorded["saturated"] == at.saturated and recorded["saturated_fraction"] == at.saturated_fraction


@pytest.mark.parametrize("width", [8, 1])
def test_an_unsaturated_head_costs_no_ladder(width):
    """Informative heads run the original exactly as often as the same network without its squashing
    function (nothing to saturate) and keep today's standard-normal inputs."""
    from tfopt.verification.testing import random_inputs
    from tfopt.verification.verify import choose_inputs

    def runs(head: str) -> tuple[int, dict[str, np.ndarray], object]:
        model = _model(head, _weights(width, 0.5))
        from tfopt.runtimes.tensorflow import GraphRunner

        runner, calls = GraphRunner(model), []

        def original(feeds):
            calls.append(1)
            return runner(feeds)

        at = choose_inputs(original, model.inputs, graph_def=model.graph_def)
        return len(calls), at.feeds, at

    baseline, _, _ = runs("linear")
    count, feeds, at = runs("sigmoid")
    assert count == baseline and at.values == "standard normal" and not at.saturated_before
    today = random_inputs(_model("linear", _weights(width, 0.5)).inputs, seed=0)
    assert np.array_equal(feeds["x"], today["x"]) and "values" not in at.as_dict()


def test_the_saturated_share_counts_a_softmax_by_whole_distributions():
    """A classifier's small probabilities are its normal state: a softmax row counts only when one-hot."""
    from scipy.special import softmax

    from tfopt.verification.saturation import degenerate, saturated_fraction

    logits = np.random.default_rng(0).standard_normal((32, 1000)) * 5  # most probabilities below 1e-4
    assert np.mean(softmax(logits, -1) <= 1e-4) > MOSTLY and saturated_fraction(softmax(logits, -1)) == 0
    onehot = np.eye(1000)[np.argmax(logits, -1)]
    assert saturated_fraction(onehot) == 1 and degenerate({"p": onehot})
    mostly = np.where(np.arange(32)[:, None] < 28, onehot, softmax(logits, -1))  # 28 of 32 rows one-hot
    assert saturated_fraction(mostly) == 28 / 32 and "87.5% of values" in degenerate({"p": mostly})["p"]
