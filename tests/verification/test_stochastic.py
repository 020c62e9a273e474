"""Stochastic graphs: random ops tfopt cannot remove (noise added to an output, dropout bound to a
training value) make two runs of the original differ. Verification says the original is stochastic
and names the random ops (``StochasticModelError``); it does not blame the stage or the artifact."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model
from tfopt.errors import StochasticModelError, VerificationError
from tfopt.freezing import freeze
from tfopt.verification.stochastic import random_ops
from tfopt.verification.verify import verify_artifact
from tfopt.verification.verify_inputs import VerifyInputs

NOISES = {
    "uniform-added": lambda t, h: h + t.random.uniform(t.shape(h), name="noise"),
    "normal-scaled": lambda t, h: h * (1.0 + 0.1 * t.random.normal(t.shape(h), name="noise")),
    "uniform-in-loop": lambda t, h: t.compat.v1.while_loop(
        lambda i, v: i < 2, lambda i, v: (i + 1, v + t.random.uniform(t.shape(v), name="noise")), [0, h])[1],
}
SHAPES = [(2, 6), (4, 3, 5)]


def _model(noise: str, shape):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        t.identity(NOISES[noise](t, t.nn.relu(x)), name="out")
    return graph_model(build, {"x": shape}, ["out"], v1_control_flow="loop" in noise)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("noise", list(NOISES))
def test_freezing_says_the_original_is_stochastic_and_names_the_random_op(noise, shape):
    model = _model(noise, shape)
    found = random_ops(model.graph_def, ["out:0"])
    assert len(found) == 1 and "noise" in found[0]
    with pytest.raises(StochasticModelError, match=r"original model is stochastic") as info:
        freeze(model)
    assert info.value.random_ops == found and found[0] in str(info.value)
    assert "--set" not in str(info.value)  # no placeholder turns this noise off
    assert isinstance(info.value, VerificationError) and info.value.exit_code == 7


def test_dropout_at_a_training_value_names_the_placeholder_to_bind():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [64, 16], name="x")
        kp = t.compat.v1.placeholder(t.float32, [], name="keep_prob")
        t.identity(t.compat.v1.nn.dropout(x, keep_prob=kp), name="out")
    model = graph_model(build, {"x": (64, 16)}, ["out"])
    with pytest.raises(StochasticModelError, match=r"RandomUniform '.*'.*--set keep_prob=1.0"):
        freeze(model, set_values={"keep_prob": 0.5})


def test_deterministic_difference_is_still_a_plain_verification_error():
    """A reference that reproduces itself: the mismatch stays the stage's (not called stochastic)."""
    from tfopt.verification.verify import verify_against_reference

    model = _model("uniform-added", (2, 6))
    frozen, _ = freeze(model, verify=False)
    det = graph_model(lambda t: t.identity(t.compat.v1.placeholder(t.float32, (2, 6), name="x") * 2.0, name="out"),
                      {"x": (2, 6)}, ["out"])
    feeds = {"x": np.ones((2, 6), np.float32)}
    with pytest.raises(VerificationError) as info:
        verify_against_reference(det, frozen, {}, atol=1e-6, rtol=0, inputs=VerifyInputs(feeds, "made up"))
    assert not isinstance(info.value, StochasticModelError)


def test_artifact_verification_does_not_blame_the_artifact(tmp_path):
    from tfopt.targets import target

    model = _model("uniform-added", (2, 6))
    frozen, _ = freeze(model, verify=False)
    path = tfopt.save(frozen, str(tmp_path / "frozen.pb"))
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], verify=False)
    (artifact,) = result.artifacts
    record = target(artifact.format)
    feeds = VerifyInputs({"x": np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)}, "made up")
    loaded = tfopt.load(path)
    with pytest.raises(StochasticModelError, match=r"stochastic.*RandomUniform 'noise/RandomUniform'"):
        verify_artifact(artifact, lambda: record.call("runner", str(tmp_path / "out" / artifact.path), loaded, 1),
                        loaded, feeds, bound=1e-4)
