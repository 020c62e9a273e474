"""The corpus harness's plain-converter path for a TF2 object checkpoint (``scripts/corpus.py _plain``):
the entry's ``--model-fn`` builds the model, ``tf.train.Checkpoint`` restores it, and the backend's own
converter writes a file that gives the restored model's numbers in its runtime. Before this path, every
failing TF2-checkpoint cell was counted "the converter cannot express".

Checkpoints are written here from a Keras 3 Functional model, a ``tf.Module`` and a subclassed model
of Keras-2-era code (written by tf-keras: the child starts again with ``TF_USE_LEGACY_KERAS=1``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

import numpy as np
import pytest

from tfopt.coverage import corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "corpus.py")
TOLERANCE = 1e-5  # fp32 conversions of small dense/conv models
# openvino.save_model compresses weights to fp16 by default (compress_to_fp16=True), and the plain path
# keeps that default as a user gets it: weights of magnitude ~1 lose ~5e-4 relative (a wrong restore: ~0.3)
OPENVINO_TOLERANCE = 2e-3


def _checkpoint(tmp_path, spec: str, seed: int):
    """(checkpoint folder, input, the restored-from model's output on it), weights drawn from ``seed``."""
    import tensorflow as tf

    module, _, name = spec.partition(":")
    rng = np.random.default_rng(seed)
    if module == "tests.model_fns_keras2":
        from tfopt.loaders._keras2_scope import keras2_names

        with keras2_names([module]):
            model = getattr(importlib.import_module(module), name)()
    else:
        model = getattr(importlib.import_module(module), name)()
    for v in model.variables:
        value = rng.standard_normal(v.shape).astype(np.float32) * 0.5
        # a BatchNorm variance drawn negative makes the reference NaN, and NaNs compare by where they are,
        # which depends on the CPU's kernels (oneDNN fuses BatchNorm differently): keep variances positive
        v.assign(np.abs(value) + 0.1 if "variance" in v.name else value)
    folder = tmp_path / "ckpt"
    tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))
    shape = {"digits_cnn": (8, 8, 1), "scaler": (4,), "dense_only": (6, 3)}[name]
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    y = model(x) if module != "tests.model_fns_keras2" and name != "digits_cnn" else model(x, training=False)
    return str(folder), x, np.asarray(next(iter(y.values())) if isinstance(y, dict) else y)


def _run(target: str, path: str, x: np.ndarray) -> np.ndarray:
    if target == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path)
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, x.shape)
        interp.allocate_tensors()
        interp.set_tensor(index, x)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])
    if target == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    from tfopt._openvino import openvino

    compiled = openvino().Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return next(iter(compiled(x).values()))


def _script():
    spec = importlib.util.spec_from_file_location("corpus_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The plain tf2onnx cell (a second model, its own child) in the slow lane: restoring the checkpoint is
# the same code for every target; the Keras 2 test below converts to OpenVINO.
@pytest.mark.parametrize(("spec", "target"), [("tests.model_fns:digits_cnn", "tflite"),
                                              pytest.param("tests.model_fns:scaler", "onnx", marks=pytest.mark.slow)])
def test_plain_path_restores_the_checkpoint_and_converts_it(tmp_path, spec, target):
    folder, x, expected = _checkpoint(tmp_path, spec, seed=len(spec))
    out = str(tmp_path / "plain" / target)
    child = corpus.run_child([sys.executable, SCRIPT, "_plain", target, folder, "tf2-checkpoint", out,
                              "--model-fn", spec], timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert child["exit"] == 0, child["output"][-2000:]
    with open(out + ".path") as f:
        got = _run(target, f.read().strip(), x)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.slow  # the corpus harness's baseline (not tfopt): its restored-checkpoint path is the fast test above
def test_plain_cells_of_a_keras2_checkpoint_entry_build_it_with_keras2(tmp_path, monkeypatch):
    """The harness's own call: the entry's ``--model-fn`` reaches the child, which restarts with tf-keras."""
    spec = "tests.model_fns_keras2:dense_only"
    folder, x, expected = _checkpoint(tmp_path, spec, seed=3)
    entry = corpus.Entry("tiny-tf2", "none", "0", "ckpt", "tf2-checkpoint", "a generated TF2 checkpoint",
                         args=("--model-fn", spec))
    monkeypatch.setenv("PYTHONPATH", ROOT)
    args = argparse.Namespace(cache=str(tmp_path / "cache"), timeout=600)
    out = str(tmp_path / "plain")
    cells = _script().plain_cells(entry, folder, out, ["openvino"], args)
    with open(os.path.join(out, "openvino.log")) as f:
        log = f.read()
    assert cells == {"openvino": "ok"}, log[-2000:]
    # the child restarts with TF_USE_LEGACY_KERAS=1 (Keras 3's build of this code does not match the checkpoint);
    # its note is not asserted: in a fresh clone's full run the log held both TensorFlow starts of one pid but
    # not the note (not understood yet). The restored numbers below are the proof that the right model converted.
    with open(os.path.join(out, "openvino.path")) as f:
        got = _run("openvino", f.read().strip(), x)
    np.testing.assert_allclose(got, expected, atol=OPENVINO_TOLERANCE, rtol=OPENVINO_TOLERANCE)
