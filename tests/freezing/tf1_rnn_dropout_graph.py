"""Build a TF1 checkpoint of a ``dynamic_rnn`` whose cell is wrapped in ``DropoutWrapper`` (run in
a subprocess, with ``TF_USE_LEGACY_KERAS=1`` so ``tf.compat.v1.nn.rnn_cell`` exists).

The dropout masks are drawn inside the ``while_loop`` body; the keep probability reaches them only
through the loop's ``Enter``. It also saves ``reference.npz``: an input ``x`` and the output at
keep probability 1.

Usage: python tf1_rnn_dropout_graph.py DIRECTORY {gru|lstm} {time|batch} {scalar|unknown-rank|default} [variational]

``variational`` draws one mask per sequence (TF <= 1.12's ``floor(keep + U)`` form) before the loop.
"""

import os
import sys

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 6


def main(directory: str, cell_kind: str, major: str, knob: str, variational: str = "") -> None:
    v1.disable_eager_execution()
    v1.disable_control_flow_v2()
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        shape = [None, TIME, FEATURES] if major == "batch" else [TIME, None, FEATURES]
        x = v1.placeholder(tf.float32, shape, name="x")
        if knob == "default":
            keep = v1.placeholder_with_default(0.7, [], name="keep_prob")
        else:
            keep = v1.placeholder(tf.float32, [] if knob == "scalar" else None, name="keep_prob")
        cell = v1.nn.rnn_cell.GRUCell(UNITS) if cell_kind == "gru" else v1.nn.rnn_cell.LSTMCell(UNITS)
        cell = v1.nn.rnn_cell.DropoutWrapper(cell, input_keep_prob=keep, output_keep_prob=keep,
                                             state_keep_prob=keep, variational_recurrent=bool(variational),
                                             input_size=FEATURES, dtype=tf.float32)
        out, _ = v1.nn.dynamic_rnn(cell, x, dtype=tf.float32, time_major=major == "time")
        tf.identity(v1.layers.dense(out, 2, name="head"), name="y")
        saver = v1.train.Saver()
        rng = np.random.default_rng(0)
        xs = rng.normal(size=[BATCH, TIME, FEATURES] if major == "batch" else [TIME, BATCH, FEATURES])
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            y = sess.run("y:0", {x: xs.astype(np.float32), keep: 1.0})
            saver.save(sess, os.path.join(directory, "model.ckpt"))
    np.savez(os.path.join(directory, "reference.npz"), x=xs.astype(np.float32), y=y)


if __name__ == "__main__":
    main(*sys.argv[1:])
