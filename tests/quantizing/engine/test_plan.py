"""``--int8-recipe auto`` (tfopt.quantizing.engine.plan): the candidates' measured drop and latency decide
together. The rule (:func:`choose`): the fastest within the drop bound, latencies within 5 % tie,
a tie goes to the more accurate, then the simpler."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.quantizing.engine.plan import CANDIDATES, DROP_BOUND, LATENCY_NOISE, Int8Plan, Measured, choose, gate_bound
from tfopt.report.gates import parse_gate


def _tiny(root, biases=False):
    """An untrained conv + dense classifier (4 classes), optimized as convert does: the engine's
    input. Keras' initial biases are zeros; ``biases``: random ones, as trained layers have."""
    import keras

    import tfopt

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2), name="images")
    conv, dense = keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Dense(4, activation="softmax", name="probs")
    outputs = dense(keras.layers.Flatten()(conv(inputs)))
    if biases:
        for layer in (conv, dense):
            layer.bias.assign(np.random.default_rng(1).normal(0, 0.1, 4))
    path = str(root / "sm")
    keras.Model(inputs, outputs).export(path, verbose=False)
    portable, _, _, _ = tfopt.optimize(path)
    x = np.random.default_rng(0).uniform(0, 1, (16, 6, 6, 2)).astype(np.float32)
    return {"model": portable, "calib": [{"images": x}]}


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    return _tiny(tmp_path_factory.mktemp("tiny_classifier"))


class _Default:
    quantizer, int8_recipe, calibration_method, per_tensor = "tfopt", None, None, False
    keep_float, auto_keep_float, accuracy_control, adaround_budget = (), None, None, None


@pytest.mark.parametrize("biases", [False, True], ids=["zero-biases", "biases"])
def test_a_target_that_pays_for_a_bias_gets_none_where_the_float_layer_has_none(tiny_classifier, tmp_path, biases):
    """OpenVINO (``engine_new_biases=False`` in the target table): the default recipe gets
    ``no_new_bias`` when a layer has a zero bias, and no bias is created in its graph; TFLite and ONNX
    keep bias correction on every layer. With every layer biased the step changes nothing. (The
    model's Softmax output: TFLite's kernel grid, ``+fixed_ranges``; no range in OpenVINO, which runs
    it in float, ``+float_outputs``: tests/quantizing/engine/test_kernel_ranges.py.)"""
    from tfopt._tf import const_value
    from tfopt.graph import node_map

    data = _tiny(tmp_path, biases=True) if biases else tiny_classifier
    plan = Int8Plan(data["model"], data["calib"], _Default())
    recipes = {t: str(plan.recipe_for(t)) for t in ("tflite", "onnx", "openvino")}
    assert recipes["tflite"] == "mse+equalize+bias_correction+fixed_ranges", recipes
    assert recipes["onnx"] == "mse+equalize+bias_correction+7bit", recipes
    assert recipes["openvino"] == recipes["onnx"] + ("" if biases else "+no_new_bias") + "+float_outputs", recipes
    before = {n.name for n in data["model"].graph_def.node if n.op == "BiasAdd"}
    assert before  # Keras' layers: a BiasAdd each, of zeros until trained
    for target in ("onnx", "openvino"):
        graph_def = plan.model_for(target).graph_def
        nodes = node_map(graph_def)
        assert {n.name for n in graph_def.node if n.op == "BiasAdd"} == before, target
        for name in before:  # corrected (nonzero), except OpenVINO's zero ones
            assert np.any(const_value(nodes[nodes[name].input[1]])) == (target == "onnx" or biases), (target, name)


class _Auto:
    quantizer, int8_recipe, calibration_method, per_tensor = "tfopt", "auto", None, False
    keep_float, auto_keep_float, accuracy_control, adaround_budget = (), None, None, None


def _row(drop: float, latency: float) -> dict:
    return {"accuracy": {"top1": 90.0 - drop}, "accuracy_drop": drop, "fidelity": {"rel_err": 0.01},
            "latency_ms": {"median": latency}, "bytes": 1}


@pytest.mark.parametrize("fast", [1, 4, len(CANDIDATES) - 1], ids=lambda i: str(CANDIDATES[i]))
@pytest.mark.parametrize("drop, slow, quick", [(0.0, 2.0, 1.0), (0.3, 0.4, 0.3), (3.0, 12.0, 7.5)],
                         ids=["exact", "sub-ms", "slow-model"])
def test_equal_accuracy_the_faster_candidate_is_kept(tiny_classifier, fast, drop, slow, quick):
    """Every candidate loses the same points; one is faster by more than the noise band: the plan keeps
    it, wherever it sits in the list (an accuracy-only rule keeps the simplest)."""
    calls = []

    def evaluate(target, model):
        calls.append(target)
        row = _row(drop, quick if len(calls) - 1 == fast else slow)
        return (-drop, -0.01), row

    plan = Int8Plan(tiny_classifier["model"], tiny_classifier["calib"], _Auto(), evaluate=evaluate)
    plan.model_for("tflite")
    tried = plan.searches["tflite"]
    assert len(calls) == len(CANDIDATES) == len(tried)
    assert [t["recipe"] for t in tried if t["kept"]] == [tried[fast]["recipe"]] == [plan.chosen("tflite")]
    assert tried[fast]["latency_ms"] == quick and tried[fast]["drop"] == drop
    assert "fastest" in plan.record()["why"]["tflite"]


