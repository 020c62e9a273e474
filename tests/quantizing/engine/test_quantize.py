"""tfopt's int8 engine end to end: recipes, shared statistics, the recipe search's choice, every target
running the engine's int8 kernels, per-tensor recovery by equalization, and the native fallback."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.demos import examples
from tfopt.errors import ConversionError, OptionError
from tfopt.graph import consumers, node_map
from tfopt.passes._linear import const_array, set_const
from tfopt.quantizing.engine._channels import as_layer
from tfopt.quantizing.engine.plan import CANDIDATES, Int8Plan
from tfopt.quantizing.engine.quantize import Engine, Recipe
from tfopt.runtimes.tensorflow import GraphRunner


def test_recipe_text_round_trips_and_names_bad_steps():
    recipe = Recipe.parse("percentile:99.9+equalize+bias_correction+per_tensor+7bit")
    assert (recipe.method, recipe.equalize, recipe.bias_correction, recipe.per_channel, recipe.weight_bits) == (
        "percentile:99.9", True, True, False, 7)
    assert Recipe.parse(str(recipe)) == recipe and recipe.weight_levels == 63
    kept = Recipe.parse("mse+equalize+bias_correction+7bit+no_new_bias")
    assert not kept.new_biases and Recipe.parse(str(kept)) == kept and str(kept).endswith("+7bit+no_new_bias")
    assert Recipe.parse("mse+no_new_bias").new_biases  # nothing in it would create a bias
    with pytest.raises(OptionError, match="unknown step 'equalise'"):
        Recipe.parse("mse+equalise")
    with pytest.raises(OptionError, match="--calibration-method"):
        Recipe.parse("kl")
    with pytest.raises(OptionError, match="'fixed_ranges' is not chosen by the recipe"):
        Recipe.parse("mse+fixed_ranges")  # the target table's, shown in the text only


@pytest.fixture(scope="module")
def relu_mobilenet(tmp_path_factory):
    """A trained depthwise-separable digits net (ReLU) whose depthwise channels are rescaled by
    factors over three decades, compensated in the next 1x1 conv: the float model is unchanged,
    but one weight range per tensor crushes the small channels (what BatchNorm folding does to
    MobileNets, and what cross-layer equalization undoes)."""
    import keras

    import tfopt

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Conv2D(16, 3, padding="same")(inputs)))
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(keras.layers.DepthwiseConv2D(3, padding="same")(h)))
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Conv2D(32, 1)(h)))
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling2D()(h))
    model = examples.train(keras.Model(inputs, outputs), epochs=12)
    path = str(tmp_path_factory.mktemp("relu_mobilenet") / "sm")
    model.export(path, verbose=False)
    portable, _, _, _ = tfopt.optimize(path)
    graph = portable.graph_def
    nodes, users = node_map(graph), consumers(graph)
    dw = as_layer(nodes, users, next(n for n in graph.node if n.op == "DepthwiseConv2dNative"))
    convs = [as_layer(nodes, users, n) for n in graph.node if n.op == "Conv2D"]
    pw = next(c for c in convs if not isinstance(c, str) and const_array(c.weights).shape[:2] == (1, 1))
    k = (10 ** np.random.default_rng(1).uniform(-2.5, 0.5, 16)).astype(np.float32)
    set_const(dw.weights, const_array(dw.weights) * k.reshape(1, 1, 16, 1))
    set_const(dw.bias, const_array(dw.bias) * k)
    set_const(pw.weights, const_array(pw.weights) / k.reshape(1, 1, 16, 1))
    x_train, _, x_test, y_test = examples.digits()
    return {"model": portable, "calib": [{"images": x_train[:200]}], "x": x_test, "y": y_test}


def _accuracy(model, x, y):
    runner = GraphRunner(model)
    return 100 * float(np.mean(np.argmax(runner({"images": x})[model.outputs[0].name], -1) == y))


def test_per_tensor_equalization_recovers_what_per_tensor_weights_lose(relu_mobilenet):
    """Per-tensor int8 (minmax, no transform) loses accuracy on the depthwise net; adding
    equalization recovers at least 80 % of that loss (measured in the fake-quant TF graph, the
    decisions every target executes)."""
    m, x, y = relu_mobilenet["model"], relu_mobilenet["x"], relu_mobilenet["y"]
    engine = Engine(m, relu_mobilenet["calib"])
    fp32 = _accuracy(m, x, y)
    plain = _accuracy(engine.quantize(Recipe.parse("minmax+per_tensor"))[0], x, y)
    equalized = _accuracy(engine.quantize(Recipe.parse("minmax+equalize+per_tensor"))[0], x, y)
    assert fp32 - plain > 5, (fp32, plain)  # the failure is real
    assert fp32 - equalized <= 0.2 * (fp32 - plain), (fp32, plain, equalized)


def test_candidates_share_statistics(relu_mobilenet, monkeypatch):
    """Recipes that differ only in their calibration method collect statistics once."""
    import tfopt.quantizing.engine.statistics as statistics

    calls = []
    real = statistics.collect
    monkeypatch.setattr(statistics, "collect", lambda *a, **k: calls.append(1) or real(*a, **k))
    engine = Engine(relu_mobilenet["model"], relu_mobilenet["calib"])
    for method in ("minmax", "percentile", "entropy", "mse"):
        quantized, report = engine.quantize(Recipe(method))
        assert report.recipe == method and any(n.op.startswith("FakeQuant") for n in quantized.graph_def.node)
    assert len(calls) == 1


def test_weight_grids_share_equalization_and_float_means(relu_mobilenet, monkeypatch):
    """8-bit and 7-bit weights (TFLite's and ONNX's grids) equalize once and measure the float
    layer means once; each grid's corrected biases equal a fresh engine's (float32 sums: 1e-5)."""
    import tfopt.quantizing.engine.equalize as equalize

    calls = []
    real = equalize.equalize
    monkeypatch.setattr(equalize, "equalize", lambda *a, **k: calls.append(1) or real(*a, **k))
    engine = Engine(relu_mobilenet["model"], relu_mobilenet["calib"])
    recipes = [Recipe.parse(r) for r in ("minmax+equalize+bias_correction", "minmax+equalize+bias_correction+7bit",
                                         "minmax+equalize+bias_correction+per_tensor")]
    reports = [engine.quantize(r)[1].transforms for r in recipes]
    assert len(calls) == 1
    # the float model ran for the first grid only (one session); every grid ran its quantized model
    assert [r["bias_correction"]["passes"]["sessions"] for r in reports] == [2, 1, 1]
    alone = Engine(relu_mobilenet["model"], relu_mobilenet["calib"]).quantize(recipes[1])[1].transforms
    for shared, fresh in zip(reports[1]["bias_correction"]["layers"], alone["bias_correction"]["layers"]):
        assert shared["layer"] == fresh["layer"]
        np.testing.assert_allclose(shared["max_abs"], fresh["max_abs"], rtol=1e-3, atol=1e-5)


class _Options:
    quantizer, int8_recipe, calibration_method, per_tensor = "tfopt", "auto", None, False
    keep_float, auto_keep_float, accuracy_control, adaround_budget = (), None, None, None


def test_recipe_search_keeps_what_the_measurements_say(relu_mobilenet):
    """The best score wins; a candidate that trips a gate is never kept; ties keep the simpler."""
    scores = {str(c): 90.0 for c in CANDIDATES}
    scores.update({"mse+equalize": 97.0, "entropy+equalize+bias_correction": 99.0})
    seen = []

    def evaluate(target, model):
        recipe = seen[-1] if seen else ""
        score = scores.get(recipe.replace("+7bit", "").replace("+fixed_ranges", ""), 90.0)  # (softmax: the target's)
        return (score, 0.0), (None if recipe.startswith("entropy+equalize") else {"accuracy": score})

    plan = Int8Plan(relu_mobilenet["model"], relu_mobilenet["calib"], _Options(), evaluate=evaluate)
    real = plan.engine.quantize
    plan.engine.quantize = lambda recipe: (seen.append(str(recipe)), real(recipe))[1]  # type: ignore[method-assign]
    plan.model_for("tflite")
    tried = plan.searches["tflite"]
    assert [t["recipe"] for t in tried if t["kept"]] == ["mse+equalize+fixed_ranges"]  # 99 failed its gate
    assert len(tried) == len(CANDIDATES) and not next(t for t in tried if t["recipe"].startswith("entropy+eq"))["passes_gates"]


@pytest.mark.parametrize("quantizer", ["tfopt"])
def test_every_target_runs_the_engines_int8(digits_model, tmp_path, quantizer):
    """Default int8: every conv/dense layer runs int8 kernels in TFLite, ONNX Runtime and OpenVINO,
    and TFLite and ONNX Runtime execute the same decisions (top-1 agreement 100 % on held-out data;
    OpenVINO's 7-bit weights: at least 95 %)."""
    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    out = str(tmp_path / "out")
    result = tfopt.convert(digits_model["path"], out, to=["tflite", "onnx", "openvino"], quantize=["int8"],
                           calibration=digits_model["calib"], eval_data=digits_model["eval"], report_runs=2)
    spec = manifest_model(out)
    x = digits_model["x"][:120]
    tops = {}
    for a in result.artifacts:
        assert a.quantizer == "tfopt" and a.int8_ops["float"] == 0 and a.int8_ops["int8"] >= 2, (a.format, a.int8_ops)
        runner = runner_for(a.format, f"{out}/{a.path}", spec)
        tops[a.format] = np.concatenate([np.argmax(runner({"images": x[i:i + 1]})[spec.outputs[0].name], -1)
                                         for i in range(len(x))])
    assert np.mean(tops["tflite"] == tops["onnx"]) == 1.0
    assert np.mean(tops["openvino"] == tops["tflite"]) >= 0.95
    assert result.int8["recipe"] and result.engine_fallbacks == {}
    for row in result.report["artifacts"]:  # within a point of float (the digits CNN is an easy case)
        assert row["accuracy_drop"] <= 1.5, row


def test_a_converter_that_cannot_express_the_engine_graph_falls_back_and_says_so(digits_model, tmp_path,
                                                                              monkeypatch):
    import tfopt
    import tfopt.emitters.tflite as tflite_emitter

    real = tflite_emitter.emit

    def refuse_fake_quants(job):
        if job.quantization_aware:
            raise ConversionError("TFLite builtins lack Erfc")
        return real(job)

    monkeypatch.setattr(tflite_emitter, "emit", refuse_fake_quants)
    events = []
    result = tfopt.convert(digits_model["path"], str(tmp_path / "out"), to=["tflite", "onnx"], quantize=["int8"],
                           calibration=digits_model["calib"], report_runs=2, progress=events.append)
    kinds = {a.format: a.quantizer for a in result.artifacts}
    assert kinds == {"tflite": "native", "onnx": "tfopt"}
    assert "Erfc" in result.engine_fallbacks["tflite"]
    assert any(isinstance(e, str) and "tflite int8: its converter cannot express" in e for e in events)


def test_adaround_in_a_recipe_takes_the_calibration_as_convert_loads_it(relu_mobilenet):
    """convert hands the engine a list of feed dicts (tfopt.verification.calibration); AdaRound reads it."""
    x = relu_mobilenet["calib"][0]["images"]
    feeds = [{"images": x[i:i + 50]} for i in range(0, 200, 50)]
    engine = Engine(relu_mobilenet["model"], feeds, adaround_budget=5.0)
    quantized, report = engine.quantize(Recipe.parse("minmax+adaround"))
    assert report.transforms["adaround"]["layers"] and any(n.op.startswith("FakeQuant") for n in quantized.graph_def.node)
