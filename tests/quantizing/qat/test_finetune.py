"""int8 by quantization-aware fine-tune from the engine's ranges (tfopt.quantizing.qat.finetune / qat_init):
TFMOT wrappers start at the engine's ranges, the fine-tuned int8 artifacts run int8 kernels in LiteRT,
ONNX Runtime and OpenVINO, and a Keras 3 model is refused with the reason. The model: the session's
tf_keras digits CNN with BatchNorm (tests/conftest.py: ``keras2_digits``)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import counting, reads
from tfopt import cli
from tfopt.conversion.convert import convert
from tfopt.demos import examples
from tfopt.errors import OptionError
from tfopt.quantizing.int8_ops import count_quantized_ops

pytestmark = pytest.mark.usefixtures("tfmot")  # skipped without TFMOT (tests/conftest.py)

TARGETS = ["tflite", "onnx", "openvino"]
MARGIN = 1.0  # top-1 points the fine-tuned int8 may trail the engine's post-training int8 by (360 test digits)


def test_wrappers_start_from_the_engine_ranges(keras2_digits, tmp_path):
    import tfopt
    from tfopt.quantizing.engine.fake_quant import nudge
    from tfopt.quantizing.engine.quantize import quantize_model
    from tfopt.quantizing.qat.finetune import finetune

    portable, _, _, _ = tfopt.optimize(keras2_digits["path"])
    samples = {"images": keras2_digits["x_calib"]}
    _, engine = quantize_model(portable, samples, "minmax")
    qat, report = finetune(portable.keepalive, portable, engine.ranges, samples)  # no data: init only
    assert report.epochs == 0
    # every activation quantizer TFMOT placed found its tensor in the folded graph: the input, each
    # ReLU (after folding Conv->BN->ReLU it is the wrapper's output range), the conv's fused relu, the logits
    by_layer = {(q.layer, q.variable): q for q in report.quantizers}
    # Keras numbers the model's name scope (model_7 when other models were built before): compare below it
    assert {k: q.tensor if "/" not in q.tensor else "model/" + q.tensor.split("/", 1)[1]
            for k, q in by_layer.items()} == {
        ("quantize_layer", "quantize_layer"): "images:0",
        ("quant_relu", "output"): "model/relu/Relu:0",
        ("quant_relu6", "output"): "model/relu6/Relu6:0",
        ("quant_conv2", "post_activation"): "model/conv2/Relu:0",
        ("quant_dense", "post_activation"): "model/dense/Relu:0",
        ("quant_probs", "pre_activation"): "model/probs/BiasAdd:0"}
    for (layer, variable), q in by_layer.items():
        values = {w.name.split("/")[-1].split(":")[0]: float(w.numpy()) for w in qat.get_layer(layer).weights
                  if w.name.split("/")[-1].startswith(variable)}
        assert (values[f"{variable}_min"], values[f"{variable}_max"]) == nudge(*engine.ranges[q.tensor]), layer

    # init only, frozen and converted by TFLite's QAT path: its int8 activation grids are the engine's ranges
    from ai_edge_litert.interpreter import Interpreter

    from tfopt.options import FreezeOptions, OptimizeOptions
    from tfopt.quantizing.qat.finetune import freeze_qat
    from tfopt.targets import TABLE, EmitJob

    frozen = freeze_qat(qat, portable, FreezeOptions(), OptimizeOptions())
    tflite = TABLE["tflite"]
    path = tflite.call("emit", EmitJob(frozen, frozen, str(tmp_path / "init_only.tflite"),
                                       tflite.qat_int8_as or "int8", quantization_aware=True))
    assert count_quantized_ops("tflite", path)["float"] == 0
    grids = {(round(d["quantization"][0], 7), d["quantization"][1]) for d in
             Interpreter(model_path=path).get_tensor_details() if d["dtype"] == np.int8 and d["quantization"][0] > 0}
    for q in by_layer.values():
        lo, hi = nudge(*engine.ranges[q.tensor])
        scale = (hi - lo) / 255  # activations: 8 bits, zero point round(-min/scale) on uint8, -128 on int8
        assert (round(scale, 7), round(-lo / scale) - 128) in grids, q.tensor


@pytest.fixture(scope="module")
def converted(keras2_digits, tmp_path_factory):
    """The engine's post-training int8 and the fine-tuned int8, in every target, measured on held-out digits."""
    common = dict(to=TARGETS, quantize=["int8"], calibration=keras2_digits["calib"], eval_data=keras2_digits["eval"],
                  report_runs=1)
    root = tmp_path_factory.mktemp("qat")
    ptq = convert(keras2_digits["path"], str(root / "ptq"), **common)
    out = str(root / "qat")
    with counting(np, "load") as counts:
        qat = convert(keras2_digits["path"], out, finetune_data=keras2_digits["train"], finetune_epochs=2, **common)
    return {"ptq": ptq, "qat": qat, "out": out,
            "reads": reads(counts, keras2_digits["train"], keras2_digits["eval"], keras2_digits["calib"])}


