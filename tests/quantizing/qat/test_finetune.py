"""int8 by quantization-aware fine-tune from the engine's ranges (tfopt.quantizing.qat.finetune / qat_init):
TFMOT wrappers start at the engine's ranges, the fine-tuned int8 artifacts run int8 kernels in LiteRT,
ONNX Runtime and OpenVINO, and a Keras 3 model is refused with the reason."""

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

pytest.importorskip("tensorflow_model_optimization")

TARGETS = ["tflite", "onnx", "openvino"]
MARGIN = 1.0  # top-1 points the fine-tuned int8 may trail the engine's post-training int8 by (360 test digits)


@pytest.fixture(scope="module")
def digits_bn(tmp_path_factory):
    """A tf_keras conv net with BatchNorm (Conv->BN->ReLU, depthwise->BN->ReLU6, conv+relu, dense softmax)
    trained on digits, saved as .h5, with its training, held-out and calibration data."""
    import tf_keras as keras

    x_train, y_train, x_test, y_test = examples.digits()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    h = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(name="bn")(h))
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.ReLU(6.0, name="relu6")(keras.layers.BatchNormalization(name="bn2")(h))
    h = keras.layers.Conv2D(16, 1, activation="relu", name="pw")(h)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D(name="pool")(h))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("qat")
    model.save(str(root / "digits.h5"))
    np.savez(root / "train.npz", images=x_train, labels=y_train)
    np.savez(root / "eval.npz", images=x_test, labels=y_test)
    np.savez(root / "calib.npz", images=x_train[:200])
    return {"path": str(root / "digits.h5"), "train": str(root / "train.npz"), "eval": str(root / "eval.npz"),
            "calib": str(root / "calib.npz"), "root": root, "x": x_train[:200]}


def test_wrappers_start_from_the_engine_ranges(digits_bn, tmp_path):
    import tfopt
    from tfopt.quantizing.engine.fake_quant import nudge
    from tfopt.quantizing.engine.quantize import quantize_model
    from tfopt.quantizing.qat.finetune import finetune

    portable, _, _, _ = tfopt.optimize(digits_bn["path"])
    samples = {"images": digits_bn["x"]}
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
        ("quant_pw", "post_activation"): "model/pw/Relu:0",
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
def converted(digits_bn):
    """The engine's post-training int8 and the fine-tuned int8, in every target, measured on held-out digits."""
    common = dict(to=TARGETS, quantize=["int8"], calibration=digits_bn["calib"], eval_data=digits_bn["eval"],
                  report_runs=1)
    ptq = convert(digits_bn["path"], str(digits_bn["root"] / "ptq"), **common)
    out = str(digits_bn["root"] / "qat")
    with counting(np, "load") as counts:
        qat = convert(digits_bn["path"], out, finetune_data=digits_bn["train"], finetune_epochs=2, **common)
    return {"ptq": ptq, "qat": qat, "out": out, "reads": reads(counts, digits_bn["train"], digits_bn["eval"],
                                                                digits_bn["calib"])}


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
    assert tuned["range_sources"] == {"engine": 5} and tuned["after"] is not None


def test_finetuned_int8_is_as_accurate_as_post_training(converted):
    fp32 = converted["ptq"].report["reference"]["accuracy"]["top1"]
    ptq = {a["format"]: a["accuracy"]["top1"] for a in converted["ptq"].report["artifacts"]}
    qat = {a["format"]: a["accuracy"]["top1"] for a in converted["qat"].report["artifacts"]}
    print(f"\nfp32 {fp32:.2f}; int8 top-1 on 360 held-out digits, engine PTQ -> QAT fine-tune: "
          + ", ".join(f"{t} {ptq[t]:.2f} -> {qat[t]:.2f}" for t in TARGETS))
    for target in TARGETS:
        assert qat[target] >= ptq[target] - MARGIN, target


@pytest.mark.parametrize("kind", ["keras3", "savedmodel"])
def test_a_model_tfmot_cannot_wrap_is_refused(digits_bn, tmp_path, kind):
    import keras

    model = examples.keras_cnn()
    path = str(tmp_path / ("k3.keras" if kind == "keras3" else "sm"))
    model.save(path) if kind == "keras3" else model.export(path, verbose=False)
    with pytest.raises(OptionError, match="needs a Keras 2 \\(tf_keras\\) model") as info:
        convert(path, str(tmp_path / "out"), to=["tflite"], quantize=["int8"], calibration=digits_bn["calib"],
                finetune_data=digits_bn["train"])
    assert ("Keras 3 model" in str(info.value)) == (kind == "keras3")
    assert keras.__version__.startswith("3")


def test_cli_refuses_finetune_data_without_int8(digits_bn, tmp_path, capsys):
    code = cli.main(["convert", digits_bn["path"], "-o", str(tmp_path / "out"), "--to", "tflite",
                     "--finetune-data", digits_bn["train"]])
    assert code == 2 and "--finetune-data fine-tunes --cluster/--prune, or int8" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
