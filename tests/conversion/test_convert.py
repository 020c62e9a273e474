"""`tfopt convert`: every target x precision checked in its real runtime against the original."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import tfopt
from tfopt.conversion.convert import convert
from tfopt.conversion.manifest import manifest_model
from tfopt.demos import examples
from tfopt.runtimes import runner_for

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file

PRECISIONS = ["fp32", "fp16", "dynamic", "int8", "int16x8"]


@pytest.fixture(scope="module")
def converted(digits_model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("conv_out") / "out")
    result = convert(digits_model["path"], out, quantize=PRECISIONS, calibration=digits_model["calib"])
    return out, result


def _predict(artifact, out, model_inputs, x):
    runner = runner_for(artifact.format, os.path.join(out, artifact.path), model_inputs)
    return np.concatenate([next(iter(runner({"images": x[i:i + 1]}).values())) for i in range(len(x))])


def _by(result, fmt, precision):
    return next(a for a in result.artifacts if a.format == fmt and a.precision == precision)


def test_plan_covers_every_target_and_mode(converted):
    out, result = converted
    built = {(a.format, a.precision) for a in result.artifacts}
    for fmt in ("tflite", "onnx"):
        assert {(fmt, p) for p in PRECISIONS} <= built
    assert {("openvino", p) for p in ("fp32", "fp16", "dynamic", "int8")} <= built
    assert ("pb", "fp32") in built and ("savedmodel", "fp32") in built
    assert result.skipped == [("openvino", "int16x8", "openvino has no int16x8 mode")]
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert {"tensorflow", "tf2onnx", "onnxruntime", "openvino", "nncf", "ai-edge-litert"} <= set(manifest["tools"])
    assert len(manifest["artifacts"]) == len(result.artifacts)


@pytest.mark.parametrize(("fmt", "precision", "atol"), [
    (f, p, 1e-4 if p == "fp32" else 1e-2) for f in ("pb", "tflite", "onnx", "openvino") for p in ("fp32", "fp16")
    if not (f == "pb" and p == "fp16")])
def test_float_artifacts_match_keras(converted, digits_model, fmt, precision, atol):
    out, result = converted
    model = manifest_model(out)
    x = digits_model["x"][:32]
    got = _predict(_by(result, fmt, precision), out, model, x)
    np.testing.assert_allclose(got, digits_model["keras"].predict(x, verbose=0), atol=atol, rtol=0)


@pytest.mark.parametrize(("fmt", "precision"), [
    (f, p) for f in ("tflite", "onnx", "openvino") for p in ("dynamic", "int8", "int16x8")
    if not (f == "openvino" and p == "int16x8")])
def test_quantized_accuracy_within_1_5_points(converted, digits_model, fmt, precision):
    out, result = converted
    model = manifest_model(out)
    x, y = digits_model["x"], digits_model["y"]
    fp32 = np.mean(digits_model["keras"].predict(x, verbose=0).argmax(-1) == y)
    quantized = np.mean(_predict(_by(result, fmt, precision), out, model, x).argmax(-1) == y)
    assert quantized >= fp32 - 0.015, f"{fmt} {precision}: {quantized:.3f} vs fp32 {fp32:.3f}"
    assert fp32 > 0.85  # the model learned something, so the comparison means something


def test_int8_shrinks_tflite(converted):
    _, result = converted
    assert _by(result, "tflite", "int8").bytes < _by(result, "tflite", "fp32").bytes


def test_openvino_never_imports_telemetry(converted):
    assert sys.modules.get("openvino_telemetry", "absent") is None  # blocked before openvino was imported


def _lstm(tmp):
    import keras

    inputs = keras.Input((6, 3), name="seq")
    model = keras.Model(inputs, keras.layers.Dense(2, name="score")(keras.layers.LSTM(4)(inputs)))
    model.export(str(tmp / "lstm"), verbose=False)
    return str(tmp / "lstm"), model


def _erfc(tmp):
    """A model whose op TFLite's builtins lack (Erfc); ONNX and OpenVINO have it."""
    import tensorflow as tf

    class Erfc(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 9], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.math.erfc(x)}

    module = Erfc()
    tf.saved_model.save(module, str(tmp / "erfc"), signatures=module.__call__)
    return str(tmp / "erfc"), module


def _two_io(tmp):
    import keras

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], [keras.layers.Dense(2, name="left")(h), keras.layers.Dense(1, name="right")(h)])
    model.export(str(tmp / "two"), verbose=False)
    return str(tmp / "two"), model


