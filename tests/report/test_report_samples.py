"""The report runs every sample of ``--eval-data`` through the original; verification checks only the
first rows. A sample the original does not run on (a token id past the embedding table: TensorFlow's
``InvalidArgumentError`` at the ``Gather``) is an :class:`OptionError` naming the option, the sample
and TensorFlow's node, raised before any artifact is built; with every sample valid, the numbers the
report records early are the original's on the data."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.errors import OptionError

VOCAB, ROWS, WORDS = 10, 24, 5
TOLERANCE = 1e-5  # fp32: the same gathers, means and matmul in another order


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An embedding model over ``VOCAB`` ids (and a float input beside them), and its Python reference."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Model(tf.Module):
        def __init__(self):
            self.table = tf.Variable(rng.normal(size=(VOCAB, 3)).astype(np.float32))
            self.w = tf.Variable(rng.normal(size=(5, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, WORDS], tf.int32), tf.TensorSpec([None, 2], tf.float32)])
        def serve(self, ids, extra):
            pooled = tf.reduce_mean(tf.gather(self.table, ids), axis=1)
            return {"scores": tf.matmul(tf.concat([pooled, extra], axis=1), self.w)}

    model = Model()
    path = str(tmp_path_factory.mktemp("report_samples") / "model")
    tf.saved_model.save(model, path, signatures={"serving_default": model.serve})
    return path, lambda ids, extra: model.serve(tf.constant(ids), tf.constant(extra))["scores"].numpy()


def _data(path: str, bad_row: int | None) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    arrays = {"ids": rng.integers(0, VOCAB, size=(ROWS, WORDS)).astype(np.int32),
              "extra": rng.normal(size=(ROWS, 2)).astype(np.float32),
              "labels": rng.integers(0, 4, size=ROWS)}
    if bad_row is not None:
        arrays["ids"][bad_row, 2] = VOCAB + 3  # past the table: the original's Gather refuses it on CPU
    np.savez(path, **arrays)
    return path, arrays


@pytest.mark.parametrize("bad_row", [17, ROWS - 1], ids=["middle", "last"])
def test_a_sample_the_original_refuses_is_named_before_any_artifact(saved, tmp_path, bad_row):
    model, _ = saved
    data, _ = _data(str(tmp_path / "eval.npz"), bad_row)
    out = str(tmp_path / "out")
    with pytest.raises(OptionError, match=rf"--eval-data .*eval\.npz: the original model does not run on sample "
                                          rf"{bad_row} of {ROWS} \(row {bad_row} .*ids:1x{WORDS}.*\): "
                                          r"InvalidArgumentError at node '[^']*Gather[^']*': indices.*not in \[0, 10\)"
                                          r".*correct or remove that sample"):
        tfopt.convert(model, out, to=["onnx"], quantize=["fp32"], report_runs=1, eval_data=data)
    assert not os.path.exists(out)


def test_a_refused_sample_among_the_verified_rows_is_the_verification_error(saved, tmp_path):
    model, _ = saved
    data, _ = _data(str(tmp_path / "eval.npz"), 3)  # within the rows that verify each stage
    with pytest.raises(OptionError, match="--eval-data"):
        tfopt.convert(model, str(tmp_path / "out"), to=["onnx"], quantize=["fp32"], report_runs=1, eval_data=data)


def test_valid_data_is_measured_on_the_originals_numbers(saved, tmp_path):
    model, original = saved
    data, arrays = _data(str(tmp_path / "eval.npz"), None)
    result = tfopt.convert(model, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], quantize=["fp32"],
                           report_runs=1, eval_data=data)
    assert not result.failed, [f.reason for f in result.failed]
    report = result.report
    assert report["samples"] == ROWS
    assert sorted(a["format"] for a in report["artifacts"]) == ["onnx", "openvino", "tflite"]
    for artifact in report["artifacts"]:
        assert artifact["fidelity"]["max_abs_err"] <= TOLERANCE, artifact
    scores = original(arrays["ids"], arrays["extra"])
    top1 = 100.0 * float(np.mean(scores.argmax(-1) == arrays["labels"]))
    assert report["reference"]["accuracy"]["top1"] == pytest.approx(top1)
