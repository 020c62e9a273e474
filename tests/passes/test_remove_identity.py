from __future__ import annotations

import numpy as np

from tests.helpers import graph_model, ops
from tfopt.passes.base import run_passes
from tfopt.passes.remove_identity import RemoveIdentity
from tfopt.runtimes.tensorflow import GraphRunner


def _chain(t):
    x = t.compat.v1.placeholder(t.float32, [2, 3], name="x")
    a = t.identity(t.identity(x * 2.0))
    b = t.raw_ops.IdentityN(input=[a, x + 1.0])
    t.identity(t.nn.relu(b[0]) + b[1], name="out")


def test_fires_and_keeps_values():
    model = graph_model(_chain, {"x": (2, 3)}, ["out"])
    before = ops(model)
    assert before["Identity"] == 3 and before["IdentityN"] == 1
    result = RemoveIdentity().run(model)
    after = ops(result.model)
    assert result.changed
    assert "Identity" not in after and "IdentityN" not in after
    assert "out" in {n.name for n in result.model.graph_def.node}  # the producer took the output's name
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result.model)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)


def test_keeps_outputs_inputs_and_switch_pivots():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2], name="x")
        flag = t.compat.v1.placeholder(t.bool, [], name="flag")
        y = t.compat.v1.cond(flag, lambda: x * 2.0, lambda: x - 1.0)
        t.identity(y, name="out")
    model = graph_model(build, {"x": (2,)}, ["out"], v1_control_flow=True)
    pivots = [n.name for n in model.graph_def.node if n.op == "Identity" and n.name.endswith(("switch_t", "switch_f"))]
    assert len(pivots) == 2
    result, _ = run_passes(model, [RemoveIdentity()])
    names = {n.name for n in result.graph_def.node}
    assert set(pivots) <= names and "out" in names  # Identity after a Switch carries deadness


def test_no_change_without_identities():
    model = graph_model(lambda t: t.nn.relu(t.compat.v1.placeholder(t.float32, [2], name="x"), name="out"),
                        {"x": (2,)}, ["out"])
    assert not RemoveIdentity().run(model).changed
