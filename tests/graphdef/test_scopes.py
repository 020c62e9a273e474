"""Data liveness through functional control flow: each loop variable, branch arg and call arg an output needs."""

from __future__ import annotations

import pytest

from tfopt.graphdef.scopes import Liveness, join_path


def _graph(fn, n: int):
    import tensorflow as tf

    spec = [tf.TensorSpec([2], tf.float32, name=f"v{i}") for i in range(n)]
    concrete = tf.function(fn).get_concrete_function(*spec)
    return concrete.graph.as_graph_def(), [t.name for t in concrete.outputs]


@pytest.mark.parametrize(("n", "steps"), [(2, 3), (3, 2), (4, 5)])
def test_a_loop_output_needs_every_variable_it_is_rotated_from(n, steps):
    """Loop variables v0..v(n-1) rotate (v_k <- v_(k+1)) and a last one only doubles: after the loop v0 holds
    a value from every rotated input (iteration t+1 reads what t returned), never from the doubled one."""
    import tensorflow as tf

    def rotate(*vs):
        def body(i, *loop):
            *ring, last = loop
            return (i + 1, *ring[1:], ring[0] * 1.5, last * 2.0)

        return tf.while_loop(lambda i, *_: i < steps, body, [tf.constant(0), *vs])[1]

    graph_def, outputs = _graph(rotate, n + 1)
    live = Liveness(graph_def).of_outputs(outputs)
    assert {f"v{i}" for i in range(n)} <= live and f"v{n}" not in live


@pytest.mark.parametrize("branch_inputs", [1, 2, 3])
def test_a_branch_output_needs_the_predicate_and_what_either_branch_reads(branch_inputs):
    import tensorflow as tf

    def choose(*vs):
        read = vs[:branch_inputs]
        first = tf.cond(tf.reduce_sum(vs[-1]) > 0, lambda: tf.add_n(read), lambda: read[0] * 2.0)
        return first, tf.cond(vs[-1][0] > 0, lambda: vs[-2] * 3.0, lambda: vs[-2])

    graph_def, outputs = _graph(choose, branch_inputs + 2)
    live = Liveness(graph_def).of_outputs(outputs[:1])  # the first output only
    assert live >= {f"v{i}" for i in range(branch_inputs)} | {f"v{branch_inputs + 1}"}
    assert f"v{branch_inputs}" not in live  # read only by the second output's branches


@pytest.mark.parametrize(("outer", "name", "joined"), [
    ("model/rnn/while", "model/rnn/while/cell/Assign", "model/rnn/while/cell/Assign"),
    ("StatefulPartitionedCall/while", "while/AssignAddVariableOp", "StatefulPartitionedCall/while/AssignAddVariableOp"),
    ("", "a/b", "a/b"),
    ("a/b", "c/d", "a/b/c/d")])
def test_a_body_node_is_named_inside_its_call_path_once(outer, name, joined):
    assert join_path(outer, name) == joined
