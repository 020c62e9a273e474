"""An op this TensorFlow does not have (a custom op of a library the writer imported) stops every load path with
one typed error, :class:`~tfopt.errors.UnregisteredOpError`, whose message names the file, the node that uses the
op, the op and the fix (``--custom-objects``), whether tfopt's check of the loaded graph finds it or TensorFlow
refuses it first (a TF2 SavedModel, read through its MetaGraph). Generated: a tiny graph whose ``Sqrt`` is renamed,
in the file the writer left, to an op no TensorFlow has, in the main graph or in a function body, in each format."""

from __future__ import annotations

import os
import re

import pytest

import tfopt
from tfopt.errors import UnregisteredOpError

OP = "TfoptWriterOnlyOp"


def _rename(graph_def, where: str) -> str:
    """``Sqrt`` -> :data:`OP` in ``graph_def``'s main graph or its functions; the renamed node's name."""
    nodes = graph_def.node if where == "main" else [n for f in graph_def.library.function for n in f.node_def]
    (node,) = [n for n in nodes if n.op == "Sqrt"]
    node.op = OP
    return node.name


def _v1_graph(tf, variable: bool):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant([[0.5, 1.0, 2.0]])) if variable else 1.5
        tf.multiply(tf.sqrt(tf.abs(x) * w, name="root"), 2.0, name="y")
    return graph


def _edit(path: str, proto, rename) -> str:
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    node = rename(proto)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return node


def _pb(tf, directory: str, where: str) -> tuple[str, str]:
    if where == "main":
        graph_def = _v1_graph(tf, variable=False).as_graph_def()
    else:  # a call of a function whose body uses the op
        inner = tf.function(lambda x: tf.sqrt(tf.abs(x)))
        graph_def = tf.function(lambda x: tf.identity(inner(x) * 2.0, name="y")).get_concrete_function(
            tf.TensorSpec([None, 3], tf.float32, name="x")).graph.as_graph_def()
    node = _rename(graph_def, where)
    with open(os.path.join(directory, "model.pb"), "wb") as f:
        f.write(graph_def.SerializeToString())
    return os.path.join(directory, "model.pb"), node


def _tf1_checkpoint(tf, directory: str, where: str) -> tuple[str, str]:
    from tensorflow.core.protobuf import meta_graph_pb2

    graph = _v1_graph(tf, variable=True)
    with graph.as_default(), tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        prefix = tf.compat.v1.train.Saver().save(session, os.path.join(directory, "model"))
    return prefix, _edit(prefix + ".meta", meta_graph_pb2.MetaGraphDef(), lambda p: _rename(p.graph_def, where))


def _tf1_savedmodel(tf, directory: str, where: str) -> tuple[str, str]:
    from tensorflow.core.protobuf import saved_model_pb2

    path, graph = os.path.join(directory, "saved"), _v1_graph(tf, variable=True)
    with graph.as_default(), tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        v1 = tf.compat.v1.saved_model
        tensor = graph.get_tensor_by_name
        signature = v1.predict_signature_def({"x": tensor("x:0")}, {"y": tensor("y:0")})
        builder = v1.Builder(path)
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()
    return path, _edit(os.path.join(path, "saved_model.pb"), saved_model_pb2.SavedModel(),
                       lambda p: _rename(p.meta_graphs[0].graph_def, where))


def _tf2_savedmodel(tf, directory: str, where: str) -> tuple[str, str]:
    from tensorflow.core.protobuf import saved_model_pb2

    module, path = tf.Module(), os.path.join(directory, "saved")
    module.w = tf.Variable([[0.5, 1.0, 2.0]])
    module.serve = tf.function(lambda x: {"y": tf.sqrt(tf.abs(x) * module.w) * 2.0},
                               input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path, _edit(os.path.join(path, "saved_model.pb"), saved_model_pb2.SavedModel(),
                       lambda p: _rename(p.meta_graphs[0].graph_def, where))


CASES = {  # format: (writer, where the op is, load options)
    "pb-main": (_pb, "main", {"outputs": ["y"]}),
    "pb-function": (_pb, "function", {"outputs": ["y"]}),
    "tf1-checkpoint": (_tf1_checkpoint, "main", {"outputs": ["y"]}),
    "tf1-savedmodel": (_tf1_savedmodel, "main", {}),
    "tf2-savedmodel": (_tf2_savedmodel, "function", {}),  # TensorFlow refuses it first, then its MetaGraph too
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_load_path_names_the_file_the_node_the_op_and_the_fix(tmp_path, case):
    import tensorflow as tf

    write, where, options = case
    path, node = write(tf, str(tmp_path), where)
    with pytest.raises(UnregisteredOpError) as caught:
        tfopt.load(path, **options)
    error = caught.value
    assert (error.op, error.node, error.exit_code) == (OP, node, 4)
    in_function = r" in function '[^']+'" if where == "function" else ""
    assert error.args[0].startswith(path), error.args[0]
    fix = (r"\. Install that library and name a module that imports it \(or calls tf\.load_op_library\) "
           r"with --custom-objects MODULE")
    assert re.search(rf": node '{re.escape(node)}'{in_function} uses op '{OP}', which this TensorFlow does not have "
                     rf"\(.*\){fix}", error.args[0]), error.args[0]
