"""The op sweep's cases (:mod:`tfopt.coverage.op_sweep`): the ops and TF1 patterns real deployed models
use, first the ones they use most (image ops, detection post-processing, RNN loops, signal front-ends,
gathers and scatters). Each body is ``f(tf, inputs, weights)`` and runs in a ``tf.function`` and in a TF1
graph alike; inputs keep an unknown batch where users leave one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMATS = ("savedmodel", "checkpoint", "frozen")


@dataclass(frozen=True)
class In:
    """One input: name, shape (``None``: unknown, as users leave the batch) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class OpCase:
    """One swept op or pattern.

    ``weights``: shapes of seeded float32 variables (standard normal x ``scale``) handed to ``body``
    after the inputs; ``tf1``: built with TF1 control flow (``Enter``/``Exit`` loops, ``Switch``/``Merge``
    conds) in the graph formats, the way TF 1.x wrote them; ``formats``: where the case makes sense.
    """

    name: str
    group: str
    inputs: tuple[In, ...]
    body: Callable[..., Any]
    weights: tuple[tuple[int, ...], ...] = ()
    scale: float = 0.5
    tf1: bool = False
    formats: tuple[str, ...] = FORMATS


def weight_values(case: OpCase, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * case.scale).astype(np.float32) for shape in case.weights]


IMG = In("image", (None, 6, 8, 3))
SEQ = In("x", (None, 12))
VEC = In("x", (None, 8))
GRAPH = ("checkpoint", "frozen")


def _mix(tf: Any, y: Any, w: Any) -> Any:
    """``y`` with a trained-looking per-channel scale: the op's output feeds a weight, as in a model."""
    return y * w


