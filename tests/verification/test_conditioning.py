"""Ill-conditioned originals (issue 24, deepac-lstm): on made-up inputs a chaotic recurrence makes the
original disagree with itself (a batch vs its rows one at a time), so an artifact that differs from it
by as much is not blamed. Verification climbs to a made-up scale where the original is self-consistent,
or says the original is ill-conditioned (``IllConditionedError``, exit 7)."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt.errors import IllConditionedError
from tfopt.verification.conditioning import MEASURES, K, stable_rung
from tfopt.verification.saturation import NORMAL
from tfopt.verification.tolerances import ARTIFACT

STEPS = 60


def _map(t, x, gain: float, *, expanded: bool = False):
    r = 2.0 + 1.9 * t.tanh(gain * t.abs(x))
    u = 0.5 + 0.4 * t.tanh(x)
    for _ in range(STEPS):
        s = t.reduce_sum(u, axis=0, keepdims=True)
        v = (u + s) - s
        u = r * v - r * v * u if expanded else r * v * (1.0 - u)  # the same map, rounded another way
    return t.identity(u + x, name="out")


def _logistic(path: str, gain: float) -> str:
    """``u <- r u (1 - u)`` over ``STEPS`` steps, ``r = 2 + 1.9 tanh(gain |x|)``: chaotic (r > 3.57) where
    ``gain |x| > 1.2``, a stable fixed point (r < 3) where ``gain |x| < 0.58``. ``(u + s) - s``, ``s`` the sum
    over the batch, is ``u`` mathematically but rounds differently with the batch: the map amplifies it."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        _map(tf, tf.compat.v1.placeholder(tf.float32, [None, 4], name="x"), gain)
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path


def test_stable_at_a_smaller_scale_verifies_there(tmp_path):
    """gain 1.5: chaotic at standard normal, a fixed point at normal x 0.1: the artifact is verified there."""
    from tfopt.runtimes import runner_for
    from tfopt.verification.verify import reference_runner

    path = _logistic(str(tmp_path / "m.pb"), 1.5)
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"])
    assert not result.failed
    (artifact,) = result.artifacts
    row = next(r for r in result.report["artifacts"] if r["path"] == artifact.path)
    record = row.get("conditioning") or artifact.conditioning
    assert record is not None and record["verified_at"] != NORMAL
    assert record["self_disagreement"] > ARTIFACT["fp32"] and record["scaled_err"] <= ARTIFACT["fp32"]
    # the artifact against the original (TensorFlow) at that scale, a row at a time (tolerance: the fp32 bound)
    x = (0.1 * np.random.default_rng(1).standard_normal((8, 4))).astype(np.float32)
    model = tfopt.load(path)
    original, runner = reference_runner(model), runner_for("onnx", str(tmp_path / "out" / artifact.path), model)
    for i in range(len(x)):
        np.testing.assert_allclose(runner({"x": x[i:i + 1]})["out"], original({"x": x[i:i + 1]})["out"],
                                   atol=ARTIFACT["fp32"], rtol=ARTIFACT["fp32"])
    runner.close()


def test_chaotic_at_every_scale_says_ill_conditioned(tmp_path):
    """gain 1e4: chaotic down to normal x 0.01: not "artifact wrong" but the original's instability, typed."""
    path = _logistic(str(tmp_path / "m.pb"), 1e4)
    with pytest.raises(IllConditionedError, match=r"ill-conditioned on made-up inputs.*--calibration or --eval-data") \
            as info:
        tfopt.convert(path, str(tmp_path / "out"), to=["onnx"])
    assert info.value.exit_code == 7 and info.value.gap > ARTIFACT["fp32"]
    assert any(f"({what}, " in str(info.value) for what in MEASURES.values())  # the largest measure, named
    assert "tfopt debug compare" not in str(info.value)  # the original is at fault: nothing to debug in the artifact


@pytest.mark.parametrize("source", ["made up", "eval-data"])
def test_verification_inputs_judge_the_original_on_made_up_rows_only(tmp_path, source):
    """The verification inputs (not the report's rows): 8 standard-normal rows of the model chaotic at every
    scale. Made up: ill-conditioned, typed; given data (the user vouches for it): the artifact's error stands."""
    from tfopt.errors import VerificationError
    from tfopt.runtimes import runner_for
    from tfopt.verification.verify import verify_artifact
    from tfopt.verification.verify_inputs import VerifyInputs

    path = _logistic(str(tmp_path / "m.pb"), 1e4)
    (artifact,) = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], verify=False).artifacts
    model = tfopt.load(path)
    feeds = {"x": np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)}
    expected = IllConditionedError if source == "made up" else VerificationError
    with pytest.raises(expected) as info:
        verify_artifact(artifact, lambda: runner_for("onnx", str(tmp_path / "out" / artifact.path), model), model,
                        VerifyInputs(feeds, source), bound=ARTIFACT["fp32"])
    assert (type(info.value) is IllConditionedError) == (source == "made up")


def test_an_error_beyond_k_times_the_self_disagreement_stands():
    """The artifact is blamed as before when the original's own noise cannot explain its error."""
    never = lambda feeds: pytest.fail("no rung is tried")  # noqa: E731
    assert stable_rung(never, never, never, NORMAL, error=K * 0.01 * 1.5, gap=0.01, bound=1e-4, at="") is None


@pytest.mark.parametrize("gain", [1.5, 1e4], ids=["stable-at-small-scale", "chaotic-at-every-scale"])
def test_a_stage_is_not_blamed_for_the_originals_instability(gain):
    """A stage's graph that computes the same map rounded another way (``r v - r v u`` for ``r v (1 - u)``),
    checked as freezing is (both in TensorFlow, tolerance 1e-5) on 8 standard-normal rows."""
    from tests.helpers import graph_model
    from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL
    from tfopt.verification.verify import verify_against_reference
    from tfopt.verification.verify_inputs import VerifyInputs

    def model(expanded: bool):
        return graph_model(lambda t: _map(t, t.compat.v1.placeholder(t.float32, [None, 4], name="x"), gain,
                                          expanded=expanded), {"x": (None, 4)}, ["out"])

    feeds = VerifyInputs({"x": np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)}, "made up")
    check = lambda: verify_against_reference(model(False), model(True), {}, atol=FREEZE_ATOL,  # noqa: E731
                                             rtol=FREEZE_RTOL, inputs=feeds, what="the stage's graph")
    if gain > 100:
        with pytest.raises(IllConditionedError, match=r"verifying the stage's graph: .*ill-conditioned"):
            check()
    else:
        check()  # verified at a self-consistent scale (normal x 0.1 or below)