def _measured(drops, latencies, scores=None, passes=None):
    scores = scores or [-d for d in drops]
    passes = passes or [True] * len(drops)
    return [Measured(f"r{i}", (s, 0.0), d, ms, ok) for i, (d, ms, s, ok) in enumerate(zip(drops, latencies, scores, passes))]


@pytest.mark.parametrize("base", [0.05, 1.0, 40.0])
def test_latencies_within_the_noise_band_tie_and_the_more_accurate_wins(base):
    inside = base * (1 + 0.8 * LATENCY_NOISE)
    kept, why = choose(_measured([0.4, 0.1, 0.2], [base, inside, base * 3]), DROP_BOUND)
    assert kept == 1 and "most accurate" in why
    kept, _ = choose(_measured([0.2, 0.2, 0.2], [inside, base, inside]), DROP_BOUND)
    assert kept == 0  # all tied on accuracy too: the simplest


@pytest.mark.parametrize("bound", [0.0, 0.5, 2.0])
def test_a_faster_candidate_beyond_the_bound_is_not_kept(bound):
    drops = [0.1, bound + 0.2, bound, 0.1 + bound / 2]  # the fastest (1 ms) loses 0.2 points too many
    kept, _ = choose(_measured(drops, [10.0, 1.0, 5.0, 9.0]), bound)
    assert kept == 2 and drops[kept] <= max(bound, min(drops))


@pytest.mark.parametrize("best", [1.0, 4.5])
def test_when_none_is_within_the_bound_the_most_accurate_then_the_fastest(best):
    kept, why = choose(_measured([best + 2, best, best, best + 0.01], [1.0, 8.0, 4.0, 2.0]), DROP_BOUND)
    assert kept == 2 and "best drop" in why


def test_failed_gates_and_missing_drops():
    assert choose(_measured([0.0, 0.0], [1.0, 2.0], passes=[False, False]), DROP_BOUND) is None
    kept, _ = choose(_measured([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], passes=[False, True, True]), DROP_BOUND)
    assert kept == 1
    # no drop in points (no classes, no labels): the best score; latency breaks only its exact ties
    kept, why = choose([Measured("a", (100.0, -0.2), None, 1.0, True), Measured("b", (100.0, -0.1), None, 3.0, True),
                        Measured("c", (100.0, -0.1), None, 2.0, True)], DROP_BOUND)
    assert kept == 2 and "best score" in why


@pytest.mark.parametrize("gates, target, bound", [
    (["accuracy_drop>2"], "tflite", 2.0), (["onnx/int8:accuracy_drop>=1.5", "accuracy_drop>3"], "onnx", 1.5),
    (["onnx:accuracy_drop>1.5"], "openvino", None), (["fp32:accuracy_drop>0.1", "max_abs_err>1"], "tflite", None),
    (["accuracy_drop<-5"], "tflite", None)])
def test_the_users_drop_gate_is_the_bound(gates, target, bound):
    assert gate_bound([parse_gate(g) for g in gates], target) == bound


def test_auto_on_real_measurements_keeps_what_the_rule_says(digits_model, tmp_path):
    """--int8-recipe auto on a real digits CNN: every candidate's TFLite artifact is measured (drop and
    latency); the kept one is within the gate's bound of float and no candidate within the bound is
    faster beyond the noise band; the manifest lists them all with the reason."""
    import json

    import tfopt

    out = str(tmp_path / "out")
    result = tfopt.convert(digits_model["path"], out, to=["tflite"], quantize=["int8"], int8_recipe="auto",
                           calibration=digits_model["calib"], eval_data=digits_model["eval"], report_runs=2,
                           fail_if=["accuracy_drop>3"])
    tried = result.int8["candidates"]["tflite"]
    assert len(tried) == len(CANDIDATES) and all(t["latency_ms"] > 0 for t in tried)
    (kept,) = [t for t in tried if t["kept"]]
    passing = [t for t in tried if t["passes_gates"]]
    limit = max(3.0, min(t["drop"] for t in passing))
    assert kept["drop"] == kept["accuracy_drop"] <= limit
    assert all(t["latency_ms"] * (1 + LATENCY_NOISE) >= kept["latency_ms"] for t in passing if t["drop"] <= limit)
    assert result.int8["recipe"]["tflite"] == kept["recipe"] and kept["recipe"] in result.int8["why"]["tflite"]
    with open(f"{out}/manifest.json") as f:
        assert json.load(f)["int8_engine"]["candidates"]["tflite"] == tried
