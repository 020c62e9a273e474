"""Write a model whose one input is time-major, ``x [time, batch, F]``, with no other input to tie its
batch to. Run by ``tests.helpers.keras2_builds`` (``TF_USE_LEGACY_KERAS=1``: ``rnn_cell`` and
``tf_keras`` need Keras 2).

kinds (how the graph reads the time-major input):
    dynamic_rnn  ``tf.compat.v1.nn.dynamic_rnn(GRUCell, time_major=True)``, v1 control flow (TensorArrayScatterV3)
    loop         a ``tf.while_loop`` over ``TensorArray.unstack(x)``, v2 control flow (TensorListFromTensor)
    unstack      ``tf.unstack(x, axis=0)`` and a cell applied step by step (a static time)
    transpose    ``tf.transpose(x, [1, 0, 2])`` to batch-major at the start, then a mean over time
    keras        a Keras 2 ``GRU(time_major=True)`` (SavedModel only)
formats: ``pb`` (frozen GraphDef), ``ckpt`` (TF1 checkpoint: ``.meta`` + variables), ``savedmodel``.
``time``: the static time, or 0 for an unknown one. The output ``y`` is ``[batch, CLASSES]``.

Usage: main(path, kind, fmt, time)
"""

import os

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
F, H, CLASSES = 4, 5, 3


def _graph(kind: str, time: int) -> None:
    rng = np.random.default_rng(len(kind) + time)
    x = v1.placeholder(tf.float32, [time or None, None, F], name="x")
    w = v1.get_variable("w", initializer=rng.normal(size=[F, H]).astype(np.float32) * 0.5)
    u = v1.get_variable("u", initializer=rng.normal(size=[H, H]).astype(np.float32) * 0.5)
    out = v1.get_variable("out", initializer=rng.normal(size=[H, CLASSES]).astype(np.float32))
    zeros = tf.zeros(tf.stack([tf.shape(x)[1], H]))  # the zero state, sized by the batch axis
    if kind == "dynamic_rnn":
        _, h = v1.nn.dynamic_rnn(v1.nn.rnn_cell.GRUCell(H), x, dtype=tf.float32, time_major=True)
    elif kind == "loop":
        steps = tf.TensorArray(tf.float32, size=tf.shape(x)[0]).unstack(x)

        def body(i, h):
            return i + 1, tf.tanh(tf.matmul(steps.read(i), w) + tf.matmul(h, u))

        _, h = tf.while_loop(lambda i, h: i < tf.shape(x)[0], body, [tf.constant(0), zeros])
    elif kind == "unstack":
        h = tf.zeros(tf.stack([tf.shape(tf.unstack(x, time, axis=0)[0])[0], H]))
        for step in tf.unstack(x, time, axis=0):
            h = tf.tanh(tf.matmul(step, w) + tf.matmul(h, u))
    else:  # transpose
        h = tf.tanh(tf.matmul(tf.reduce_mean(tf.transpose(x, [1, 0, 2]), axis=1), w))
    tf.identity(tf.matmul(h, out), name="y")


def _keras(path: str, time: int) -> None:
    import tf_keras as keras

    tf.random.set_seed(time)
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(None, F), batch_size=None),
                              keras.layers.GRU(H, time_major=True), keras.layers.Dense(CLASSES, name="y")])
    model.save(path)


def main(path: str, kind: str, fmt: str, time: int) -> None:
    if kind == "keras":
        _keras(path, time)
        return
    if kind == "dynamic_rnn":
        v1.disable_control_flow_v2()
    else:
        v1.enable_control_flow_v2()
    graph = tf.Graph()
    with graph.as_default():
        _graph(kind, time)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            if fmt == "pb":
                frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
                with open(path, "wb") as f:
                    f.write(frozen.SerializeToString())
            elif fmt == "ckpt":
                os.makedirs(path, exist_ok=True)
                v1.train.Saver().save(sess, os.path.join(path, "model"))
            else:
                v1.saved_model.simple_save(sess, path, {"x": graph.get_tensor_by_name("x:0")},
                                           {"y": graph.get_tensor_by_name("y:0")})
