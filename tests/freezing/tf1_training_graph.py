"""Build a TF1 training checkpoint the way TF1-era scripts did (run in a subprocess, with
``TF_USE_LEGACY_KERAS=1`` so ``tf.compat.v1.layers`` exists):

``tf.compat.v1.layers.batch_normalization(training=is_training)``, dropout through a ``keep_prob``
placeholder (``tf.compat.v1.nn.dropout``) or a ``rate`` placeholder (``tf.nn.dropout``), a label
placeholder named ``y``, ``tf.compat.v1.losses.sparse_softmax_cross_entropy``, UPDATE_OPS control
dependencies on the train op, a Saver.

Usage: python tf1_training_graph.py DIRECTORY [keep_prob|rate] [v1|v2]
"""

import os
import sys

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def main(directory: str, dropout: str = "keep_prob", flow: str = "v1") -> None:
    os.makedirs(directory, exist_ok=True)
    v1.disable_eager_execution()
    if flow == "v1":
        v1.disable_control_flow_v2()
    else:  # TensorFlow 2's default, set again for a process that wrote a v1 graph before
        v1.enable_control_flow_v2()
    rng = np.random.default_rng(0)
    x_train = rng.random((64, 8, 8, 1), dtype=np.float32)
    y_train = rng.integers(0, 10, 64)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 8, 8, 1], name="x")
        y = v1.placeholder(tf.int64, [None], name="y")
        is_training = v1.placeholder(tf.bool, [], name="is_training")
        if dropout == "keep_prob":
            knob = v1.placeholder(tf.float32, [], name="keep_prob")
        else:
            knob = v1.placeholder_with_default(0.0, [], name="rate")
        h = v1.layers.conv2d(x, 8, 3, padding="same", name="conv1")
        h = v1.layers.batch_normalization(h, training=is_training, name="bn")
        h = tf.nn.relu(h)
        h = v1.layers.flatten(h)
        h = v1.nn.dropout(h, keep_prob=knob) if dropout == "keep_prob" else tf.nn.dropout(h, rate=knob)
        logits = v1.layers.dense(h, 10, name="logits")
        tf.nn.softmax(logits, name="probs")
        loss = v1.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = v1.train.AdamOptimizer(1e-3).minimize(loss)
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            feed = {x: x_train, y: y_train, is_training: True}
            if dropout == "keep_prob":
                feed[knob] = 0.5
            else:
                feed[knob] = 0.5
            for _ in range(3):
                sess.run(train_op, feed)
            saver.save(sess, os.path.join(directory, "model.ckpt"))


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    main(*sys.argv[1:])
