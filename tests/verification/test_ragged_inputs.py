"""A ragged argument (``tf.RaggedTensorSpec``: values and row splits of unknown length) and a ragged tensor
passed through a variant (``tf.map_fn`` over its rows: ``RaggedTensorToVariant`` before the loop,
``RaggedTensorFromVariant`` in its body), issue 24's open ragged cases. Made-up splits hold a row at
every batch (one entry split nothing: the artifacts' batch-1 verification stopped with
``MadeUpInputsError``); ONNX converts and verifies; TFLite and OpenVINO, which have no form of these ops,
stop with a typed error naming them and the way out while the ONNX file is still written."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt

TOLERANCE = 1e-5  # fp32 sums and maxima of a few values per row: exact but for rounding


def _ragged_model(kind: str, ragged_rank: int):
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(0).standard_normal([1]).astype(np.float32) + 1.5)
    spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.float32, ragged_rank=ragged_rank,
                               row_splits_dtype=tf.int64)

    def per_row(row):
        return tf.reduce_sum(row * module.w) if kind == "map_sum" else tf.reduce_max(tf.concat([[-1.0], row * module.w], 0))

    def serve(rt):
        if kind == "to_tensor":
            return {"out": rt.to_tensor(shape=[None] + [4] * ragged_rank) * module.w}
        return {"out": tf.map_fn(per_row, rt, fn_output_signature=tf.float32)}

    module.serve = tf.function(serve, input_signature=[spec])
    return module


CASES = [("map_sum", 1), ("map_max", 1), ("to_tensor", 1), ("to_tensor", 2)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import tensorflow as tf

    paths = {}
    for kind, rank in CASES:
        path = str(tmp_path_factory.mktemp(f"{kind}{rank}") / "savedmodel")
        module = _ragged_model(kind, rank)
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
        paths[kind, rank] = path
    return paths


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize(("kind", "rank"), CASES, ids=lambda v: str(v))
def test_made_up_ragged_argument_holds_rows_at_every_batch(saved, kind, rank, batch):
    import tensorflow as tf

    from tfopt.verification.testing import random_inputs

    model = tfopt.load(saved[kind, rank])
    feeds = random_inputs(model.inputs, batch=batch, dynamic_dim=8, graph_def=model.graph_def, seed=batch)
    splits = [feeds[s.name] for s in model.inputs if s.dtype == "int64"]
    assert len(splits) == rank and all(len(s) >= 2 and s[0] == 0 and np.all(np.diff(s) >= 0) for s in splits)
    serve = tf.saved_model.load(saved[kind, rank]).signatures["serving_default"]
    serve(**{s.name: tf.constant(feeds[s.name]) for s in model.inputs})  # TensorFlow's own checks pass


def test_map_fn_over_ragged_rows_converts_to_onnx_and_names_the_others(saved, tmp_path):
    for kind in ("map_sum", "map_max"):
        result = tfopt.convert(saved[kind, 1], str(tmp_path / kind), to=["tflite", "onnx", "openvino"],
                               quantize=["fp32"], report_runs=1)
        assert [a.format for a in result.artifacts] == ["onnx"]
        assert result.artifacts[0].max_abs_err is not None and result.artifacts[0].max_abs_err <= TOLERANCE
        errors = {f.format: str(e) for f, e in zip(result.failed, result.errors, strict=True)}
        assert sorted(errors) == ["openvino", "tflite"]
        assert "RaggedTensorToVariant" in errors["openvino"] and "leave openvino out of --to" in errors["openvino"]
        assert "tf.map_fn" in errors["tflite"] and "TensorList" in errors["tflite"]
        assert "--allow-tf-ops" in errors["tflite"] and "leave tflite out of --to" in errors["tflite"]


@pytest.mark.parametrize("rank", [1, 2])
def test_ragged_argument_to_dense_verifies_in_onnx(saved, tmp_path, rank):
    result = tfopt.convert(saved["to_tensor", rank], str(tmp_path / "out"), to=["onnx"], quantize=["fp32"],
                           report_runs=1)
    assert [a.format for a in result.artifacts] == ["onnx"]
    assert result.artifacts[0].max_abs_err is not None and result.artifacts[0].max_abs_err <= TOLERANCE