@pytest.mark.parametrize(("build", "targets"), [
    (_lstm, ["pb", "tflite", "onnx", "openvino"]),  # TFLite: at a batch fixed to 1 (emitters/tflite_batch.py)
    (_two_io, ["pb", "tflite", "onnx", "openvino"]),
], ids=["lstm", "two-in-two-out"])
def test_fp32_targets_for_lstm_and_multi_io(build, targets, tmp_path):
    path, model = build(tmp_path)
    out = str(tmp_path / "out")
    result = convert(path, out, to=targets)
    assert sorted({a.format for a in result.artifacts}) == sorted(targets)
    frozen = manifest_model(out)
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.normal(size=(1, *s.shape[1:])).astype(np.float32) for s in frozen.inputs}
    expected = model([feeds[s.name] for s in frozen.inputs] if len(feeds) > 1 else next(iter(feeds.values())))
    expected = expected if isinstance(expected, list) else [expected]
    for artifact in result.artifacts:
        got = runner_for(artifact.format, os.path.join(out, artifact.path), frozen)(feeds)
        for spec, want in zip(frozen.outputs, expected):
            np.testing.assert_allclose(got[spec.name], np.asarray(want), atol=1e-4, rtol=1e-4,
                                       err_msg=f"{artifact.format} {spec.name}")


def test_an_op_tflite_lacks_needs_select_ops(tmp_path):
    """Erfc: TFLite builtins have no such op, at any batch (both attempts are said)."""
    path, _ = _erfc(tmp_path)
    with pytest.raises(tfopt.ConversionError, match=r"Erfc.*--allow-tf-ops.*batch fixed") as caught:
        convert(path, str(tmp_path / "out"), to=["tflite"])
    assert not (tmp_path / "out").exists()
    # ... and says which tfopt debug command cuts the model down to what the converter fails on
    assert f"tfopt debug reduce {path} --target tflite --precision fp32 -o reduce-tflite-fp32" in str(caught.value)


def test_default_targets_skip_the_one_that_cannot_express_the_model(tmp_path):
    """No --to: the Erfc model's TFLite failure is reported as skipped; ONNX and OpenVINO are still built."""
    path, _ = _erfc(tmp_path)
    result = convert(path, str(tmp_path / "out"), report_runs=1)
    built = {a.format for a in result.artifacts}
    assert {"pb", "savedmodel", "onnx", "openvino"} <= built and "tflite" not in built
    (reason,) = [r for f, p, r in result.skipped if f == "tflite" and p == "fp32"]
    assert "converting to tflite fp32" in reason and "--allow-tf-ops" in reason
    with open(tmp_path / "out" / "manifest.json") as f:
        assert {"format": "tflite", "precision": "fp32", "reason": reason} in json.load(f)["skipped"]
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts)


@pytest.mark.slow  # 25 s, three .ci/run lanes: tests/test_deterministic.py keeps the fast proof (separate
# processes, other hash salts, tflite/onnx/openvino x fp32/int8); this one adds pb and one process
def test_deterministic(digits_model, tmp_path):
    kwargs = dict(to=["pb", "tflite", "onnx", "openvino"], quantize=["none", "int8"], calibration=digits_model["calib"])  # "none": the old name of fp32
    convert(digits_model["path"], str(tmp_path / "a"), **kwargs)
    convert(digits_model["path"], str(tmp_path / "b"), **kwargs)
    for d, _, files in os.walk(tmp_path / "a"):
        for f in files:
            if f.startswith("report."):
                continue  # measurements (latency) - not artifacts
            other = os.path.join(str(tmp_path / "b"), os.path.relpath(os.path.join(d, f), tmp_path / "a"))
            with open(os.path.join(d, f), "rb") as fa, open(other, "rb") as fb:
                assert fa.read() == fb.read(), f"{f} differs between two identical conversions"


