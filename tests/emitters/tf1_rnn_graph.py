"""Write a frozen TF1 ``tf.compat.v1.nn.dynamic_rnn`` graph (v1 control flow: Enter/Exit/Merge, as
TF1-era checkpoints froze) and TensorFlow's own answer on one input. Run in a subprocess with
``TF_USE_LEGACY_KERAS=1`` (``tf.compat.v1.nn.rnn_cell`` needs Keras 2).

The graph mirrors a speech model's: ``x`` is ``[time, batch, F]`` (time-major) or
``[batch, time, F]``, ``lens [batch]`` are the sequence lengths, and the initial state is a
placeholder ``state [1, batch, H]`` whose leading axis is sliced off outside the loop.

With ``context``, each step also adds a per-sequence context computed outside the loop and
reshaped to the step's output by a shape taken outside it (an attention-style wrapper): the
loop body then reads outer tensors that tf2onnx names itself, and stays an ONNX ``Loop``.

Usage: python tf1_rnn_graph.py OUT.pb gru|lstm time|batch [context]
"""

import sys

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
T, B, F, H = 5, 3, 4, 6


class ContextCell(v1.nn.rnn_cell.RNNCell):
    """``cell`` whose output gets ``reshape(context, shape)`` added: both tensors from outside the loop."""

    def __init__(self, cell, context, shape):
        super().__init__()
        self.cell, self.context, self.shape = cell, context, shape

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return self.cell.output_size

    def call(self, inputs, state):
        out, new_state = self.cell(inputs, state)
        return out + tf.reshape(self.context, self.shape), new_state


def main(path: str, cell_kind: str, major: str, context: str = "") -> None:
    v1.disable_eager_execution()
    v1.disable_control_flow_v2()
    time_major = major == "time"
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, None, F], name="x")
        lens = v1.placeholder(tf.int32, [None], name="lens")
        state = v1.placeholder(tf.float32, [1, None, H], name="state")
        if cell_kind == "gru":
            cell, initial = v1.nn.rnn_cell.GRUCell(H), state[0]
        else:
            cell = v1.nn.rnn_cell.LSTMCell(H)
            initial = v1.nn.rnn_cell.LSTMStateTuple(state[0], tf.tanh(state[0]))
        if context:
            mean = tf.reduce_mean(x, axis=0 if time_major else 1)  # [batch, F]
            cell = ContextCell(cell, tf.tanh(tf.matmul(mean, tf.ones([F, H]) / F)), tf.shape(state[0]))
        outputs, _ = v1.nn.dynamic_rnn(cell, x, sequence_length=lens, initial_state=initial, time_major=time_major)
        tf.identity(outputs, name="y")
        rng = np.random.default_rng(0)
        feed = {x: rng.standard_normal((T, B, F) if time_major else (B, T, F)).astype(np.float32),
                lens: np.array([T, 2, 4], np.int32)[:B],
                state: rng.standard_normal((1, B, H)).astype(np.float32)}
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
            y = sess.run("y:0", feed)
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString())
    np.savez(path + ".npz", x=feed[x], lens=feed[lens], state=feed[state], y=y)


if __name__ == "__main__":
    main(*sys.argv[1:5])
