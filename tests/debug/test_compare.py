"""`tfopt debug compare` pinpoints a perturbed layer in all three targets, and splits an int8
artifact's error into conversion and quantization, with the real converters and runtimes; the layer
alignment it stands on, on the same real artifacts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tfopt.debug.compare import compare, first_jump

FP32_REL = 1e-4  # an fp32 artifact agrees with TF at each aligned layer (measured: ~1e-7)


def _samples(debug_models):
    x = np.load(debug_models["data"])["x"][:4]
    return [{"x": x[i:i + 1]} for i in range(len(x))]


def test_first_jump_rule():
    rows = [{"node": n, "index": i, "rel_err": e} for i, (n, e) in enumerate([("a", 1e-7), ("b", 2e-2), ("c", 5e-2)])]
    assert first_jump(rows, 1e-3)["node"] == "b"
    assert first_jump(rows, 1e-1) is None
    assert first_jump(rows[1:], 1e-3)["node"] == "b"  # the first layer: the floor alone


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_fp32_artifact_agrees_with_tf_at_every_layer(target, debug_models, portable):
    result = compare(portable, [debug_models["fp32"][target]], _samples(debug_models))
    (artifact,) = result["artifacts"]
    assert artifact["compared"] >= 4 and artifact["first_jump"] is None
    assert max(r["rel_err"] for r in artifact["layers"]) < FP32_REL, artifact["layers"]


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_every_conv_layer_of_a_real_artifact_is_aligned(target, debug_models, portable):
    """The alignment (:mod:`tfopt.runtimes.align`) on the real fp32 artifacts, opened with their
    intermediate tensors kept: each ReLU (the boundary of conv+bias+relu) and the output has a tensor.
    (Here, not in a file of its own: the session's debug models are built once per test process.)"""
    from tfopt.debug.intermediates import open_intermediates
    from tfopt.runtimes.align import align, boundaries
    from tfopt.targets import target_of_file

    path = debug_models["fp32"][target]
    record = target_of_file(path)
    opened = open_intermediates(target, os.path.join(path, record.run_file) if os.path.isdir(path) else path, portable)
    chosen = boundaries(align(portable.graph_def, opened.tensors, opened.anchors),
                        {t.key for t in opened.tensors if t.value} - opened.interior)
    relus = [n.name for n in portable.graph_def.node if n.op == "Relu"]
    assert len(relus) == 3 and all(r in chosen for r in relus), sorted(chosen)
    assert portable.outputs[0].node in chosen


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_pinpoints_the_perturbed_layer(target, debug_models, portable):
    """c2's weights perturbed in the artifact, compared against the original model: c1 agrees, c2 jumps."""
    result = compare(portable, [debug_models["perturbed"][target]], _samples(debug_models))
    (artifact,) = result["artifacts"]
    jump = artifact["first_jump"]
    assert jump is not None and "/c2" in jump["node"] and jump["node"].endswith("Relu"), artifact["layers"]
    by_node = {r["node"]: r["rel_err"] for r in artifact["layers"]}
    c1 = next(v for k, v in by_node.items() if "/c1" in k)
    assert c1 < FP32_REL and jump["rel_err"] > 0.05


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_outlier_layer_is_the_first_quantization_jump_not_a_conversion_one(target, debug_models, portable):
    result = compare(portable, [debug_models["fp32"][target], debug_models["int8"][target]], _samples(debug_models))
    quantized = next(a for a in result["artifacts"] if a["quantized"])
    split = quantized["split"]
    assert split["conversion"]["first_jump"] is None
    assert max(r["rel_err"] for r in split["conversion"]["layers"]) < FP32_REL
    jump = split["quantization"]["first_jump"]
    assert jump is not None and "/c2" in jump["node"], split["quantization"]["layers"]
    assert jump["rel_err"] > 0.3


def test_cli_writes_json_html_and_a_table(debug_models, tmp_path, capsys):
    from tfopt.cli import main

    html = tmp_path / "c.html"
    code = main(["debug", "compare", debug_models["model"], debug_models["perturbed"]["onnx"],
                 "--inputs", debug_models["data"], "-o", str(tmp_path), "--html", str(html)])
    assert code == 0
    out = capsys.readouterr().out
    assert "first jump: " in out and "/c2" in out.split("first jump: ")[1].splitlines()[0]
    with open(tmp_path / "compare.json") as f:
        result = json.load(f)
    assert result["inputs"]["source"] == "given" and result["artifacts"][0]["target"] == "onnx"
    page = html.read_text()
    assert "<svg" in page and "<polyline" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize(("make", "message"), [
    (lambda d, tmp: str(tmp / "weights.txt"), "not a tflite, onnx or openvino artifact"),
    (lambda d, tmp: d["fp32"]["onnx"], "does not come from|not an input|'y' is not a model input"),
], ids=["unknown-file-type", "input-name-mismatch"])
def test_errors_are_typed_and_name_the_fault(make, message, debug_models, tmp_path, capsys):
    from tfopt.cli import main

    (tmp_path / "weights.txt").write_text("x")
    np.savez(tmp_path / "bad.npz", y=np.zeros((2, 12, 12, 3), np.float32))
    args = ["debug", "compare", debug_models["model"], make(debug_models, tmp_path), "-o", str(tmp_path)]
    if "input" in message:
        args += ["--inputs", str(tmp_path / "bad.npz")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert any(m in err for m in message.split("|")), err


def test_artifact_of_a_different_model(debug_models, tmp_path, capsys):
    """A graph with other node names (a tf.function) and the same input name: refused by name."""
    import tensorflow as tf

    from tfopt.cli import main
    from tfopt.conversion.convert import convert

    module = tf.Module()
    module.f = tf.function(lambda x: {"output_0": tf.nn.sigmoid(tf.reduce_sum(x * 3.0, axis=[1, 2]))},
                           input_signature=[tf.TensorSpec((None, 12, 12, 3), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures=module.f)
    convert(str(tmp_path / "other"), str(tmp_path / "other_out"), to=["onnx"], quantize=["fp32"])
    assert main(["debug", "compare", debug_models["model"], str(tmp_path / "other_out" / "model.fp32.onnx"),
                 "-o", str(tmp_path)]) == 2
    assert "different model" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "compare.json")


def test_html_chart_renders_every_curve_in_chromium(debug_models, portable, tmp_path):
    """compare.html in headless Chromium: one legend entry and one line of points per curve (each
    artifact vs TF, and the int8 artifact's quantization split), log ticks, no JavaScript error."""
    from tests.browser import check_charts, render
    from tfopt.debug.report import series, write_html

    result = compare(portable, [debug_models["fp32"]["tflite"], debug_models["int8"]["tflite"]],
                     _samples(debug_models))
    write_html(result, str(tmp_path / "compare.html"))
    page = render(str(tmp_path / "compare.html"), str(tmp_path / "profile"))
    check_charts(page, legend=3)
    (chart,) = page.charts
    curves = series(result)
    assert chart.legend == [label for label, _ in curves]
    assert chart.marks == sum(len(rows) for _, rows in curves)
    assert any(t.startswith("1e-") for t in chart.ticks)  # the error axis is logarithmic


# each loader keeps tensors outside the graph in its own tests (tests/emitters/test_large.py); compare
# needs one format in the fast lane
@pytest.mark.parametrize("kind", [pytest.param("keras", marks=pytest.mark.slow), "tf1-checkpoint"])
def test_a_model_with_external_tensors_compares_at_every_layer(kind, tmp_path):
    """A model whose table and kernels are kept outside its graph (``--external-threshold``): TFLite
    and OpenVINO convert it from its serving SavedModel, ONNX from the graph itself; each artifact's
    layers still carry the graph's names, so every layer is aligned and compared."""
    from types import SimpleNamespace

    from tests.external.conftest import THRESHOLD, recommender, tf1_checkpoint
    from tfopt.conversion.pipeline import optimize_model
    from tfopt.external.emit import emit_large
    from tfopt.verification.testing import random_inputs

    if kind == "keras":
        source, outputs = str(tmp_path / "rec.keras"), None
        recommender(400, 8, 16).save(source)
    else:
        source, outputs = tf1_checkpoint(str(tmp_path), 600, resource=True) + ".meta", ["probs"]
    portable, *_ = optimize_model(source, external_threshold=THRESHOLD, outputs=outputs)
    assert portable.external
    paths = [emit_large(target, SimpleNamespace(portable=portable, path=str(tmp_path / name), precision="fp32",
                                                quantize=None, quantization_aware=False))
             for target, name in (("tflite", "m.tflite"), ("onnx", "m.onnx"), ("openvino", "ov"))]
    samples = [random_inputs(portable.inputs, seed=s, graph_def=portable.graph_def) for s in (0, 1)]
    result = compare(portable, [p if not p.endswith("model.xml") else os.path.dirname(p) for p in paths], samples)
    for artifact in result["artifacts"]:
        assert artifact["compared"] >= 3 and artifact["first_jump"] is None, (artifact["target"], artifact)
        assert max(r["rel_err"] for r in artifact["layers"]) < FP32_REL, artifact["layers"]
