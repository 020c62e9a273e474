from __future__ import annotations

import numpy as np

from tests.helpers import graph_model, ops
from tfopt.passes.base import run_passes
from tfopt.passes.fold_constants import FoldConstants
from tfopt.passes.prune_dead import PruneDead
from tfopt.runtimes.tensorflow import GraphRunner


def _run(model):
    return run_passes(model, [FoldConstants(), PruneDead()])


def test_folds_constant_subgraph_and_static_shapes():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2, 3], name="x")
        scale = t.sqrt(t.constant([4.0, 9.0, 16.0])) * 2.0 + 1.0  # Sqrt, Mul, AddV2 of constants
        shape = t.raw_ops.Shape(input=x)  # t.shape would already be a Const for a static shape
        flat = t.reshape(x * scale, t.stack([shape[0] * shape[1]]))  # static shape arithmetic
        t.identity(flat, name="out")
    model = graph_model(build, {"x": (2, 3)}, ["out"])
    before = ops(model)
    assert before["Shape"] == 1 and before["Sqrt"] == 1
    folded, stats = _run(model)
    after = ops(folded)
    assert not {"Sqrt", "Shape", "StridedSlice", "Pack", "AddV2"} & set(after), after
    assert after["Mul"] == 1 and after["Reshape"] == 1  # x * const and the reshape remain
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(GraphRunner(folded)({"x": x})["out"], GraphRunner(model)({"x": x})["out"], rtol=1e-6)
    assert stats[0].removed["Sqrt"] == 1


def test_does_not_fold_random_dynamic_shapes_or_guarded_branches():
    def build(t):
        from tfopt.demos.examples import control_flow_v1

        x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
        flag = t.compat.v1.placeholder(t.bool, [], name="flag")
        noise = t.random.uniform([3])                        # stateful: never folded
        n = t.raw_ops.Shape(input=x)[0]                      # dynamic batch: not a constant
        with control_flow_v1():
            y = t.compat.v1.cond(flag, lambda: x * (t.constant(2.0) + 1.0), lambda: x)  # branch consts guarded
        t.identity(y + noise + t.cast(n, t.float32), name="out")
    model = graph_model(build, {"x": (None, 3)}, ["out"])
    folded, _ = _run(model.replace(inputs=[*model.inputs,
                                           model.inputs[0].__class__("flag", "flag:0", "bool", ())]))
    after = ops(folded)
    assert after["RandomUniform"] == 1 and after["Shape"] == 1
    assert after.get("AddV2", 0) >= 3  # the branch's 2.0 + 1.0 kept under its pivot's control edge


def test_does_not_fold_a_library_function_called_by_name():
    def build(t):
        from tensorflow.python.framework import function

        @function.Defun(t.float32)
        def double(v):
            return v * 2.0

        x = t.compat.v1.placeholder(t.float32, [3], name="x")
        t.identity(x + double(t.constant([1.0, 2.0, 3.0])), name="out")
    model = graph_model(build, {"x": (3,)}, ["out"])
    calls = [n.name for n in model.graph_def.node if n.op.startswith("double")]
    assert len(calls) == 1
    folded, _ = _run(model)
    assert calls[0] in {n.name for n in folded.graph_def.node if n.op.startswith("double")}
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_allclose(GraphRunner(folded)({"x": x})["out"], x + np.array([2.0, 4.0, 6.0]))
