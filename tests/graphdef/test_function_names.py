"""Library functions named after their content: two graphs whose writers gave different bodies the same
function names convert one after the other in one process (tfopt.graphdef.function_names)."""

from __future__ import annotations

import re

import numpy as np

import tfopt
from tfopt._tf import tf
from tfopt.graphdef.function_names import content_named, rename_functions

ATOL = 1e-5  # float32, a tanh of a 4-wide matmul three times: TensorFlow's own kernels in the runtimes


def _frozen(shift: float) -> tuple[object, dict[str, np.ndarray]]:
    """A TF1 graph with v2 control flow (a ``tf.cond`` inside a ``tf.while_loop`` body, so a body calls a
    branch) whose body adds ``shift``; its functions renamed as a process that wrote only this graph names
    them (the per-process uid dropped): two shifts give two different bodies under the same names.
    Returns the GraphDef and ``{"x", "y"}`` from TensorFlow."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        was_v2 = t.compat.v1.control_flow_v2_enabled()
        v1.enable_control_flow_v2()
        x = v1.placeholder(t.float32, [None, 4], name="x")
        w = t.constant(np.random.default_rng(3).normal(size=(4, 4)).astype(np.float32))

        def body(i, a):
            a = t.tanh(t.matmul(a, w) + shift)
            return i + 1, t.cond(t.reduce_sum(a) > 0, lambda: a * 0.5, lambda: a - shift)

        y = t.identity(v1.while_loop(lambda i, a: i < 3, body, [0, x])[1], name="y")
        if not was_v2:
            v1.disable_control_flow_v2()
        xs = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
        with v1.Session(graph=graph) as sess:
            ys = sess.run(y, {x: xs})
    graph_def = graph.as_graph_def()
    rename_functions(graph_def, {f.signature.name: re.sub(r"_\d+$", "", f.signature.name)
                                 for f in graph_def.library.function})
    return graph_def, {"x": xs, "y": ys}


def test_a_changed_body_renames_itself_and_its_callers_only():
    """Content naming is callee first: a constant changed in the ``tf.cond``'s false branch renames that
    branch and the loop body calling it; the loop condition and the true branch keep their names."""
    one, _ = _frozen(0.5)
    edited = type(one)()
    edited.CopyFrom(one)
    branch = next(f for f in edited.library.function if f.signature.name.startswith("cond_false"))
    const = next(n for n in branch.node_def if n.op == "Const" and n.attr["dtype"].type == tf().float32.as_datatype_enum)
    const.attr["value"].tensor.CopyFrom(tf().make_tensor_proto(np.float32(7.0)))
    before, after = ({f.signature.name.rsplit("_", 1)[0]: f.signature.name for f in content_named(g).library.function}
                     for g in (one, edited))
    assert before.keys() == after.keys() == {"while_cond", "while_body", "cond_true", "cond_false"}
    assert {k for k in before if before[k] != after[k]} == {"cond_false", "while_body"}
    assert content_named(one) == content_named(one)  # the same graph, the same names: no process state
    named = content_named(edited)
    calls = {n.attr[k].func.name for f in named.library.function for n in f.node_def for k in n.attr
             if n.attr[k].HasField("func")}
    assert calls and calls <= set(after.values())  # every call follows its callee's new name


def test_graphs_whose_functions_share_names_convert_one_after_the_other(tmp_path):
    """Two frozen ``.pb`` of one architecture (other constants in the loop body, the same function names),
    converted in one process to the targets that import the graph into TensorFlow's process-wide function
    context (TFLite's converter, the serving SavedModel): the second used to fail with TensorFlow's
    "Attempting to add a duplicate function ... where the previous and current definitions differ"."""
    from ai_edge_litert.interpreter import Interpreter

    for i, shift in enumerate((0.5, -0.25)):
        graph_def, io = _frozen(shift)
        path, out = tmp_path / f"model{i}.pb", tmp_path / f"out{i}"
        path.write_bytes(graph_def.SerializeToString())
        result = tfopt.convert(str(path), str(out), to=["tflite", "savedmodel"], quantize=["fp32"], report_runs=1)
        built = {a.format: str(out / a.path) for a in result.artifacts}
        assert set(built) == {"tflite", "savedmodel"} and not result.errors
        runner = Interpreter(model_path=built["tflite"]).get_signature_runner()
        np.testing.assert_allclose(next(iter(runner(x=io["x"]).values())), io["y"], atol=ATOL)
        served = tf().saved_model.load(built["savedmodel"]).signatures["serving_default"]
        np.testing.assert_allclose(served(x=tf().constant(io["x"]))["y"].numpy(), io["y"], atol=ATOL)


def test_a_content_named_graph_computes_the_same():
    graph_def, io = _frozen(0.5)
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(content_named(graph_def), name="")
        with t.compat.v1.Session(graph=graph) as sess:
            np.testing.assert_array_equal(sess.run("y:0", {"x:0": io["x"]}), io["y"])
