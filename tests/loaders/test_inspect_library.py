"""``tfopt inspect`` of a ``.pb`` whose graph calls into its function library (a ``tf.function``'s
``While`` and ``If``) describes the library as it describes the main graph: how many functions, how
many the graph calls, their nodes and op histogram, and the training-only ops inside the bodies (a
variable write in a loop body), which the main graph's counts stop at. Generated graphs: a while loop
with a cond after it or nested in its body, frozen or holding a write in the body."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfopt import cli


def _graph(tmp_path, *, nested: bool, write: bool, steps: int) -> tuple[str, object]:
    from tfopt._tf import tf

    t = tf()
    v = t.Variable(np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3))
    counter = t.Variable(0.0)

    @t.function(input_signature=[t.TensorSpec([None, 3], t.float32, name="x")])
    def f(x):
        def body(i, y):
            if write:
                counter.assign_add(1.0)
            y = t.tanh(t.matmul(y, v))
            if nested:
                y = t.cond(t.reduce_max(y) > 0, lambda: y * 0.5, lambda: y + 0.5)
            return i + 1, y

        _, y = t.while_loop(lambda i, y: i < steps, body, [t.constant(0), x])
        return t.cond(t.reduce_sum(y) > 0, lambda: y * 2.0, lambda: y - 1.0)

    function = f.get_concrete_function()
    if write:  # as written: the write's resource is a placeholder of the graph
        graph_def = function.graph.as_graph_def()
    else:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        graph_def = convert_variables_to_constants_v2(function, lower_control_flow=False).graph.as_graph_def()
    path = tmp_path / "model.pb"
    path.write_bytes(graph_def.SerializeToString())
    return str(path), graph_def


@pytest.mark.parametrize("nested,write,steps", [(False, False, 2), (True, False, 3), (False, True, 4), (True, True, 2)],
                         ids=["loop-cond", "cond-in-loop", "write-in-loop", "cond-and-write-in-loop"])
def test_inspect_describes_the_function_library(tmp_path, capsys, nested, write, steps):
    path, graph_def = _graph(tmp_path, nested=nested, write=write, steps=steps)
    functions = {f.signature.name: f for f in graph_def.library.function}
    assert cli.main(["inspect", path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    library = info["library"]
    assert library["functions"] == len(functions) >= (5 if nested else 4)  # cond, body, two branches (+ two nested)
    assert library["reached"] == len(functions)  # every one is the loop's, a branch, or called from a body
    assert library["nodes"] == sum(len(f.node_def) for f in functions.values())
    assert sum(library["ops"].values()) == library["nodes"]
    assert {"MatMul", "Tanh"} <= set(library["ops"])  # the loop body's layer, which the main graph's ops lack
    assert not {"MatMul", "Tanh"} & set(info["ops"])
    bodies = [name for name, f in functions.items() if any(n.op == "AssignAddVariableOp" for n in f.node_def)]
    assert library["training_ops"] == ({name: ["AssignAddVariableOp"] for name in bodies} if write else {})
    assert library["training_nodes"] == (1 if write else 0)
    assert cli.main(["inspect", path]) == 0
    text = capsys.readouterr().out
    assert f"function library: {len(functions)} functions" in text
    assert ("training-only ops in" in text) == write
