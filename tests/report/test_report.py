"""The report (json/md/html), `tfopt verify`, and CI gates with JUnit output."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tfopt import cli
from tfopt.conversion.convert import convert
from tfopt.errors import GateFailure


@pytest.fixture(scope="module")
def reported(digits_model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report") / "out")
    convert(digits_model["path"], out, to=["pb", "tflite", "onnx"], quantize=["none", "int8"],
            calibration=digits_model["calib"], eval_data=digits_model["eval"], report_runs=5)
    return out


def test_report_schema(reported):
    with open(os.path.join(reported, "report.json")) as f:
        report = json.load(f)
    assert {"reference", "artifacts", "passes", "tools", "stage_seconds", "gates", "samples"} <= set(report)
    assert report["reference"]["accuracy"]["top1"] > 85 and report["reference"]["latency_ms"]["median"] > 0
    assert len(report["artifacts"]) == 5
    for a in report["artifacts"]:
        assert {"format", "precision", "path", "bytes", "gzip_bytes", "fidelity", "accuracy", "accuracy_drop",
                "latency_ms"} <= set(a)
        assert {"max_abs_err", "mean_abs_err", "rel_err", "cosine", "top1_agreement"} <= set(a["fidelity"])
        assert {"median", "p90", "runs", "threads"} <= set(a["latency_ms"]) and a["latency_ms"]["runs"] == 5
        assert a["latency_ms"]["p90"] >= a["latency_ms"]["median"] > 0
        assert 0 <= a["fidelity"]["top1_agreement"] <= 100 and a["accuracy"]["top5"] >= a["accuracy"]["top1"]
        if a["precision"] == "fp32":
            assert a["fidelity"]["max_abs_err"] < 1e-4 and abs(a["accuracy_drop"]) < 1e-9
        if a["precision"] == "int8":  # what its runtime executes (tfopt.quantizing.int8_ops)
            ops = a["int8_ops"]
            assert ops["int8"] + ops["float"] == len(ops["layers"]) and ops["fused"] + ops["unfused"] <= len(ops["layers"])
            assert ops["float_islands"] == len(ops["islands"])
        else:
            assert a["int8_ops"] is None
    assert any(p["name"] == "fold_mul_into_weights" for p in report["passes"])
    texts = {}
    for name in ("report.md", "report.html"):
        with open(os.path.join(reported, name)) as f:
            texts[name] = f.read()
        assert "tflite" in texts[name] and "int8" in texts[name]
    assert "<svg" in texts["report.html"]


def test_report_html_charts_render_in_chromium(reported, tmp_path):
    """report.html in headless Chromium: size vs latency and accuracy vs latency, a point per
    artifact, a legend entry per target and per precision, tick labels, no JavaScript error."""
    from tests.browser import check_charts, render

    with open(os.path.join(reported, "report.json")) as f:
        report = json.load(f)
    page = render(os.path.join(reported, "report.html"), str(tmp_path / "profile"))
    check_charts(page)
    charts = {c.name: c for c in page.charts}
    assert {"size vs latency", "top-1 accuracy, % vs latency"} <= set(charts), list(charts)
    for name in ("size vs latency", "top-1 accuracy, % vs latency"):
        chart = charts[name]
        assert chart.marks == len(report["artifacts"]) == 5
        assert {"pb", "tflite", "onnx", "precision:", "fp32", "int8"} <= set(chart.legend), chart.legend
    assert "<table>" in page.dom  # the table stays


def test_gate_units_are_the_tables(reported):
    """top1_agreement and accuracy are percent in report.json, the table and the gates alike."""
    from tfopt.report.gates import evaluate_gates, parse_gate

    with open(os.path.join(reported, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(reported, "report.md")) as f:
        table = f.read()
    fp32 = [a for a in report["artifacts"] if a["precision"] == "fp32"]
    for a in fp32:
        assert a["fidelity"]["top1_agreement"] == 100.0 and f"{a['accuracy']['top1']:.2f}%" in table
    results = evaluate_gates(report, [parse_gate("fp32:top1_agreement<90"), parse_gate("fp32:accuracy<50")])
    assert results and not any(r["failed"] for r in results)
    assert {r["unit"] for r in results} == {"%", "% (or the --metric score)"}


def _perturb_onnx(path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    weights = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    array = numpy_helper.to_array(weights).copy()
    array.flat[: max(1, array.size // 10)] += 0.5  # a tampered or mis-converted artifact
    weights.CopyFrom(numpy_helper.from_array(array, weights.name))
    onnx.save(model, path)


def test_verify_catches_a_perturbed_artifact(reported, digits_model, tmp_path, capsys):
    out = str(tmp_path / "copy")
    shutil.copytree(reported, out)
    _perturb_onnx(os.path.join(out, "model.fp32.onnx"))
    junit = str(tmp_path / "junit.xml")
    code = cli.main(["verify", out, "--reference", digits_model["path"], "--report-runs", "3",
                     "--fail-if", "fp32:max_abs_err>1e-4", "--junit", junit])
    captured = capsys.readouterr()
    # beyond the fp32 verification bound on the report's samples: wrong, exit 7 (the gates' JUnit file still written)
    assert code == 7, captured.err
    assert "onnx fp32" in captured.err and "bound 0.0001" in captured.err
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "1"  # pb, tflite, onnx fp32; onnx fails
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["onnx/fp32: fail-if fp32:max_abs_err>1e-4"]


def test_gates_pass_and_fail(reported, digits_model):
    from tfopt.report.build import verify_outdir

    report = verify_outdir(reported, digits_model["path"], runs=3, fail_if=["int8:accuracy_drop>5", "cosine<0.99"],
                           eval_data=digits_model["eval"])
    assert report["gates"] and not any(g["failed"] for g in report["gates"])
    with pytest.raises(GateFailure, match=r"tflite/int8: int8:max_abs_err>1e-6"):
        verify_outdir(reported, digits_model["path"], runs=3, fail_if=["int8:max_abs_err>1e-6"])


@pytest.mark.parametrize(("gate", "message"), [
    ("max_abs_err>>1", "expected \\[FORMAT\\[/PRECISION\\]:\\]METRIC OP VALUE"),
    ("latency>5", "unknown metric 'latency'"),
], ids=["syntax", "unknown-metric"])
def test_bad_gate_is_an_option_error(reported, digits_model, capsys, gate, message):
    import re

    code = cli.main(["verify", reported, "--reference", digits_model["path"], "--report-runs", "1", "--fail-if", gate])
    assert code == 2 and re.search(message, capsys.readouterr().err)


def test_verify_one_artifact(reported, digits_model, tmp_path, capsys):
    """`tfopt verify ARTIFACT`: one file, precision read from its name; the report goes to
    --report-dir only, nothing is written next to the artifact."""
    before = sorted(os.listdir(reported))
    report_dir = str(tmp_path / "r")
    code = cli.main(["verify", os.path.join(reported, "model.int8.tflite"), "--reference", digits_model["path"],
                     "--eval-data", digits_model["eval"], "--report-runs", "2", "--report-dir", report_dir,
                     "--fail-if", "accuracy_drop>5"])
    assert code == 0, capsys.readouterr().err
    assert sorted(os.listdir(reported)) == before
    with open(os.path.join(report_dir, "report.json")) as f:
        (artifact,) = json.load(f)["artifacts"]
    assert (artifact["format"], artifact["precision"]) == ("tflite", "int8")
    assert artifact["accuracy_drop"] < 5 and artifact["fidelity"]["cosine"] > 0.99
    # counted from the file (no manifest): every layer int8, the table says how many fused an activation
    assert artifact["int8_ops"]["int8"] == len(artifact["int8_ops"]["layers"]) > 0
    assert f"int8 {artifact['int8_ops']['int8']}/{artifact['int8_ops']['int8']}, act fused" in capsys.readouterr().out

    perturbed = str(tmp_path / "bad.onnx")
    shutil.copy(os.path.join(reported, "model.fp32.onnx"), perturbed)
    _perturb_onnx(perturbed)
    code = cli.main(["verify", perturbed, "--reference", digits_model["path"], "--report-runs", "1",
                     "--fail-if", "max_abs_err>1e-4"])
    assert code == 10 and "onnx/unknown: max_abs_err>1e-4" in capsys.readouterr().err


def test_verify_what_is_not_an_artifact(digits_model, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code = cli.main(["verify", str(tmp_path / "notes.txt"), "--reference", digits_model["path"]])
    assert code == 2 and "not an artifact tfopt can run" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_and_in_ci_logs():
    import io

    from tfopt.report.console import ProgressPrinter
    from tfopt.terminal.progress import Step

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        show = ProgressPrinter(stream, width=4)
        show("stage")
        for i in range(1, 5):
            show(Step("layers", i, 4))
        show("next")
    assert log.getvalue() == "  ... stage\n  1/4 layers\n  4/4 layers\n  ... next\n"  # no \r in CI logs
    drawn = tty.getvalue()
    assert drawn.startswith("  ... stage\n") and drawn.endswith("  ... next\n")
    assert "4/4" in drawn and "layers" in drawn and "\r" in drawn  # a bar redrawn in place
    assert str(Step("layers", 2, 4)) == "layers (2/4)"  # progress=print works


def test_custom_metric_scores_every_artifact(reported, digits_model):
    from tfopt.report.build import verify_outdir

    report = verify_outdir(reported, digits_model["path"], runs=1, eval_data=digits_model["eval"],
                           metric="tests.model_fns:balanced_accuracy", fail_if=["fp32:accuracy_drop>0.001"])
    assert report["metric"] == "tests.model_fns:balanced_accuracy"
    ref = report["reference"]["accuracy"]["score"]
    assert 0.85 < ref <= 1.0
    for artifact in report["artifacts"]:
        assert artifact["accuracy_drop"] == pytest.approx(ref - artifact["accuracy"]["score"])
    assert not any(g["failed"] for g in report["gates"])  # fp32 artifacts score the same


def test_regression_metrics(tmp_path):
    """Float labels: MAE/RMSE, and the drop is the MAE increase."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, name="y")(inputs))
    model.export(str(tmp_path / "sm"), verbose=False)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    labels = (model.predict(x, verbose=0)[:, 0] + 0.1).astype(np.float32)  # every prediction 0.1 off
    np.savez(tmp_path / "eval.npz", x=x, labels=labels)
    result = convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=["tflite"], eval_data=str(tmp_path / "eval.npz"),
                     report_runs=1)
    assert result.report["metric"] == "mae/rmse"
    assert result.report["reference"]["accuracy"]["mae"] == pytest.approx(0.1, abs=1e-5)
    assert result.report["reference"]["accuracy"]["rmse"] == pytest.approx(0.1, abs=1e-5)
    assert abs(result.report["artifacts"][0]["accuracy_drop"]) < 1e-5



