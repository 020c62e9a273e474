"""Calls into the function library (tfopt.graphdef.calls): a TF1 graph with a ``tf.cond``, a
``tf.while_loop``, a ``tf.switch_case`` (a functional ``Case`` at graph level) and a ``tf.function``
called twice; every call input maps to the argument TensorFlow binds it to, and a branch selector
maps to none."""

from __future__ import annotations

import pytest

from tests.helpers import graph_model
from tfopt.graphdef.calls import argument_inputs, arguments, callees, function_consumers, library_of, ref_node


def _calls(t):
    x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
    k = t.compat.v1.placeholder(t.int32, [], name="k")

    @t.function
    def twice(v):
        return v * 2.0

    c = t.cond(k > 0, lambda: twice(x), lambda: x + 1.0)
    w = t.while_loop(lambda i, a: i < k, lambda i, a: (i + 1, a + twice(x)), [0, t.zeros_like(x)])[1]
    s = t.switch_case(k, [lambda: x * 3.0, lambda: twice(x)])
    t.identity(c + w + s + twice(x), name="y")


@pytest.fixture(scope="module")
def graph_def():
    return graph_model(_calls, {}, ["y"]).graph_def


def test_every_call_input_maps_to_its_argument_and_selectors_to_none(graph_def):
    library = library_of(graph_def)
    calls = [n for n in graph_def.node if callees(n, library)]
    ops = {n.op for n in calls}
    assert {"StatelessIf", "StatelessWhile", "StatelessCase"} & ops or {"If", "While", "Case"} & ops, ops
    for node in calls:
        data = [r for r in node.input if not r.startswith("^")]
        selector = node.op in ("If", "StatelessIf", "Case", "StatelessCase")
        if selector:
            assert arguments(node, 0, library) == []  # the predicate / branch index feeds no argument
        for fdef in (library[name] for name in callees(node, library)):
            fed = argument_inputs(node, fdef, library)
            assert list(fed) == [a.name for a in fdef.signature.input_arg][:len(fed)]
            for i, ref in enumerate(data[1 if selector else 0:]):
                index = i + (1 if selector else 0)
                arg = fdef.signature.input_arg[i].name
                assert (fdef, arg) in arguments(node, index, library) and fed[arg] == ref
    assert any(n.op in ("PartitionedCall", "StatefulPartitionedCall") for n in calls)
    while_ = next(n for n in calls if n.op.endswith("While"))
    assert sorted(callees(while_, library)) == sorted([while_.attr["cond"].func.name, while_.attr["body"].func.name])


def test_function_consumers_name_nodes_and_arguments(graph_def):
    for fdef in graph_def.library.function:
        users = function_consumers(fdef)
        names = {n.name for n in fdef.node_def} | {a.name for a in fdef.signature.input_arg}
        assert set(users) <= names
        for arg in fdef.signature.input_arg:
            for node, i in users.get(arg.name, []):
                assert ref_node(node.input[i]) == arg.name
    assert ref_node("^a") == ref_node("a:1") == ref_node("a:z:0") == "a"
