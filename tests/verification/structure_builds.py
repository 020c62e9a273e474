"""Tiny graphs whose integer inputs are structure, each saved as a SavedModel and a frozen ``.pb`` from
one ``tf.function`` (for :mod:`tests.verification.test_input_structure`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Build:
    """A graph of ``inputs`` (``(name, shape, dtype)``) computing ``body(tf, *inputs, w)``, ``w`` a
    seeded float32 variable of shape ``weight``."""

    name: str
    inputs: tuple[tuple[str, tuple[int | None, ...], str], ...]
    body: Callable[..., Any]
    weight: tuple[int, ...] = (1,)


def _ragged(tf: Any, values: Any, part: Any, w: Any, kind: str) -> Any:
    make = {"lengths": tf.RaggedTensor.from_row_lengths, "splits": tf.RaggedTensor.from_row_splits,
            "rowids": lambda v, p: tf.RaggedTensor.from_value_rowids(v, p, nrows=4)}[kind]
    return make(values * w, part).to_tensor(shape=[4, 5])


BUILDS = {b.name: b for b in [
    Build("row_lengths", (("values", (None,), "float32"), ("lengths", (4,), "int32")),
          lambda tf, v, p, w: _ragged(tf, v, p, w, "lengths")),
    Build("row_splits", (("values", (None,), "float32"), ("splits", (5,), "int64")),
          lambda tf, v, p, w: _ragged(tf, v, p, w, "splits")),
    Build("value_rowids", (("values", (None,), "float32"), ("rowids", (None,), "int64")),
          lambda tf, v, p, w: _ragged(tf, v, p, w, "rowids")),
    Build("value_rowids_nrows", (("values", (None,), "float32"), ("rowids", (None,), "int64"),
                                 ("nrows", (), "int64")),
          lambda tf, v, p, n, w: tf.RaggedTensor.from_value_rowids(v * w, p, nrows=n).to_tensor(shape=[8, 5])),
    Build("nested_row_lengths", (("values", (None,), "float32"), ("outer", (3,), "int32"),
                                 ("inner", (None,), "int32")),
          lambda tf, v, o, i, w: tf.RaggedTensor.from_nested_row_lengths(v * w, [o, i]).to_tensor(shape=[3, 4, 5])),
    # a nested level of the other form: value row ids inside row splits (ragged_rank 2), row splits inside
    # value row ids, value row ids inside value row ids (the inner ids imply the rows the outer split)
    Build("rowids_in_splits", (("values", (None,), "float32"), ("splits", (4,), "int64"), ("rowids", (None,), "int64")),
          lambda tf, v, s, r, w: tf.RaggedTensor.from_row_splits(
              tf.RaggedTensor.from_value_rowids(v * w, r), s).to_tensor(shape=[3, 4, 5])),
    Build("splits_in_rowids", (("values", (None,), "float32"), ("splits", (4,), "int64"), ("rowids", (3,), "int64")),
          lambda tf, v, s, r, w: tf.RaggedTensor.from_value_rowids(
              tf.RaggedTensor.from_row_splits(v * w, s), r, nrows=3).to_tensor(shape=[3, 4, 5])),
    Build("rowids_in_rowids", (("values", (None,), "float32"), ("outer", (None,), "int64"),
                               ("inner", (None,), "int64")),
          lambda tf, v, o, i, w: tf.RaggedTensor.from_value_rowids(
              tf.RaggedTensor.from_value_rowids(v * w, i), o, nrows=3).to_tensor(shape=[3, 4, 5])),
    Build("ragged_gather", (("values", (None,), "float32"), ("lengths", (4,), "int32"), ("rows", (None,), "int32")),
          lambda tf, v, n, r, w: tf.gather(tf.RaggedTensor.from_row_lengths(v * w, n), r).to_tensor(shape=[None, 5])),
    Build("sorted_segment_ids", (("data", (None, 3), "float32"), ("ids", (None,), "int32")),
          lambda tf, d, i, w: tf.math.segment_sum(d * w, i)),
    Build("unsorted_segment_ids", (("data", (None, 3), "float32"), ("ids", (None,), "int32")),
          lambda tf, d, i, w: tf.math.unsorted_segment_sum(d * w, i, num_segments=3)),
    Build("num_segments_input", (("data", (None, 3), "float32"), ("ids", (None,), "int32"), ("n", (), "int32")),
          lambda tf, d, i, n, w: tf.reduce_sum(tf.math.unsorted_segment_sum(d * w, i, num_segments=n), axis=0)),
    Build("sparse_segment_ids", (("data", (None, 3), "float32"), ("rows", (None,), "int32"),
                                 ("ids", (None,), "int32")),
          lambda tf, d, r, i, w: tf.sparse.segment_sum(d * w, r, i)),
    Build("sparse_to_dense", (("indices", (None, 2), "int64"), ("values", (None,), "float32"),
                              ("dense_shape", (2,), "int64")),
          lambda tf, i, v, s, w: tf.sparse.to_dense(tf.SparseTensor(i, v * w, s))),
    Build("sparse_matmul", (("indices", (None, 2), "int64"), ("values", (None,), "float32"),
                            ("dense_shape", (2,), "int64")),
          lambda tf, i, v, s, w: tf.sparse.sparse_dense_matmul(tf.SparseTensor(i, v, s), w), (6, 3)),
    Build("sparse_reshape", (("indices", (None, 2), "int64"), ("values", (None,), "float32")),
          lambda tf, i, v, w: tf.sparse.to_dense(tf.sparse.reshape(tf.SparseTensor(i, v * w, [4, 6]), [6, 4]))),
]}
# the targets each converts to (the others have no kernel for its op: TFLite's builtins and OpenVINO's
# frontend lack RaggedTensorToTensor and SparseSegmentSum, tf2onnx and TFLite SparseTensorDenseMatMul,
# TFLite SparseReshape;
# OpenVINO converts SparseReshape but places the value elsewhere: a mismatch, docs/known-limits.md)
TARGETS = {**{name: ("onnx",) for name in ("row_lengths", "row_splits", "value_rowids", "value_rowids_nrows",
                                            "nested_row_lengths", "rowids_in_splits",
                                            "splits_in_rowids", "rowids_in_rowids", "ragged_gather", "sparse_segment_ids",
                                            "sparse_reshape")},
           "sparse_matmul": ("openvino",)}
ALL = ("tflite", "onnx", "openvino")


def save(build: Build, directory: str) -> dict[str, str]:
    """``{"savedmodel": path, "frozen": path}`` of ``build``."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(0).standard_normal(build.weight).astype(np.float32) + 1.5)
    signature = [tf.TensorSpec(shape, dtype, name=name) for name, shape, dtype in build.inputs]
    module.serve = tf.function(lambda *args: {"out": build.body(tf, *args, module.w)}, input_signature=signature)
    paths = {"savedmodel": os.path.join(directory, "savedmodel"), "frozen": os.path.join(directory, "frozen.pb")}
    tf.saved_model.save(module, paths["savedmodel"], signatures={"serving_default": module.serve})
    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    with open(paths["frozen"], "wb") as f:
        f.write(frozen.graph.as_graph_def().SerializeToString())
    return paths
