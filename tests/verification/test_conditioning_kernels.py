"""An original whose numbers depend on the kernel choice (issue 24, V2: deepac-lstm with oneDNN on): its batch and
its rows agree, yet its own run (a ``tf.function``, eager) and its graph run as written in a session differ, and a
chaotic map amplifies that. Generated here as a SavedModel whose constants Grappler folds together in the eager run
(``c1 * (x * c2)`` -> ``x * (c1 c2)``, ``(x + c1) + c2`` -> ``x + (c1 + c2)``) and not in the frozen graph as
written: its freezing check failed before the second kernel choice was measured
(:mod:`tfopt.verification.kernel_choice`), with oneDNN on and off."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt.errors import IllConditionedError
from tfopt.verification.conditioning import MEASURES, K
from tfopt.verification.kernel_choice import KernelChoices
from tfopt.verification.self_disagreement import disagreement
from tfopt.verification.tolerances import ARTIFACT, FREEZE_ATOL, FREEZE_RTOL

STEPS = 60
FORMS = {  # the logistic step r u (1 - u), written so that Grappler's constant folding rounds it another way
    "mul-chain": lambda t, step: 0.7 * (step * 1.3) / 0.91,
    "add-chain": lambda t, step: (step + 0.3) + t.constant(-0.3),
}


def _saved(path: str, form: str, gain: float, width: int) -> str:
    """``u <- r u (1 - u)`` over ``STEPS`` steps, ``r = 2 + 1.9 tanh(gain |x|)``: chaotic where ``gain |x| > 1.2``,
    a stable fixed point where ``gain |x| < 0.58``; elementwise, so a batch and its rows agree."""
    import tensorflow as tf

    step = FORMS[form]

    class Map(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32)])
        def serve(self, x):
            r = 2.0 + 1.9 * tf.tanh(gain * tf.abs(x))
            u = 0.5 + 0.4 * tf.tanh(x)
            for _ in range(STEPS):
                u = step(tf, r * u * (1.0 - u))
            return {"out": u + x}

    module = Map()
    tf.saved_model.save(module, path, signatures=module.serve)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    made: dict[tuple[str, float], str] = {}

    def get(form: str, gain: float) -> str:
        if (form, gain) not in made:
            width = 16 + len(made)  # a different width per model, wide enough that made-up rows reach the chaos
            made[form, gain] = _saved(str(tmp_path_factory.mktemp("map") / "m"), form, gain, width)
        return made[form, gain]

    return get


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_second_kernel_choice_sees_what_the_batch_and_its_rows_do_not(saved, form):
    """On 8 standard-normal rows, the original's own run against its graph in a session (Grappler on and off) differs
    beyond the freezing bound, and by at least what the batch-vs-rows measure alone finds."""
    model = tfopt.load(saved(form, 1e4))
    (spec,) = model.inputs
    feeds = {spec.name: np.random.default_rng(0).standard_normal((8, spec.shape[1])).astype(np.float32)}
    run = lambda f: model.reference(f)  # noqa: E731
    rows_only, kernels = disagreement(run, feeds), KernelChoices(model)
    try:
        both = disagreement(run, feeds, kernels=kernels)
    finally:
        kernels.close()
    assert rows_only is not None and both is not None and both.by in MEASURES
    assert both.value >= rows_only.value and both.value > K * FREEZE_RTOL


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_freezing_check_is_not_blamed_and_verifies_at_a_stable_scale(saved, form):
    """gain 1.5: chaotic at standard normal, a fixed point at normal x 0.1. Freezing passes (verified there); the
    frozen graph, run as written, agrees with the original at that scale (the freezing tolerance)."""
    model = tfopt.load(saved(form, 1.5))
    frozen, _ = tfopt.freeze(model)
    from tfopt.runtimes.tensorflow import GraphRunner

    (spec,) = model.inputs
    x = (0.1 * np.random.default_rng(1).standard_normal((8, spec.shape[1]))).astype(np.float32)
    runner = GraphRunner(frozen, rewrites=False)
    np.testing.assert_allclose(runner({spec.name: x})["out"], model.reference({spec.name: x})["out"],
                               atol=FREEZE_ATOL, rtol=FREEZE_RTOL)
    runner.close()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_chaotic_at_every_scale_stops_freezing_with_the_typed_error(saved, form):
    """gain 1e4: chaotic down to normal x 0.01: the freezing check says the original is ill-conditioned (exit 7),
    naming the measure that found it and what was checked (the frozen model, not an artifact), and asks for real
    inputs."""
    with pytest.raises(IllConditionedError, match=r"verifying the frozen model: .*ill-conditioned on made-up inputs"
                                                   r".*--calibration or --eval-data") as info:
        tfopt.freeze(tfopt.load(saved(form, 1e4)))
    assert info.value.exit_code == 7 and info.value.gap > FREEZE_RTOL
    assert any(f"({what}, " in str(info.value) for what in MEASURES.values())
    assert "as much as the frozen model differs from it" in str(info.value) and "artifact" not in str(info.value)


def test_converted_and_recorded_with_the_measure_that_found_it(saved, tmp_path):
    """End to end (freezing, optimizing, ONNX): written and verified at a self-consistent scale; the manifest's
    record names the measure, for the artifact and for the frozen graph (under the verification inputs, with the
    report's), and report.md shows both notes; the artifact agrees with the original there within the fp32 bound."""
    import json

    from tfopt.runtimes import runner_for

    path = saved("mul-chain", 1.5)
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"])
    assert not result.failed
    (artifact,) = result.artifacts
    row = next(r for r in result.report["artifacts"] if r["path"] == artifact.path)
    record = row.get("conditioning") or artifact.conditioning
    assert record is not None and record["measure"] in MEASURES and record["self_disagreement"] > ARTIFACT["fp32"]
    assert record["scaled_err"] <= ARTIFACT["fp32"]
    out = tmp_path / "out"
    frozen = json.loads((out / "manifest.json").read_text())["verification"]["conditioning"]["the frozen model"]
    assert frozen == json.loads((out / "report.json").read_text())["verification"]["conditioning"]["the frozen model"]
    assert frozen["measure"] in MEASURES and frozen["scaled_err"] <= FREEZE_RTOL < frozen["self_disagreement"]
    text = (out / "report.md").read_text()
    assert f"- the frozen model: {frozen['note']}" in text and f"- onnx/fp32: {record['note']}" in text
    model = tfopt.load(path)
    (spec,) = model.inputs
    x = (0.1 * np.random.default_rng(2).standard_normal((8, spec.shape[1]))).astype(np.float32)
    runner = runner_for("onnx", str(tmp_path / "out" / artifact.path), model)
    for i in range(len(x)):
        np.testing.assert_allclose(runner({spec.name: x[i:i + 1]})["out"], model.reference({spec.name: x[i:i + 1]})["out"],
                                   atol=ARTIFACT["fp32"], rtol=ARTIFACT["fp32"])
    runner.close()


@pytest.mark.parametrize("error", [0.0, 1e-3])
def test_an_original_that_reproduces_itself_exactly_explains_no_error(error):
    """``d = 0`` by every measure (an NMS graph's kernels agree exactly): the artifact's error stands, even a float
    error of 0 (its failure is elsewhere: a padded output, ids)."""
    from tfopt.verification.conditioning import Gap, stable_rung
    from tfopt.verification.saturation import NORMAL

    never = lambda feeds: pytest.fail("no rung is tried")  # noqa: E731
    assert stable_rung(never, never, never, NORMAL, error=error, gap=Gap(0.0, "kernels"), bound=1e-4, at="") is None


def test_an_output_of_another_size_or_other_ids_is_no_noise():
    from tfopt.verification.conditioning import artifact_gap

    boxes, ids = np.zeros((1, 4), np.float32), np.array([2, 0])
    assert artifact_gap({"b": np.zeros((5, 4), np.float32)}, {"b": boxes}) == np.inf
    assert artifact_gap({"b": boxes, "i": ids[::-1]}, {"b": boxes, "i": ids}) < np.inf  # noise may flip ids...
    assert artifact_gap({"b": boxes, "i": ids[::-1]}, {"b": boxes, "i": ids}, exact=True) == np.inf  # ...not here
    assert artifact_gap({"b": boxes.ravel() + 1e-3}, {"b": boxes}) == pytest.approx(1e-3)  # rank left to the data
