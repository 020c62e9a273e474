"""TFMOT post-training compression (--cluster, --prune) on the session's trained Keras 2 digits CNN
(tests/conftest.py: ``keras2_digits``): unique values, zeros, gzip sizes and accuracy, measured in the
artifacts themselves."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers import counting, reads
from tfopt import cli
from tfopt.conversion.convert import convert

pytestmark = pytest.mark.usefixtures("tfmot")  # skipped without TFMOT (tests/conftest.py)


@pytest.fixture(scope="module")
def plain_gzip(keras2_digits, tmp_path_factory):
    """The gzip size of the uncompressed fp32 TFLite file of the session's tf_keras digits CNN
    (tests/conftest.py: ``keras2_digits``)."""
    baseline = convert(keras2_digits["path"], str(tmp_path_factory.mktemp("plain") / "out"), to=["tflite"],
                       report_runs=1)
    return baseline.report["artifacts"][0]["gzip_bytes"]


def _kernels(artifact):
    """The artifact's conv/dense kernels (the weight tensors of 100+ values), by layer."""
    return {layer: w for w in artifact["weights"] for layer in ("conv1", "conv2", "dense", "probs")
            if f"/{layer}/" in w["name"] and ("Conv2D" in w["name"] or "MatMul" in w["name"])}


def test_cluster_16_snaps_weights_and_shrinks_gzip(keras2_digits, plain_gzip, tmp_path):
    out = str(tmp_path / "c16")
    result = convert(keras2_digits["path"], out, to=["tflite", "onnx"], cluster=16, exclude=["probs"],
                     eval_data=keras2_digits["eval"], report_runs=1)
    tflite = next(a for a in result.report["artifacts"] if a["format"] == "tflite")
    kernels = _kernels(tflite)
    assert {"conv1", "conv2", "dense", "probs"} <= set(kernels)
    assert all(kernels[layer]["unique"] <= 16 for layer in ("conv1", "conv2", "dense"))
    assert plain_gzip >= 3 * tflite["gzip_bytes"]  # the bar: 3x smaller gzip
    assert result.report["compression"]["post_training_only"] is True
    layers = {r["layer"]: r for r in result.report["compression"]["layers"]}
    assert layers["probs"]["left_alone"] == "excluded (--exclude)" and layers["dense"]["actions"] == ["clustered"]

    # the excluded layer is untouched: its kernel in the ONNX file is the trained one, bit for bit
    import onnx
    from onnx import numpy_helper

    original = keras2_digits["model"].get_layer("probs").get_weights()[0]
    initializers = [numpy_helper.to_array(t) for t in onnx.load(os.path.join(out, "model.fp32.onnx")).graph.initializer]
    assert any(a.shape == original.shape and np.array_equal(a, original) for a in initializers)


def test_prune_half_leaves_zeros_and_shrinks_gzip(keras2_digits, plain_gzip, tmp_path):
    result = convert(keras2_digits["path"], str(tmp_path / "p50"), to=["tflite"], prune=0.5, report_runs=1)
    tflite = result.report["artifacts"][0]
    assert all(k["sparsity"] >= 0.5 for k in _kernels(tflite).values())
    assert tflite["gzip_bytes"] < 0.75 * plain_gzip


def test_finetune_recovers_accuracy(keras2_digits, tmp_path):
    with counting(np, "load") as counts:
        result = convert(keras2_digits["path"], str(tmp_path / "ft"), to=["tflite"], prune=0.5,
                         finetune_data=keras2_digits["train"], finetune_epochs=3, eval_data=keras2_digits["eval"],
                         report_runs=1)
    assert reads(counts, keras2_digits["train"], keras2_digits["eval"]) == [1, 1]  # each file read once
    artifact = result.report["artifacts"][0]
    assert result.report["compression"]["finetuned"] and all(k["sparsity"] >= 0.5 for k in _kernels(artifact).values())
    assert artifact["accuracy_drop"] <= 2.0  # points, against the uncompressed model


def test_clustered_int8_runs_in_every_runtime(keras2_digits, tmp_path):
    with counting(np, "load") as counts:
        result = convert(keras2_digits["path"], str(tmp_path / "int8"), to=["tflite", "onnx", "openvino"],
                         quantize=["int8"], calibration=keras2_digits["calib"], cluster=16,
                         eval_data=keras2_digits["eval"], report_runs=1)
    assert reads(counts, keras2_digits["calib"], keras2_digits["eval"]) == [1, 1]  # each file read once
    assert {a["format"] for a in result.report["artifacts"]} == {"tflite", "onnx", "openvino"}
    for artifact in result.report["artifacts"]:  # measured in LiteRT, ONNX Runtime and OpenVINO
        assert artifact["accuracy_drop"] <= 5.0, artifact["format"]


def test_inspect_artifact_shows_unique_values_and_zeros(keras2_digits, tmp_path, capsys):
    out = str(tmp_path / "c8")
    convert(keras2_digits["path"], out, to=["tflite"], cluster=8, report_runs=1)
    assert cli.main(["inspect", os.path.join(out, "model.fp32.tflite")]) == 0
    text = capsys.readouterr().out
    assert "gzip" in text and "unique" in text and "conv2/Conv2D" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "1"], "--cluster 1: must be an integer >= 2"),  # tfopt._checks.RANGES: one message
    (["--prune", "1.5"], r"--prune 1.5: sparsity is a fraction in \(0, 1\)"),
    (["--cluster", "8", "--exclude", "dens"], r"--exclude dens: no such layer. Did you mean: dense\?"),
    (["--exclude", "dense"], "--exclude/--finetune-data apply to --cluster or --prune"),
], ids=["clusters", "sparsity", "unknown-layer", "nothing-to-exclude-from"])
def test_bad_compression_options(keras2_digits, tmp_path, capsys, args, message):
    import re

    code = cli.main(["convert", keras2_digits["path"], "-o", str(tmp_path / "out"), "--to", "tflite", *args])
    assert code == 2 and re.search(message, capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "out")


def test_keras3_and_savedmodel_get_a_clear_error(digits_model, tmp_path, capsys):
    keras3 = str(tmp_path / "k3.keras")
    digits_model["keras"].save(keras3)
    assert cli.main(["convert", keras3, "-o", str(tmp_path / "a"), "--cluster", "16"]) == 2
    err = capsys.readouterr().err
    assert "Keras 3 model" in err and "tf_keras" in err and "save_weights" in err
    assert cli.main(["convert", digits_model["path"], "-o", str(tmp_path / "b"), "--prune", "0.5"]) == 2
    assert "is a savedmodel model; TFMOT clusters and prunes Keras 2" in capsys.readouterr().err