def test_each_data_file_is_read_once(converted):
    assert converted["reads"] == [1, 1, 1]  # --finetune-data, --eval-data, --calibration


def test_finetuned_int8_runs_int8_kernels_in_every_target(converted):
    result, out = converted["qat"], converted["out"]
    assert {a.format for a in result.artifacts} == set(TARGETS)
    for artifact in result.artifacts:
        ops = count_quantized_ops(artifact.format, os.path.join(out, artifact.path))
        assert ops["int8"] >= 2 and artifact.quantizer == "tfopt", (artifact.format, ops)
    with open(os.path.join(out, "manifest.json")) as f:
        record = json.load(f)["int8_engine"]
    tuned = record["qat_finetune"]
    assert record["recipe"] == {t: "mse+qat_finetune" for t in TARGETS}
    assert tuned["epochs"] == 2 and tuned["samples"] == 1437 and tuned["measured_on"] == "eval-data"
    assert tuned["range_sources"] == {"engine": 6} and tuned["after"] is not None


def test_finetuned_int8_is_as_accurate_as_post_training(converted):
    fp32 = converted["ptq"].report["reference"]["accuracy"]["top1"]
    ptq = {a["format"]: a["accuracy"]["top1"] for a in converted["ptq"].report["artifacts"]}
    qat = {a["format"]: a["accuracy"]["top1"] for a in converted["qat"].report["artifacts"]}
    print(f"\nfp32 {fp32:.2f}; int8 top-1 on 360 held-out digits, engine PTQ -> QAT fine-tune: "
          + ", ".join(f"{t} {ptq[t]:.2f} -> {qat[t]:.2f}" for t in TARGETS))
    for target in TARGETS:
        assert qat[target] >= ptq[target] - MARGIN, target


@pytest.mark.parametrize("kind", ["keras3", "savedmodel"])
def test_a_model_tfmot_cannot_wrap_is_refused(keras2_digits, tmp_path, kind):
    import keras

    model = examples.keras_cnn()
    path = str(tmp_path / ("k3.keras" if kind == "keras3" else "sm"))
    model.save(path) if kind == "keras3" else model.export(path, verbose=False)
    with pytest.raises(OptionError, match="needs a Keras 2 \\(tf_keras\\) model") as info:
        convert(path, str(tmp_path / "out"), to=["tflite"], quantize=["int8"], calibration=keras2_digits["calib"],
                finetune_data=keras2_digits["train"])
    assert ("Keras 3 model" in str(info.value)) == (kind == "keras3")
    assert keras.__version__.startswith("3")


def test_cli_refuses_finetune_data_without_int8(keras2_digits, tmp_path, capsys):
    code = cli.main(["convert", keras2_digits["path"], "-o", str(tmp_path / "out"), "--to", "tflite",
                     "--finetune-data", keras2_digits["train"]])
    assert code == 2 and "--finetune-data fine-tunes --cluster/--prune, or int8" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_a_keras_file_is_judged_by_its_content_not_its_name(keras2_digits, tmp_path):
    """A Keras 2 ``.h5`` shipped as ``.hd5`` (CheckM2) passes the path check; a Keras 3 archive under a
    name without ``.keras`` is still refused as Keras 3, not as "not a Keras .h5 model"."""
    import shutil

    from tfopt.quantizing.qat.finetune import _check_path

    renamed = str(tmp_path / "model.hd5")
    shutil.copy(keras2_digits["path"], renamed)
    _check_path(renamed)
    keras3 = str(tmp_path / "k3.keras")
    examples.keras_cnn().save(keras3)
    shutil.move(keras3, tmp_path / "k3.bin")
    with pytest.raises(OptionError, match="is a Keras 3 model"):
        _check_path(str(tmp_path / "k3.bin"))
