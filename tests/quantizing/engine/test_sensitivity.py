"""--auto-keep-float on tfopt's engine: each quantized group ranked by quantizing it alone in the
fake-quant graph, the worst kept in float until every target is within the bound, the same set in
every target."""

from __future__ import annotations

import numpy as np

from tests.quantizing.native.test_ranking import KEPT_FLOAT_AGREEMENT, outlier_model  # noqa: F401  (fixture)
from tfopt.conversion.convert import convert


def test_engine_ranks_the_outlier_first_and_keeps_it_float_in_every_target(outlier_model, tmp_path):  # noqa: F811
    path, calib = outlier_model
    # min-max ranges, no equalization: the outlier weights set every channel's scale (the engine's
    # default recipe survives this layer: test_layers.py)
    plain = convert(path, str(tmp_path / "plain"), to=["tflite", "onnx", "openvino"], quantize=["int8"],
                    calibration=calib, int8_recipe="minmax")
    assert min(a["fidelity"]["top1_agreement"] for a in plain.report["artifacts"]) < 60
    result = convert(path, str(tmp_path / "auto"), to=["tflite", "onnx", "openvino"], quantize=["int8"],
                     calibration=calib, int8_recipe="minmax", auto_keep_float=5.0)
    ranking = result.layer_errors["tflite/int8"]
    assert "outlier" in ranking[0]["layer"] and ranking[0]["output_error"] > 10 * ranking[1]["output_error"]
    kept = {key: tuple(value) for key, value in result.keep_float.items()}
    assert set(kept) == {"tflite/int8", "onnx/int8", "openvino/int8"}
    assert len(set(kept.values())) == 1  # one decision, the same in every target
    # How many layers the bound needs depends on the CPU's int8 kernels (AVX-512 VNNI rounds otherwise):
    # assert the order and the stopping rule, not a count
    chosen = list(kept["tflite/int8"])
    assert chosen and "outlier" in chosen[0]
    assert chosen == [r["layer"] for r in ranking[:len(chosen)]]  # the worst first, in ranking order
    for artifact in result.report["artifacts"]:
        assert artifact["quantizer"] == "tfopt" if "quantizer" in artifact else True
        assert artifact["fidelity"]["top1_agreement"] >= KEPT_FLOAT_AGREEMENT[artifact["format"]], artifact["format"]
    steps = result.int8["auto_keep_float"]["steps"]
    assert steps[0]["kept"] == 0 and steps[0]["simulated_drop"] > 5.0  # int8 everywhere: over the bound
    assert steps[-1]["kept"] == len(chosen) and set(steps[-1]["targets"]) == {"tflite", "onnx", "openvino"}
    assert [s["kept"] for s in steps] == sorted(s["kept"] for s in steps)  # one more layer a step, never fewer


def test_rank_and_choose_on_the_engine_directly(outlier_model):  # noqa: F811
    import tfopt
    from tfopt.quantizing.engine.quantize import Engine, Recipe
    from tfopt.quantizing.engine.sensitivity import choose_float_layers, groups, rank_groups

    path, calib = outlier_model
    model, _, _, _ = tfopt.optimize(path)
    samples = {"x": np.load(calib)["x"]}
    engine = Engine(model, samples)
    recipe = Recipe.parse("minmax")
    ranking = rank_groups(engine, recipe)
    assert sorted(r["layer"] for r in ranking) == sorted(name for name, _ in groups(model))
    assert "outlier" in ranking[0]["layer"]
    # a bound the int8 graph already meets keeps nothing: one step, measured once
    kept, steps = choose_float_layers(engine, recipe, 100.0, ranking)
    assert kept == [] and len(steps) == 1
    kept, steps = choose_float_layers(engine, recipe, 5.0, ranking)
    # greedy: the worst first, in ranking order, stopping at the first set within the bound (every
    # earlier step was over it); how many it takes depends on the CPU's kernels, so no count
    assert kept and kept == [r["layer"] for r in ranking[:len(kept)]]
    assert steps[-1]["simulated_drop"] <= 5.0
    assert all(step["simulated_drop"] > 5.0 for step in steps[:-1])
