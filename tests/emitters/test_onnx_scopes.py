"""Post-conversion ONNX rewrites in nested graphs: a body or branch reads names of the graphs around
it. Canonical naming keeps those reads pointing at the renamed tensors (at every nesting depth), the
rewrites fire inside a branch on outer initializers, and a node read only from inside a branch is a
reader. Built as tiny ONNX graphs; every result passes ONNX's full checker and computes the same
numbers in ONNX Runtime."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.emitters.onnx_graphs import rewritten
from tfopt.emitters.onnx_channel_affine import fuse_channel_affine
from tfopt.emitters.onnx_full_rank import full_rank_constants
from tfopt.emitters.onnx_names import canonical_names

C = 4
RNG = np.random.default_rng(0)


def _model(nodes, inits, outputs=("y",)):
    graph = helper.make_graph(list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 3, 5]),
                                                  helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, C, 3, 5]) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _branch(name, nodes, out):
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, C, 3, 5])])


def _nested(depth: int, reads: str, counter: int):
    """An If ``depth`` levels deep whose innermost then-branch reads the outer ``reads``."""
    if depth == 0:
        return [helper.make_node("Relu", [reads], [f"Relu__{counter}:0"], name=f"Relu__{counter}")], f"Relu__{counter}:0"
    inner, out = _nested(depth - 1, reads, counter + 7)
    then = _branch(f"then__{counter + 1}", inner, out)
    other = _branch(f"else__{counter + 2}", [helper.make_node("Neg", [reads], [f"Neg__{counter + 3}:0"],
                                                              name=f"Neg__{counter + 3}")], f"Neg__{counter + 3}:0")
    node = helper.make_node("If", ["c"], [f"If__{counter + 4}:0"], name=f"If__{counter + 4}", then_branch=then,
                            else_branch=other)
    return [node], f"If__{counter + 4}:0"


def _run(model, x, c):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x, "c": np.array(c)})[0]


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("first", [5, 31])
def test_canonical_names_keep_outer_reads_at_every_depth(depth, first):
    outer = f"Shape__{first}:0"  # a tensor tf2onnx named, read only inside the branches
    nested, out = _nested(depth, outer, first + 1)
    model = _model([helper.make_node("Sigmoid", ["x"], [outer], name=f"Shape__{first}"), *nested,
                    helper.make_node("Identity", [out], ["y"])], {})
    onnx.checker.check_model(model, full_check=True)
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    canonical_names(renamed.graph)
    onnx.checker.check_model(renamed, full_check=True)
    text = str(renamed.graph)
    assert not re.search(r'"[^"]*__\d+(:\d+)?"', text), "a generated name kept its counter"
    x = RNG.standard_normal((1, C, 3, 5)).astype(np.float32)
    for c in (True, False):
        np.testing.assert_array_equal(_run(renamed, x, c), _run(model, x, c))


def _affine_in_branch(*, mul_read_by_other_branch: bool):
    """Mul(x, s) + t inside the then-branch, s and t initializers of the main graph."""
    then = _branch("then", [helper.make_node("Mul", ["x", "s"], ["m"], name="mul"),
                            helper.make_node("Add", ["m", "t"], ["bn"], name="bn/add")], "bn")
    other_nodes = [helper.make_node("Neg", ["x"], ["n"])]
    other = _branch("else", other_nodes, "n")
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    if mul_read_by_other_branch:  # Mul + Add in the main graph, and a branch reads the Mul too
        then = _branch("then", [helper.make_node("Relu", ["bn"], ["r"])], "r")
        other = _branch("else", [helper.make_node("Neg", ["m"], ["n"])], "n")
        nodes = [helper.make_node("Mul", ["x", "s"], ["m"], name="mul"),
                 helper.make_node("Add", ["m", "t"], ["bn"], name="bn/add"),
                 helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    return _model(nodes, {"s": RNG.uniform(0.5, 2, (C, 1, 1)), "t": RNG.standard_normal((C, 1, 1)),
                          "k": RNG.standard_normal((1,))})


def _ops(graph):
    counts = Counter(n.op_type for n in graph.node)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                counts += _ops(attr.g)
    return counts


@pytest.mark.parametrize("rewrite,expected", [(fuse_channel_affine, "BatchNormalization"),
                                              (full_rank_constants, None)])
def test_rewrites_fire_inside_a_branch_on_outer_initializers(rewrite, expected):
    model = _affine_in_branch(mul_read_by_other_branch=False)
    new, count = rewritten(rewrite, model)
    assert count >= 1
    onnx.checker.check_model(new, full_check=True)
    if expected:
        assert _ops(new.graph)[expected] == 1 and _ops(new.graph)["Mul"] == 0
    x = RNG.standard_normal((1, C, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(new, x, True), _run(model, x, True), rtol=0, atol=1e-6)


def test_a_mul_read_inside_a_branch_is_not_fused_away():
    model = _affine_in_branch(mul_read_by_other_branch=True)
    new, count = rewritten(fuse_channel_affine, model)
    assert count == 0 and _ops(new.graph)["Mul"] == 1
    onnx.checker.check_model(new, full_check=True)
    x = RNG.standard_normal((1, C, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(_run(new, x, False), _run(model, x, False))