@pytest.mark.parametrize("head,squeeze,targets", [("sigmoid", False, ["tflite", "onnx", "openvino"]),
                                                   ("sigmoid", True, ["onnx"]), ("logit", False, ["tflite"])])
def test_one_score_binary_classifier_accuracy(tmp_path, head, squeeze, targets):
    """A binary classifier with one unit ([N, 1] or [N]) and integer labels: the class is the score
    past 0.5 (probabilities) or 0 (logits), in the original and every artifact. An argmax over the
    one unit is always class 0: it counted the zero labels, or raised on [N]."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,), name="x")
    score = keras.layers.Dense(1, activation="sigmoid" if head == "sigmoid" else None, name="y")(inputs)
    if squeeze:
        score = keras.layers.Reshape(())(score)
    model = keras.Model(inputs, score)
    model.export(str(tmp_path / "sm"), verbose=False)
    x = np.random.default_rng(2).normal(size=(64, 6)).astype(np.float32)
    scores = np.asarray(model.predict(x, verbose=0)).reshape(-1)
    predicted = scores > (0.5 if head == "sigmoid" else 0.0)
    labels = predicted.astype(np.int64)
    labels[:16] = 1 - labels[:16]  # 48 of 64 right: 75 %, whatever the share of zeros
    np.savez(tmp_path / "eval.npz", x=x, labels=labels)
    result = convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=targets,
                     eval_data=str(tmp_path / "eval.npz"), report_runs=1)
    assert len(result.report["artifacts"]) == len(targets)
    assert result.report["reference"]["accuracy"]["top1"] == pytest.approx(75.0)
    assert result.report["reference"]["accuracy"]["top5"] is None  # two classes: always within five
    for row in result.report["artifacts"]:  # fp32 artifacts: within 1e-5 of the original, the same classes
        assert row["accuracy"]["top1"] == pytest.approx(75.0), row["format"]
        assert row["accuracy_drop"] == pytest.approx(0.0), row["format"]
