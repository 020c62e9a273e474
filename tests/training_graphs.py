"""TF1 segmentation training graphs as Morpheus-style packages write them (issue 24, class 9).

``segmentation_checkpoint`` builds a small conv network ``net(x, training)`` (conv → fused batch norm →
relu → dropout → conv → bias: the logits ``[?, H, W, C]``) once or twice — a *train tower* (batch
statistics, dropout on, the loss and Adam) and an *eval tower* (moving statistics, dropout off) sharing
their variables through ``reuse=True`` — fed by placeholders or by one ``tf.data`` iterator per tower,
with what such scripts hang on the logits: a channel slice ``logits[..., k]`` for a per-class summary,
metric or a dice loss, ``tf.compat.v1.metrics.mean_iou`` over thresholded slices and an accuracy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tfopt._tf import tf


@dataclass
class Built:
    prefix: str  # the checkpoint's prefix
    logits: dict[str, str]  # tower ("train"/"eval") -> its logits' node
    images: np.ndarray  # a batch for the inference tower
    expected: np.ndarray  # TensorFlow's logits of the inference tower at ``images``


def segmentation_checkpoint(directory, *, towers=2, channels=3, classes=4, size=8, source="iterator",
                            slice_uses=(), iou=False, dropout="v2", seed=0, names=("net", "logits")) -> Built:
    """Save the graph described in the module docstring; ``slice_uses`` among "sink", "summary",
    "metric", "loss" (what ``logits[..., k]`` is or feeds), ``iou``: mean_iou metrics over thresholds, ``dropout``:
    "v2" (``tf.nn.dropout(rate=)``) or "v1" (``keep_prob``: ``x / keep * floor(keep + u)``)."""
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    scope, head = names
    images = rng.standard_normal((2, size, size, channels)).astype(np.float32)
    graph = t.Graph()

    def net(x, training):
        with v1.variable_scope(scope, reuse=v1.AUTO_REUSE):
            w1 = v1.get_variable("conv1/kernel", [3, 3, channels, 6])
            gamma = v1.get_variable("bn/gamma", [6], initializer=v1.ones_initializer())
            beta = v1.get_variable("bn/beta", [6], initializer=v1.zeros_initializer())
            mean = v1.get_variable("bn/moving_mean", [6], initializer=v1.constant_initializer(0.1), trainable=False)
            var = v1.get_variable("bn/moving_variance", [6], initializer=v1.constant_initializer(2.0),
                                  trainable=False)
            w2 = v1.get_variable("conv2/kernel", [1, 1, 6, classes])
            b2 = v1.get_variable("conv2/bias", [classes], initializer=v1.constant_initializer(0.05))
        h = t.nn.conv2d(x, w1, 1, "SAME")
        if training:
            h, batch_mean, batch_var = v1.nn.fused_batch_norm(h, gamma, beta, is_training=True)
            for moving, value in ((mean, batch_mean), (var, batch_var)):
                v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign_sub(moving, 0.01 * (moving - value)))
        else:
            h, _, _ = v1.nn.fused_batch_norm(h, gamma, beta, mean, var, is_training=False)
        h = t.nn.relu(h)
        if training:
            h = t.nn.dropout(h, rate=0.3) if dropout == "v2" else v1.nn.dropout(h, keep_prob=0.7)
        else:
            h = t.identity(h, name="dropout/Identity")
        return t.nn.bias_add(t.nn.conv2d(h, w2, 1, "SAME"), b2, name=head)

    def element(k):
        if source == "placeholder":
            return (v1.placeholder(t.float32, [None, size, size, channels], name=f"images_{k}"),
                    v1.placeholder(t.float32, [None, size, size, classes], name=f"labels_{k}"))
        data = (np.zeros([4, size, size, channels], np.float32), np.zeros([4, size, size, classes], np.float32))
        return v1.data.make_initializable_iterator(t.data.Dataset.from_tensor_slices(data).batch(2)).get_next()

    def metrics(logits, y, where):
        with t.name_scope(where):
            if iou:
                yh_last = t.reshape(t.sigmoid(logits[..., -1]), [-1])
                y_last = t.reshape(y[..., -1], [-1])
                for threshold in (0.5, 0.7):
                    with t.name_scope(f"iou-{threshold}"):
                        preds = t.cast(t.greater_equal(yh_last, threshold), t.int32)
                        v1.metrics.mean_iou(t.cast(y_last, t.int32), preds, 2, name=f"iou-{threshold}")
            v1.metrics.accuracy(t.argmax(t.reshape(y, [-1, classes]), 1),
                                t.argmax(t.reshape(logits, [-1, classes]), 1), name="overall")
            k = int(rng.integers(0, classes))
            if "metric" in slice_uses:
                v1.metrics.mean_squared_error(y[..., k], t.sigmoid(logits[..., k]), name=f"class_{k}")
            if "sink" in slice_uses:  # a per-class map the script fetches beside the metrics
                t.identity(logits[..., k], name=f"class_{k}_map")
            if "summary" in slice_uses:
                v1.summary.histogram(f"class_{k}_logits", logits[..., k])
                v1.summary.scalar(f"class_{k}_mean", t.reduce_mean(logits[..., k]))

    logits: dict[str, str] = {}
    with graph.as_default():
        built = {}
        for k, tower in enumerate(["train", "eval"][-towers:] if towers == 1 else ["train", "eval"]):
            x, y = element(k)
            out = net(x, tower == "train" and towers == 2)
            built[tower] = (x, out)
            logits[tower] = out.op.name
            if tower == "train" or towers == 1:
                flat = t.reshape(out, [-1, classes])
                loss = t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(labels=t.reshape(y, [-1, classes]),
                                                                            logits=flat))
                if "loss" in slice_uses:
                    yh_bg, y_bg = t.sigmoid(out[:, :, :, -1]), y[:, :, :, -1]
                    dice = t.reduce_mean(2 * t.reduce_sum(yh_bg * y_bg, [1, 2]) / t.reduce_sum(yh_bg + y_bg, [1, 2]))
                    loss = loss + (1 - dice)
                with t.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
                    v1.train.AdamOptimizer().minimize(loss)
            metrics(out, y, f"{tower}_metrics")
        x, out = built["eval" if "eval" in built else "train"]
        with v1.Session(graph=graph) as sess:
            sess.run([v1.global_variables_initializer(), v1.local_variables_initializer()])
            expected = sess.run(out, {x: images})
            prefix = v1.train.Saver().save(sess, os.path.join(str(directory), "model.ckpt"))
    return Built(prefix, logits, images, expected)