def _nms(kind: str) -> Any:
    def body(tf: Any, x: list[Any], w: list[Any]) -> Any:
        boxes, scores = x
        boxes = tf.concat([tf.minimum(boxes[:, :2], boxes[:, 2:]), tf.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        if kind == "v3":
            keep = tf.image.non_max_suppression(boxes, scores, 5, iou_threshold=0.5, score_threshold=0.1)
            return tf.gather(boxes, keep), tf.gather(scores, keep)
        if kind == "v4":
            keep, valid = tf.image.non_max_suppression_padded(boxes, scores, 5, iou_threshold=0.5,
                                                              pad_to_max_output_size=True)
            return tf.gather(boxes, keep), valid
        keep, kept_scores = tf.image.non_max_suppression_with_scores(boxes, scores, 5, iou_threshold=0.5,
                                                                     soft_nms_sigma=0.0)
        return tf.gather(boxes, keep), kept_scores
    return body


def _rnn(time_major: bool) -> Any:
    """A GRU-like cell unrolled by ``tf.while_loop`` over a ``TensorArray`` (what ``dynamic_rnn``
    builds): inputs ``[batch, time, 4]`` (``[time, batch, 4]`` when time-major)."""
    def body(tf: Any, x: list[Any], w: list[Any]) -> Any:
        seq = x[0] if time_major else tf.transpose(x[0], [1, 0, 2])
        steps = tf.shape(seq)[0]
        ta = tf.TensorArray(tf.float32, size=steps).unstack(seq)
        out = tf.TensorArray(tf.float32, size=steps)
        h0 = tf.zeros([tf.shape(seq)[1], 6])

        def step(t: Any, h: Any, out: Any) -> Any:
            xt = ta.read(t)
            z = tf.sigmoid(tf.matmul(xt, w[0]) + tf.matmul(h, w[1]))
            c = tf.tanh(tf.matmul(xt, w[2]) + tf.matmul(h * z, w[3]))
            h = z * h + (1 - z) * c
            return t + 1, h, out.write(t, h)

        _, h, out = tf.while_loop(lambda t, *_: t < steps, step, [tf.constant(0), h0, out])
        seqs = out.stack()
        return (seqs if time_major else tf.transpose(seqs, [1, 0, 2])), h
    return body


def _with_default(tf: Any, x: list[Any], w: list[Any]) -> Any:
    """A TF1 model's keep-probability ``PlaceholderWithDefault`` and an ``is_training`` cond on it."""
    keep = tf.compat.v1.placeholder_with_default(1.0, [], name="keep_prob")
    training = tf.compat.v1.placeholder_with_default(False, [], name="is_training")
    h = tf.matmul(x[0], w[0])
    h = tf.cond(training, lambda: tf.nn.dropout(h, rate=1 - keep), lambda: h * keep)
    return tf.nn.relu(h)


def _scope_reuse(tf: Any, x: list[Any], w: list[Any]) -> Any:
    """One ``variable_scope`` reused for two towers (shared weights)."""
    def tower(h: Any) -> Any:
        with tf.compat.v1.variable_scope("tower", reuse=tf.compat.v1.AUTO_REUSE):
            k = tf.compat.v1.get_variable("k", initializer=tf.compat.v1.initializers.glorot_uniform(seed=1),
                                          shape=[8, 8])
        return tf.nn.relu(tf.matmul(h, k))
    return tower(x[0]) + tower(x[0] * 0.5)


def _ctc(tf: Any, x: list[Any], w: list[Any]) -> Any:
    logits = tf.transpose(tf.matmul(x[0], w[0]), [1, 0, 2])  # time-major logits [time, batch, 5]
    lengths = tf.fill([tf.shape(logits)[1]], tf.shape(logits)[0])
    decoded, _ = tf.nn.ctc_greedy_decoder(logits, lengths)
    return tf.sparse.to_dense(decoded[0], default_value=-1)


CASES: dict[str, OpCase] = {c.name: c for c in [
    # tf.image
    OpCase("resize_bilinear_align_corners", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.compat.v1.image.resize_bilinear(x[0], [11, 13], align_corners=True), w[0]), ((3,),)),
    OpCase("resize_bilinear_half_pixel", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.image.resize(x[0], [11, 13], "bilinear"), w[0]), ((3,),)),
    OpCase("resize_bilinear_legacy", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.compat.v1.image.resize_bilinear(x[0], [12, 16]), w[0]), ((3,),)),
    OpCase("resize_nearest_align_corners", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.compat.v1.image.resize_nearest_neighbor(x[0], [11, 13], align_corners=True), w[0]), ((3,),)),
    OpCase("resize_nearest_half_pixel", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.image.resize(x[0], [12, 16], "nearest"), w[0]), ((3,),)),
    OpCase("resize_bicubic_half_pixel", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.image.resize(x[0], [11, 13], "bicubic"), w[0]), ((3,),)),
    OpCase("resize_bicubic_align_corners", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.compat.v1.image.resize_bicubic(x[0], [11, 13], align_corners=True), w[0]), ((3,),)),
    OpCase("crop_and_resize", "image", (IMG,), lambda tf, x, w: _mix(tf, tf.image.crop_and_resize(
        x[0], [[0.1, 0.1, 0.8, 0.9], [0.0, 0.2, 0.5, 1.0]], [0, 0], [4, 4]), w[0]), ((3,),)),
    OpCase("non_max_suppression_v3", "detection", (In("boxes", (None, 4)), In("scores", (None,))), _nms("v3")),
    OpCase("non_max_suppression_v4_padded", "detection", (In("boxes", (None, 4)), In("scores", (None,))),
           _nms("v4")),
    OpCase("non_max_suppression_v5_scores", "detection", (In("boxes", (None, 4)), In("scores", (None,))),
           _nms("v5")),
    OpCase("per_image_standardization", "image", (IMG,), lambda tf, x, w: _mix(
        tf, tf.image.per_image_standardization(x[0]), w[0]), ((3,),)),
    OpCase("rgb_to_grayscale", "image", (IMG,), lambda tf, x, w: tf.image.rgb_to_grayscale(x[0]) * w[0], ((1,),)),
    # tf.signal
    OpCase("stft", "signal", (In("audio", (None, 256)),), lambda tf, x, w: tf.matmul(
        tf.abs(tf.signal.stft(x[0], 64, 32, fft_length=64)), w[0]), ((33, 4),)),
    OpCase("frame", "signal", (In("audio", (None, 64)),), lambda tf, x, w: tf.matmul(
        tf.signal.frame(x[0], 16, 8), w[0]), ((16, 4),)),
    OpCase("rfft", "signal", (In("audio", (None, 32)),), lambda tf, x, w: tf.matmul(
        tf.abs(tf.signal.rfft(x[0])), w[0]), ((17, 4),)),
    # gathers and scatters
    OpCase("gather_embedding_ids", "gather", (In("ids", (None, 6), "int32"),), lambda tf, x, w: tf.gather(
        w[0], x[0]), ((50, 8),)),
    OpCase("gather_axis1_const", "gather", (VEC,), lambda tf, x, w: tf.gather(x[0] * w[0], [7, 0, 3], axis=1),
           ((8,),)),
    OpCase("gather_nd", "gather", (In("x", (None, 4, 5)),), lambda tf, x, w: tf.gather_nd(
        tf.transpose(x[0] * w[0], [1, 2, 0]), [[0, 1], [3, 4], [2, 2]]), ((5,),)),
    OpCase("batch_gather_top_k", "gather", (VEC,), lambda tf, x, w: tf.gather(
        x[0] * w[0], tf.math.top_k(x[0], 3).indices, batch_dims=1), ((8,),)),
    OpCase("scatter_nd", "scatter", (VEC,), lambda tf, x, w: tf.scatter_nd(
        [[1], [3]], tf.stack([tf.reduce_sum(x[0] * w[0], 0), tf.reduce_max(x[0], 0)]), [5, 8]), ((8,),)),
    OpCase("tensor_scatter_update", "scatter", (In("x", (4, 8)),), lambda tf, x, w: tf.tensor_scatter_nd_update(
        x[0] * w[0], [[1], [3]], tf.ones([2, 8])), ((8,),)),
    OpCase("tensor_scatter_add", "scatter", (In("x", (4, 8)),), lambda tf, x, w: tf.tensor_scatter_nd_add(
        x[0], [[0, 1], [2, 5]], w[0]), ((2,),)),
    OpCase("segment_sum", "scatter", (In("x", (6, 4)),), lambda tf, x, w: tf.math.segment_sum(
        x[0] * w[0], [0, 0, 1, 2, 2, 2]), ((4,),)),
    OpCase("unsorted_segment_max", "scatter", (In("x", (6, 4)),), lambda tf, x, w: tf.math.unsorted_segment_max(
        x[0] * w[0], [2, 0, 1, 2, 0, 1], 3), ((4,),)),
    OpCase("unsorted_segment_mean", "scatter", (In("x", (6, 4)),), lambda tf, x, w: tf.math.unsorted_segment_mean(
        x[0] * w[0], [2, 0, 1, 2, 0, 1], 3), ((4,),)),
    # scans, sorts, selections
    OpCase("cumsum_exclusive_reverse", "scan", (SEQ,), lambda tf, x, w: tf.math.cumsum(
        x[0] * w[0], axis=1, exclusive=True, reverse=True), ((12,),)),
    OpCase("cumprod", "scan", (SEQ,), lambda tf, x, w: tf.math.cumprod(tf.sigmoid(x[0] * w[0]), axis=1), ((12,),)),
    OpCase("cumprod_exclusive", "scan", (SEQ,), lambda tf, x, w: tf.math.cumprod(
        tf.sigmoid(x[0]), axis=1, exclusive=True) * w[0], ((12,),)),
    OpCase("top_k", "sort", (SEQ,), lambda tf, x, w: tf.math.top_k(x[0] * w[0], 4), ((12,),)),
    OpCase("argsort", "sort", (SEQ,), lambda tf, x, w: tf.argsort(x[0] * w[0], axis=1, direction="DESCENDING"),
           ((12,),)),
    OpCase("sort", "sort", (SEQ,), lambda tf, x, w: tf.sort(x[0] * w[0], axis=1), ((12,),)),
    OpCase("where_1arg", "select", (SEQ,), lambda tf, x, w: tf.where(x[0] * w[0] > 0), ((12,),)),
    OpCase("where_3arg", "select", (SEQ,), lambda tf, x, w: tf.where(x[0] > 0, x[0] * w[0], -x[0]), ((12,),)),
    OpCase("clip_by_value", "select", (SEQ,), lambda tf, x, w: tf.clip_by_value(x[0] * w[0], -0.3, 0.4), ((12,),)),
    # einsum and reductions
    OpCase("einsum_bij_jk", "einsum", (In("x", (None, 3, 8)),), lambda tf, x, w: tf.einsum("bij,jk->bik", x[0], w[0]),
           ((8, 5),)),
    OpCase("einsum_attention", "einsum", (In("q", (None, 2, 4, 8)), In("k", (None, 2, 5, 8))),
           lambda tf, x, w: tf.nn.softmax(tf.einsum("bhqd,bhkd->bhqk", x[0], x[1]) * w[0])[..., 0:1], ((5,),)),
    OpCase("einsum_dot", "einsum", (VEC,), lambda tf, x, w: tf.einsum("bi,i->b", x[0], w[0]), ((8,),)),
    OpCase("reductions_keepdims", "reduce", (In("x", (None, 4, 5)),), lambda tf, x, w: (
        tf.reduce_mean(x[0] * w[0], axis=[1, 2], keepdims=True), tf.reduce_max(x[0], axis=-1, keepdims=True),
        tf.reduce_prod(tf.sigmoid(x[0]), axis=1, keepdims=True),
        tf.reduce_logsumexp(x[0], axis=2, keepdims=True), tf.math.reduce_std(x[0], axis=1, keepdims=True)),
           ((5,),)),
    OpCase("reduce_any_all", "reduce", (In("x", (None, 4, 5)),), lambda tf, x, w: tf.cast(tf.logical_and(
        tf.reduce_any(x[0] * w[0] > 1.0, axis=1), tf.reduce_all(x[0] > -3.0, axis=1)), tf.float32), ((5,),)),
    # padding and layout
    OpCase("pad_reflect", "layout", (IMG,), lambda tf, x, w: tf.pad(x[0] * w[0], [[0, 0], [2, 1], [1, 2], [0, 0]],
                                                                    "REFLECT"), ((3,),)),
    OpCase("pad_symmetric", "layout", (IMG,), lambda tf, x, w: tf.pad(x[0] * w[0], [[0, 0], [2, 1], [1, 2], [0, 0]],
                                                                      "SYMMETRIC"), ((3,),)),
    OpCase("space_to_depth", "layout", (In("image", (None, 4, 6, 3)),), lambda tf, x, w: tf.nn.depth_to_space(
        tf.nn.space_to_depth(x[0] * w[0], 2) * 2.0, 2), ((3,),)),
    OpCase("batch_to_space", "layout", (In("image", (2, 4, 6, 3)),), lambda tf, x, w: tf.batch_to_space(
        tf.space_to_batch(x[0] * w[0], [2, 2], [[0, 0], [0, 0]]) + 1.0, [2, 2], [[0, 0], [0, 0]]), ((3,),)),
    OpCase("matrix_band_part", "layout", (In("x", (None, 5, 5)),), lambda tf, x, w: tf.linalg.band_part(
        x[0] * w[0], 1, 0), ((5,),)),
    OpCase("tile_broadcast_to", "layout", (VEC,), lambda tf, x, w: tf.tile(x[0], [1, 2]) + tf.broadcast_to(
        w[0], [3, 16])[:1], ((16,),)),
    OpCase("one_hot", "layout", (In("ids", (None, 5), "int32"),), lambda tf, x, w: tf.matmul(
        tf.reshape(tf.one_hot(x[0], 7), [-1, 7]), w[0]), ((7, 3),)),
    OpCase("sequence_mask", "layout", (In("x", (None, 6, 4)), In("lengths", (None,), "int32")),
           lambda tf, x, w: tf.reduce_sum(x[0] * w[0] * tf.cast(tf.sequence_mask(x[1], 6), tf.float32)[
               :, :, None], 1), ((4,),)),
    # tf.nn
    OpCase("conv1d", "nn", (In("x", (None, 10, 3)),), lambda tf, x, w: tf.nn.conv1d(x[0], w[0], 2, "SAME"),
           ((3, 3, 4),)),
    OpCase("conv3d", "nn", (In("x", (None, 4, 6, 6, 2)),), lambda tf, x, w: tf.nn.conv3d(
        x[0], w[0], [1, 1, 2, 2, 1], "SAME"), ((3, 3, 3, 2, 4),)),
    OpCase("atrous_conv2d", "nn", (IMG,), lambda tf, x, w: tf.nn.atrous_conv2d(x[0], w[0], 2, "SAME"),
           ((3, 3, 3, 4),)),
    OpCase("conv2d_transpose", "nn", (IMG,), lambda tf, x, w: tf.nn.conv2d_transpose(
        x[0], w[0], tf.stack([tf.shape(x[0])[0], 12, 16, 4]), 2, "SAME"), ((3, 3, 4, 3),)),
    OpCase("depthwise_conv2d", "nn", (IMG,), lambda tf, x, w: tf.nn.depthwise_conv2d(
        x[0], w[0], [1, 1, 1, 1], "SAME", dilations=[2, 2]), ((3, 3, 3, 2),)),
    OpCase("separable_conv2d", "nn", (IMG,), lambda tf, x, w: tf.nn.separable_conv2d(
        x[0], w[0], w[1], [1, 1, 1, 1], "VALID"), ((3, 3, 3, 2), (1, 1, 6, 4))),
    OpCase("avg_max_pool3d", "nn", (In("x", (None, 4, 6, 6, 2)),), lambda tf, x, w: tf.nn.avg_pool3d(
        x[0] * w[0], 2, 2, "SAME") + tf.nn.max_pool3d(x[0], 2, 2, "SAME"), ((2,),)),
    OpCase("local_response_normalization", "nn", (IMG,), lambda tf, x, w: tf.nn.local_response_normalization(
        x[0] * w[0], depth_radius=1, alpha=1e-2, beta=0.75), ((3,),)),
    OpCase("l2_normalize", "nn", (VEC,), lambda tf, x, w: tf.math.l2_normalize(x[0] * w[0], axis=1), ((8,),)),
    OpCase("moments", "nn", (IMG,), lambda tf, x, w: tf.nn.moments(x[0] * w[0], axes=[1, 2], keepdims=True),
           ((3,),)),
    OpCase("fused_batch_norm_inference", "nn", (IMG,), lambda tf, x, w: tf.compat.v1.nn.fused_batch_norm(
        x[0], w[0], w[1], mean=w[2], variance=tf.abs(w[3]) + 0.1, is_training=False)[0], ((3,),) * 4),
    OpCase("log_softmax", "nn", (VEC,), lambda tf, x, w: tf.nn.log_softmax(x[0] * w[0]), ((8,),)),
    OpCase("ctc_greedy_decoder", "nn", (In("x", (None, 7, 4)),), _ctc, ((4, 5),)),
    # strings, ragged, random, dtypes
    OpCase("strings_to_number", "dtype", (In("text", (None,), "string"),), lambda tf, x, w: tf.strings.to_number(
        tf.strings.regex_replace(x[0], "[^0-9]", "")) * w[0], ((1,),)),
    OpCase("ragged_to_dense", "dtype", (In("values", (None,)), In("lengths", (3,), "int32")),
           lambda tf, x, w: tf.RaggedTensor.from_row_lengths(x[0], x[1]).to_tensor(shape=[3, 4]) * w[0], ((4,),)),
    OpCase("ragged_nested_rowids", "dtype", (In("values", (None,)), In("splits", (4,), "int64"),
                                             In("rowids", (None,), "int64")),
           lambda tf, x, w: tf.RaggedTensor.from_row_splits(tf.RaggedTensor.from_value_rowids(
               x[0] * w[0], x[2]), x[1]).to_tensor(shape=[3, 4, 5]), ((1,),)),
    OpCase("ragged_map_fn", "dtype", (In("values", (None,)), In("splits", (None,), "int64")),  # a RaggedTensorSpec's
           lambda tf, x, w: tf.map_fn(lambda row: tf.reduce_sum(row * w[0]), tf.RaggedTensor.from_row_splits(
               x[0], x[1]), fn_output_signature=tf.float32), ((1,),)),
    OpCase("random_in_inference", "random", (VEC,), lambda tf, x, w: x[0] * w[0] + tf.random.normal(
        tf.shape(x[0]), stddev=0.01), ((8,),)),
    OpCase("int64_input", "dtype", (In("ids", (None, 4), "int64"),), lambda tf, x, w: tf.cast(
        x[0] * 3 + 1, tf.float32) * w[0], ((4,),)),
    OpCase("bool_input", "dtype", (VEC, In("mask", (None, 8), "bool")), lambda tf, x, w: tf.where(
        x[1], x[0] * w[0], tf.zeros_like(x[0])), ((8,),)),
    OpCase("float16_input", "dtype", (In("x", (None, 8), "float16"),), lambda tf, x, w: tf.matmul(
        tf.cast(x[0], tf.float32), w[0]), ((8, 4),)),
    OpCase("float64_input", "dtype", (In("x", (None, 8), "float64"),), lambda tf, x, w: tf.matmul(
        x[0], tf.cast(w[0], tf.float64)), ((8, 4),)),
    # TF1 patterns (TF1 control flow; TF1 SavedModel with two signatures)
    OpCase("tf1_rnn_batch_major", "tf1", (In("x", (None, 5, 4)),), _rnn(False), ((4, 6), (6, 6)) * 2, tf1=True),
    OpCase("tf1_rnn_time_major", "tf1", (In("x", (5, None, 4)),), _rnn(True), ((4, 6), (6, 6)) * 2, tf1=True),
    OpCase("tf1_placeholder_default_cond", "tf1", (VEC,), _with_default, ((8, 8),), tf1=True),
    OpCase("tf1_variable_scope_reuse", "tf1", (VEC,), _scope_reuse, (), tf1=True, formats=GRAPH),
    OpCase("tf2_rnn_while_loop", "loop", (In("x", (None, 5, 4)),), _rnn(False), ((4, 6), (6, 6)) * 2),
]}
