"""The GraphDef edit helpers every pass uses (no TensorFlow runtime needed, only its protos)."""

from __future__ import annotations

import pytest

from tfopt._tf import graph_def_class
from tfopt.graph import DT_FLOAT, DT_INT32, control_inputs, remove_nodes, replace_nodes, rewrite_node


@pytest.fixture
def graph():
    g = graph_def_class()()
    for name, op, inputs in (("x", "Placeholder", []), ("c", "Const", []), ("mul", "Mul", ["x", "c", "^c"]),
                             ("out", "Identity", ["mul"])):
        node = g.node.add(name=name, op=op, input=inputs)
        node.attr["T"].type = DT_FLOAT
    return g


def test_rewrite_node_keeps_the_name_clears_old_attrs_and_reads_its_arguments_first(graph):
    mul = graph.node[2]
    mul.attr["_output_shapes"].list.shape.add()
    rewrite_node(mul, "BiasAdd", inputs=[mul.input[0], "c", *control_inputs(mul)], types={"T": mul.attr["T"].type},
                 strings={"data_format": b"NHWC"}, ints={"n": 2}, type_lists={"Tout": [DT_FLOAT, DT_INT32]})
    assert (mul.name, mul.op, list(mul.input)) == ("mul", "BiasAdd", ["x", "c", "^c"])
    assert sorted(mul.attr) == ["T", "Tout", "data_format", "n"]
    assert mul.attr["T"].type == DT_FLOAT and list(mul.attr["Tout"].list.type) == [DT_FLOAT, DT_INT32]


def test_rewrite_node_without_inputs_keeps_them(graph):
    rewrite_node(graph.node[3], "Snapshot", types={"T": DT_FLOAT})
    assert graph.node[3].op == "Snapshot" and list(graph.node[3].input) == ["mul"]


def test_remove_nodes_keeps_the_rest_in_order(graph):
    remove_nodes(graph, {"c", "out"})
    assert [n.name for n in graph.node] == ["x", "mul"]


def test_replace_nodes_accepts_the_graphs_own_nodes(graph):
    replace_nodes(graph, list(graph.node)[::-1])
    assert [n.name for n in graph.node] == ["out", "mul", "c", "x"]
    assert list(graph.node[1].input) == ["x", "c", "^c"]


@pytest.mark.parametrize("existing", [0, 1, 3])
def test_unique_name_with_kept_names_matches_reading_the_graph(existing):
    """A caller keeping the taken names gets the names the graph-reading form gives, node after node."""
    from tfopt.graph import unique_name

    a, b = graph_def_class()(), graph_def_class()()
    for g in (a, b):
        g.node.add(name="x")
        for i in range(existing):
            g.node.add(name=f"x_{i + 1}" if i else "x/c")
    taken = {n.name for n in b.node}
    for base in ["x", "x/c", "x", "y", "x/c"]:
        a.node.add(name=unique_name(a, base))
        b.node.add(name=unique_name(b, base, taken))
        assert [n.name for n in a.node] == [n.name for n in b.node]
    assert taken == {n.name for n in b.node} and len(taken) == len(b.node)


@pytest.mark.parametrize("given", [(5, 3), (None, 3), (2, None)], ids=["pinned", "opened", "other-axis-opened"])
def test_with_input_shapes_is_the_shape_tensorflow_imports(given):
    """A graph written with ``add_shapes=True`` records each node's ``_output_shapes``; the placeholder's record
    goes with its old shape (TensorFlow's import took it over the new shape, or refused the two as inconsistent)."""
    from tfopt._tf import tf
    from tfopt.graph import with_input_shapes

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.compat.v1.placeholder(t.float32, [2, 3], name="x")
    with t.Graph().as_default() as imported:
        t.graph_util.import_graph_def(with_input_shapes(graph.as_graph_def(add_shapes=True), {"x": given}), name="")
    assert tuple(imported.get_tensor_by_name("x:0").shape) == given
