from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.freezing import freeze, freeze_passes
from tfopt.freezing.inline_cond import InlineCond
from tfopt.freezing.resolve_switch import ResolveSwitch
from tfopt.graph import TensorSpec
from tfopt.passes.base import run_passes
from tfopt.runtimes.tensorflow import GraphRunner


def _cond_graph(t):
    x = t.compat.v1.placeholder(t.float32, [4], name="x")
    training = t.compat.v1.placeholder(t.bool, [], name="is_training")
    y = t.compat.v1.cond(training, lambda: t.nn.dropout(x, rate=0.5), lambda: x * 3.0)
    z = t.compat.v1.cond(training, lambda: y - t.reduce_mean(y), lambda: y + 1.0)
    t.identity(z, name="out")


@pytest.mark.parametrize("v1", [True, False], ids=["switch-merge", "functional-if"])
def test_constant_flag_removes_control_flow(v1):
    model = graph_model(_cond_graph, {"x": (4,)}, ["out"], v1_control_flow=v1)
    before = ops(model)
    assert (before.get("Switch", 0) > 0) if v1 else (before.get("If", 0) + before.get("StatelessIf", 0) == 2)
    frozen, report = freeze(model, verify=False)
    after = ops(frozen)
    assert not set(after) & {"Switch", "Merge", "If", "StatelessIf", "RandomUniform"}
    assert after["Placeholder"] == 1  # x only: is_training was bound
    assert report.bindings == {"is_training": (False, "training flag")}
    pass_name = "resolve_switch" if v1 else "inline_cond"
    assert next(p for p in report.passes if p.name == pass_name).removed
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["out"], x * 3.0 + 1.0, rtol=1e-6)


def test_true_flag_takes_other_branch():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [4], name="x")
        flag = t.compat.v1.placeholder(t.bool, [], name="use_square")
        t.identity(t.compat.v1.cond(flag, lambda: x * x, lambda: -x), name="out")
    for v1 in (True, False):
        model = graph_model(build, {"x": (4,)}, ["out"], v1_control_flow=v1)
        frozen, _ = freeze(model, set_values={"use_square": "true"}, verify=False)
        assert not {n.op for n in frozen.graph_def.node} & {"Switch", "Merge", "If", "StatelessIf"}
        x = np.arange(4, dtype=np.float32)
        np.testing.assert_allclose(GraphRunner(frozen)({"x": x})["out"], x * x)


@pytest.mark.parametrize("v1", [True, False], ids=["switch-merge", "functional-if"])
def test_does_not_fire_on_a_real_input_predicate(v1):
    """A bool the user feeds (not a training flag) keeps its control flow."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [4], name="x")
        mode = t.compat.v1.placeholder(t.bool, [], name="mode")
        t.identity(t.compat.v1.cond(mode, lambda: x * 2.0, lambda: x), name="out")
    model = graph_model(build, {"x": (4,), "mode": ()}, ["out"], v1_control_flow=v1)
    model = model.replace(inputs=[model.inputs[0], TensorSpec("mode", "mode:0", "bool", ())])
    result, _ = run_passes(model, [ResolveSwitch(), InlineCond()])
    before, after = ops(model), ops(result)
    assert after == before
    frozen, _ = freeze(model, inputs={"x": None, "mode": None}, verify=False)
    assert {n.op for n in frozen.graph_def.node} & {"Switch", "Merge", "If", "StatelessIf"}


def test_pass_order_is_documented():
    names = [p.name for p in freeze_passes({})]
    assert names == ["bind_placeholders", "strip_training_ops", "remove_identity", "resolve_switch",
                     "inline_cond", "inline_calls", "remove_dropout", "freeze_variables", "prune_dead"]
    import tfopt.freezing as freezing_module
    for name in names:
        assert f"``{name}``" in freezing_module.__doc__