@pytest.mark.parametrize(("data", "message"), [
    ({"images": np.zeros((4, 9, 9, 1), np.float32)}, r"input 'images' expects \?x8x8x1, the data has shape \(4, 9, 9, 1\)"),
    ({"images": np.zeros((4, 8, 8, 1), np.int32)}, r"input 'images' is float32, the data is int32"),
    ({"image": np.zeros((4, 8, 8, 1), np.float32)}, r"'image' is not a model input.*Did you mean: images"),
    ({"images": np.zeros((0, 8, 8, 1), np.float32)}, r"input 'images' has no samples"),
], ids=["wrong-shape", "wrong-dtype", "wrong-name", "empty"])
def test_bad_calibration_data(digits_model, tmp_path, data, message):
    np.savez(tmp_path / "bad.npz", **data)
    out = tmp_path / "out"
    with pytest.raises(tfopt.OptionError, match=message):
        convert(digits_model["path"], str(out), to=["tflite"], quantize=["int8"], calibration=str(tmp_path / "bad.npz"))
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["bad.npz"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"to": ["openvino"], "quantize": ["int16x8"]}, "openvino has no int16x8 mode"),
    ({"to": ["tflite"], "quantize": ["int8"]}, "needs calibration data"),
    ({"to": ["tensorrt"]}, "--to tensorrt: choose from"),
    ({"quantize": ["int4"]}, "--quantize int4: choose from"),
], ids=["unsupported-pair", "no-calibration", "unknown-target", "unknown-mode"])
def test_bad_convert_options(digits_model, tmp_path, kwargs, message):
    with pytest.raises(tfopt.OptionError, match=message):
        convert(digits_model["path"], str(tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_convert(digits_model, tmp_path, capsys):
    from tfopt import cli

    code = cli.main(["convert", digits_model["path"], "-o", str(tmp_path / "out"), "--to", "tflite,onnx",
                     "--quantize", "none,int8", "--calibration", digits_model["calib"]])
    out = capsys.readouterr().out
    assert code == 0
    assert "model.int8.tflite" in out and "model.fp32.onnx" in out and "manifest.json" in out
    code = cli.main(["convert", digits_model["path"], "-o", str(tmp_path / "o2"), "--to", "openvino", "--quantize", "int16x8"])
    assert code == 2 and "openvino has no int16x8 mode" in capsys.readouterr().err


def test_calibration_from_image_directory_and_tfrecord(digits_model, tmp_path):
    """The same digits through a PNG directory (with --scale) and a TFRecord give working int8 models."""
    from tfopt._tf import tf

    t = tf()
    x_train = examples.digits()[0][:40]
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(x_train):
        t.io.write_file(str(images / f"{i:03d}.png"), t.io.encode_png(t.cast(image * 255, t.uint8)))
    record = str(tmp_path / "calib.tfrecord")
    with t.io.TFRecordWriter(record) as writer:
        for image in x_train:
            feature = {"images": t.train.Feature(float_list=t.train.FloatList(value=image.ravel()))}
            writer.write(t.train.Example(features=t.train.Features(feature=feature)).SerializeToString())
    x, y = digits_model["x"], digits_model["y"]
    fp32 = np.mean(digits_model["keras"].predict(x, verbose=0).argmax(-1) == y)
    for name, source, extra in (("dir", str(images), {"scale": [255.0]}), ("tfr", record, {})):
        out = str(tmp_path / name)
        result = convert(digits_model["path"], out, to=["tflite"], quantize=["int8"], calibration=source, **extra)
        got = _predict(result.artifacts[0], out, manifest_model(out), x)
        assert np.mean(got.argmax(-1) == y) >= fp32 - 0.015, name


def test_openvino_preprocessing_baked_in(digits_model, tmp_path):
    """--ov-scale-values 255 --ov-reverse-input-channels: the IR takes raw 0..255 input."""
    from tfopt.emitters.openvino import Preprocess

    pre = Preprocess(mean=(0.0,), scale=(255.0,), reverse_channels=True)
    out = str(tmp_path / "out")
    convert(digits_model["path"], out, to=["openvino"], ov_preprocess=pre)  # verified on raw inputs
    x = digits_model["x"][:8]
    raw = x[..., ::-1] * 255.0
    runner = runner_for("openvino", os.path.join(out, "openvino.fp32", "model.xml"), manifest_model(out))
    np.testing.assert_allclose(runner({"images": raw})["output_0"], digits_model["keras"].predict(x, verbose=0),
                               atol=1e-4)


def test_openvino_accuracy_control(digits_model, tmp_path):
    x, y = digits_model["x"], digits_model["y"]
    np.savez(tmp_path / "eval.npz", images=x[:150], labels=y[:150])
    out = str(tmp_path / "out")
    result = convert(digits_model["path"], out, to=["openvino"], quantize=["int8"], calibration=digits_model["calib"],
                     accuracy_control=0.01, eval_data=str(tmp_path / "eval.npz"))
    fp32 = np.mean(digits_model["keras"].predict(x, verbose=0).argmax(-1) == y)
    got = _predict(result.artifacts[0], out, manifest_model(out), x)
    assert np.mean(got.argmax(-1) == y) >= fp32 - 0.015
    with pytest.raises(tfopt.OptionError, match="needs --eval-data"):
        convert(digits_model["path"], str(tmp_path / "o2"), to=["openvino"], quantize=["int8"],
                calibration=digits_model["calib"], accuracy_control=0.01)


def test_calibration_from_a_python_generator(digits_model, tmp_path):
    out = str(tmp_path / "out")
    result = convert(digits_model["path"], out, to=["tflite"], quantize=["int8"],
                     calibration="tests.model_fns:digits_calibration", calibration_samples=48)
    x, y = digits_model["x"], digits_model["y"]
    fp32 = np.mean(digits_model["keras"].predict(x, verbose=0).argmax(-1) == y)
    assert np.mean(_predict(result.artifacts[0], out, manifest_model(out), x).argmax(-1) == y) >= fp32 - 0.015
    with pytest.raises(tfopt.OptionError, match=r"--calibration 'tests.model_fns:nope'.*has no attribute"):
        convert(digits_model["path"], str(tmp_path / "o2"), to=["tflite"], quantize=["int8"],
                calibration="tests.model_fns:nope")
