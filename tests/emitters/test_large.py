"""Artifacts of a model whose large tensors are variables of a serving SavedModel (models over 2 GB):
each target written by :func:`tfopt.emitters.large.emit_from_savedmodel`, run in its runtime by
path and compared with TensorFlow's own outputs; the same code as a real > 2 GB model (slow lane),
on generated tables of a few MB."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tfopt._tf import tf
from tfopt.emitters.large import artifact_bytes, artifact_files, emit_from_savedmodel
from tfopt.errors import ConversionError, OptionError, ProtobufLimitError
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes import runner_for

FP32_ATOL = 1e-5  # float32 end to end: only summation order differs
# dynamic: per-tensor int8 tables (ONNX: 7-bit); a row's error is at most max|table| / 126 per element,
# and these models' outputs move by at most that times their small weights
DYNAMIC_ATOL = 2e-2
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ""}


def _keras_recommender(directory: str, rows: int, dim: int) -> dict:
    """The issue's shape: Keras 3, ``ids`` int32 [?, 8] and ``feats`` float32 [?, 16], one sigmoid output."""
    import keras

    keras.utils.set_random_seed(rows)
    ids = keras.Input((8,), dtype="int32", name="ids")
    feats = keras.Input((16,), name="feats")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(rows, dim)(ids))
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([pooled, feats]))
    model = keras.Model({"ids": ids, "feats": feats}, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.export(directory, verbose=False)
    return {"inputs": ["ids", "feats"], "outputs": ["output_0"], "rows": rows, "dim": dim, "seq": 8, "feats": 16}


def _module_two_tables(directory: str, rows: int, dim: int) -> dict:
    """A tf.Module as :func:`tfopt.external.write_serving_savedmodel` writes one: two tables as
    variables, outputs whose model order (``score``, ``aux``) is not their key order."""
    t = tf()
    rng = np.random.default_rng(rows)

    class Recommender(t.Module):
        def __init__(self) -> None:
            super().__init__()
            self.users = t.Variable(rng.uniform(-0.5, 0.5, (rows, dim)).astype(np.float32))
            self.items = t.Variable(rng.uniform(-0.5, 0.5, (rows // 2, dim)).astype(np.float32))
            self.w = t.Variable(rng.normal(0, 0.1, (dim, 3)).astype(np.float32))

        @t.function(input_signature=[t.TensorSpec([None, 4], t.int32, name="user"),
                                     t.TensorSpec([None, 4], t.int32, name="item")])
        def serve(self, user, item):
            u = t.reduce_mean(t.gather(self.users, user), axis=1)
            v = t.reduce_mean(t.gather(self.items, item), axis=1)
            logits = t.matmul(u * v * 4.0, self.w)
            return {"score": t.sigmoid(logits[:, :1]), "aux": logits}

    module = Recommender()
    t.saved_model.save(module, directory, signatures={"serving_default": module.serve})
    return {"inputs": ["user", "item"], "outputs": ["score", "aux"], "rows": rows, "dim": dim, "seq": 4}


MODELS = {"keras_one_output": (_keras_recommender, 3000, 256),  # 3 MB table
          "module_two_tables": (_module_two_tables, 2048, 384)}  # 3 MB + 1.5 MB


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, tmp_path_factory):
    return _saved(request.param, str(tmp_path_factory.mktemp(request.param) / "sm"))


def _saved(model: str, directory: str) -> dict:
    """Model ``model`` of MODELS written to ``directory``, its feeds and TensorFlow's own outputs."""
    build, rows, dim = MODELS[model]
    info = build(directory, rows, dim)
    rng = np.random.default_rng(7)
    feeds = {}
    for name in info["inputs"]:
        if name == "feats":
            feeds[name] = rng.normal(size=(3, info["feats"])).astype(np.float32)
        else:  # ids over the whole table, the last row included
            high = info["rows"] // 2 if name == "item" else info["rows"]
            feeds[name] = np.concatenate([rng.integers(0, high, (2, info["seq"])),
                                          np.full((1, info["seq"]), high - 1)]).astype(np.int32)
    signature = tf().saved_model.load(directory).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in signature(**{k: tf().constant(v) for k, v in feeds.items()}).items()}
    return {**info, "path": directory, "feeds": feeds, "expected": expected, "name": model}


def _specs(saved: dict) -> Model:
    feeds, expected = saved["feeds"], saved["expected"]
    return Model(graph_def=None, inputs=[TensorSpec(n, f"{n}:0", str(feeds[n].dtype), (None, *feeds[n].shape[1:]))
                                         for n in saved["inputs"]],
                 outputs=[TensorSpec(n, f"{n}:0", "float32", (None, *expected[n].shape[1:]))
                          for n in saved["outputs"]])


def _emit(saved: dict, target: str, precision: str, directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"model.{precision}{SUFFIX[target]}")
    return emit_from_savedmodel(target, saved["path"], path, precision=precision, input_names=saved["inputs"],
                                output_names=saved["outputs"])


def _run(target: str, path: str, saved: dict) -> dict[str, np.ndarray]:
    runner = runner_for(target, path, _specs(saved))
    try:
        return runner(saved["feeds"])
    finally:
        runner.close()


def _largest_weight(target: str, path: str) -> np.ndarray:
    from tfopt.targets import target as record

    weights = record(target, "format").call("weights", path)
    return max((np.asarray(w) for _, w in weights), key=lambda w: w.size)


# Each emission is a converter child importing TensorFlow. The fast lane writes the Keras-exported model
# (dict inputs, ``output_0``) to ONNX only; its TFLite and OpenVINO artifacts are the slow twin's
# (test_fp32_keras_export_matches_tensorflow): those emitters from a serving SavedModel stay in the fast
# lane on module_two_tables (fp32 here, dynamic below) and on a Keras model's tables
# (tests/fleet/test_serving.py's test_emit_from_a_stored_model_leaves_its_entry_as_written[keras-300]).
SLOW_FP32 = {("keras_one_output", "tflite"), ("keras_one_output", "openvino")}
# The fp32 ONNX pair of each model, written by test_fp32_artifact_matches_tensorflow, for
# test_onnx_external_data_loads_by_path_from_anywhere to move (the same bytes are not written twice);
# that test writes its own when run alone.
WRITTEN_ONNX: dict[str, str] = {}


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_fp32_artifact_matches_tensorflow(saved, target, tmp_path):
    if (saved["name"], target) in SLOW_FP32:
        pytest.skip("the slow lane's test_fp32_keras_export_matches_tensorflow (each emission is a child process)")
    _check_fp32(saved, target, str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(t for _, t in SLOW_FP32))
def test_fp32_keras_export_matches_tensorflow(target, tmp_path):
    _check_fp32(_saved("keras_one_output", str(tmp_path / "sm")), target, str(tmp_path / "out"))


def _check_fp32(saved: dict, target: str, directory: str) -> None:
    written = _emit(saved, target, "fp32", directory)
    if target == "onnx":
        WRITTEN_ONNX[saved["name"]] = written
    got = _run(target, written, saved)
    assert list(got) == saved["outputs"]  # paired by name, in the model's order
    for name in saved["outputs"]:
        np.testing.assert_allclose(got[name], saved["expected"][name], atol=FP32_ATOL, rtol=0, err_msg=name)
    table = saved["rows"] * saved["dim"]
    largest = _largest_weight(target, written)
    assert largest.size == table and largest.dtype == np.float32  # the table is in the artifact, whole
    assert artifact_bytes(target, written) >= table * 4


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_dynamic_gathers_from_an_int8_table(saved, target, tmp_path):
    if saved["name"] != "module_two_tables":
        pytest.skip("one model is enough for the int8 tables (each conversion is a child process)")
    written = _emit(saved, target, "dynamic", str(tmp_path))
    got = _run(target, written, saved)
    for name in saved["outputs"]:
        np.testing.assert_allclose(got[name], saved["expected"][name], atol=DYNAMIC_ATOL, rtol=0, err_msg=name)
    largest = _largest_weight(target, written)
    assert largest.size == saved["rows"] * saved["dim"] and largest.dtype.itemsize == 1
    tables = 4 * saved["dim"] * (saved["rows"] + saved["rows"] // 2)
    assert artifact_bytes(target, written) < 0.35 * tables  # about 4x smaller than the float tables
    modes = {os.stat(f).st_mode & 0o777 for f in artifact_files(target, written)}
    assert len(modes) == 1, modes  # every file of the artifact readable by the same users (ONNX's data file too)


def test_onnx_external_data_loads_by_path_from_anywhere(saved, tmp_path):
    written = WRITTEN_ONNX.pop(saved["name"], None) or _emit(saved, "onnx", "fp32", str(tmp_path / "a"))
    files = artifact_files("onnx", written)
    assert [os.path.basename(f) for f in files] == ["model.fp32.onnx", "model.fp32.onnx.data"]
    assert os.path.getsize(written) < saved["rows"] * saved["dim"] * 4 / 10  # the tables are not in the protobuf
    from tfopt.report.build import artifact_sizes

    assert artifact_sizes("onnx", written)[0] == artifact_bytes("onnx", written)  # the report counts the data file
    moved = tmp_path / "b"
    moved.mkdir()
    for f in files:  # the data file is found beside the model, wherever the pair goes
        shutil.move(f, moved)
    import onnx

    onnx.checker.check_model(str(moved / "model.fp32.onnx"), full_check=True)
    got = _run("onnx", str(moved / "model.fp32.onnx"), saved)
    np.testing.assert_allclose(got[saved["outputs"][0]], saved["expected"][saved["outputs"][0]], atol=FP32_ATOL)


def test_refuses_what_a_target_cannot_write(saved, tmp_path):
    with pytest.raises(ProtobufLimitError, match=r"onnx fp16 .* protobuf.*--to tflite, --to openvino"):
        emit_from_savedmodel("onnx", saved["path"], str(tmp_path / "m.onnx"), precision="fp16",
                             input_names=saved["inputs"], output_names=saved["outputs"])
    with pytest.raises(ProtobufLimitError, match=r"tflite int8 .*own int8 quantizer.*int8 engine"):
        emit_from_savedmodel("tflite", saved["path"], str(tmp_path / "m.tflite"), precision="int8",
                             input_names=saved["inputs"], output_names=saved["outputs"])  # calibrating needs one piece
    with pytest.raises(OptionError, match="not 'pb'"):
        emit_from_savedmodel("pb", saved["path"], str(tmp_path / "m.pb"), precision="fp32",
                             input_names=saved["inputs"], output_names=saved["outputs"])
    with pytest.raises(ConversionError, match=r"outputs are .* not nope"):
        emit_from_savedmodel("tflite", saved["path"], str(tmp_path / "m.tflite"), precision="fp32",
                             input_names=saved["inputs"], output_names=["nope"])
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_table_over_2gb_converts_to_every_target(tmp_path):
    """The real thing: a 540,000 x 1,024 float table (2.2 GB), all three targets, verified."""
    directory = str(tmp_path / "sm")
    info = _keras_recommender(directory, 540_000, 1024)
    rng = np.random.default_rng(0)
    feeds = {"ids": np.concatenate([rng.integers(0, 540_000, (3, 8)), np.full((1, 8), 539_999)]).astype(np.int32),
             "feats": rng.normal(size=(4, 16)).astype(np.float32)}
    signature = tf().saved_model.load(directory).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in signature(**{k: tf().constant(v) for k, v in feeds.items()}).items()}
    del signature
    saved = {**info, "path": directory, "feeds": feeds, "expected": expected}
    for target in ("tflite", "onnx", "openvino"):
        written = _emit(saved, target, "fp32", str(tmp_path / target))
        assert artifact_bytes(target, written) > 2 << 30
        got = _run(target, written, saved)
        np.testing.assert_allclose(got["output_0"], expected["output_0"], atol=FP32_ATOL, rtol=0, err_msg=target)
        shutil.rmtree(str(tmp_path / target))


# int8 (tfopt's engine: calibration, equalization, bias correction) against the float original, on
# outputs in (0, 1): per-channel int8 kernels and int8 activations; external tensors the engine
# cannot rescale (a Gather table, a kernel read from its file) stay float or are quantized by the
# converter (TFLite's weight quantization of the SavedModel's variables)
INT8_ATOL = 0.1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["keras3", "tf1-checkpoint"])
def test_int8_and_dynamic_on_external_weights(kind, tmp_path):
    """A model whose Gather table and Dense kernels are kept outside its graph: ``int8`` (the engine)
    and ``dynamic`` in every target, verified against the original; before, tflite int8 failed
    ("not available") and the hint sent the user to `debug reduce`."""
    from tests.external.conftest import THRESHOLD, recommender, tf1_checkpoint
    from tfopt.conversion.convert import convert

    rng = np.random.default_rng(0)
    if kind == "keras3":
        source, extra = str(tmp_path / "rec.keras"), {}
        recommender(500, 8, 16).save(source)
        data = {"ids": rng.integers(0, 500, (32, 8)).astype("int32"), "feats": rng.standard_normal((32, 16)).astype("float32")}
    else:
        source, extra = tf1_checkpoint(str(tmp_path), 700, resource=True) + ".meta", {"outputs": ["probs"]}
        data = {"ids": rng.integers(0, 700, (32, 6)).astype("int32")}
    np.savez(tmp_path / "calib.npz", **data)
    result = convert(source, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], quantize=["int8", "dynamic"],
                     calibration=str(tmp_path / "calib.npz"), external_threshold=THRESHOLD, report_runs=1, **extra)
    assert not result.failed, [(f.format, f.precision, f.reason) for f in result.failed]
    built = {(a.format, a.precision): a for a in result.artifacts}
    assert set(built) == {(t, p) for t in ("tflite", "onnx", "openvino") for p in ("int8", "dynamic")}
    for (target, precision), artifact in built.items():
        # the TF1 model sums 6 rows of an N(0, 1) table (logits of magnitude ~10, one int8 step of
        # the table ~0.035 moves them by ~0.1 before the softmax): its dynamic error is int8's
        atol = INT8_ATOL if precision == "int8" or kind == "tf1-checkpoint" else DYNAMIC_ATOL
        assert artifact.max_abs_err is not None and artifact.max_abs_err <= atol, (target, precision, artifact)
    assert not result.engine_fallbacks  # every int8 artifact is the engine's
