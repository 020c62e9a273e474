"""Resource variables handed to a functional loop / branch / call become constants inside its functions
(``tfopt.external.resource_calls``, through ``tfopt.freezing.freeze_variables``).

A TF1-style graph built with control flow v2 (a TF1 checkpoint whose ``tf.while_loop`` is a ``While``
op) passes every weight its body or condition reads as a loop input of type ``resource``; the body reads
it with ``ReadVariableOp`` (``ResourceGather`` for an embedding), possibly through a nested loop or a
``tf.cond`` (``If``). Freezing must leave no variable, no resource read anywhere (the functions included)
and TensorFlow's own numbers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import loop_checkpoint, ops
from tfopt._tf import tf
from tfopt.graph import VARIABLE_OPS
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES = 3


def _build(directory: str, *, n_vars: int, units: int, steps: int, read_in: str, seed: int) -> dict:
    """A TF1 checkpoint of ``h <- tanh(x_t W0 [+ h W1])`` over ``steps`` by a v2 ``While``; ``read_in``
    says where else a weight is read: ``body`` only, the loop ``cond``, a ``nested`` inner loop, a ``branch``
    of a data-dependent ``tf.cond``, or an embedding ``gather``. Returns ``x`` and TensorFlow's ``y``."""
    t = tf()
    v1 = t.compat.v1
    assert v1.control_flow_v2_enabled()  # TF2's default: tf.while_loop builds a functional While
    graph = t.Graph()
    rng = np.random.default_rng(seed)
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, steps, FEATURES], name="x")
        init = v1.random_normal_initializer(stddev=0.5, seed=seed)
        shapes = [[FEATURES, units], [units, units]][:n_vars]
        weights = [v1.get_variable(f"w{i}", s, use_resource=True, initializer=init) for i, s in enumerate(shapes)]
        extra = v1.get_variable("scale", [units], use_resource=True, initializer=init)
        table = v1.get_variable("table", [steps, units], use_resource=True, initializer=init)

        def body(step, h):
            z = t.matmul(x[:, step], weights[0])
            if n_vars > 1:
                z += t.matmul(h, weights[1])
            if read_in == "nested":  # the handle enters a loop inside the loop
                z = v1.while_loop(lambda k, acc: k < 2, lambda k, acc: (k + 1, acc + extra), [0, z])[1]
            elif read_in == "branch":  # a data-dependent cond: an If whose branch reads the handle
                z = t.cond(t.reduce_sum(z) > 0, lambda: z * extra, lambda: z - extra)
            elif read_in == "gather":
                z += t.gather(table, step)
            return step + 1, t.tanh(z)

        def cond(step, h):
            if read_in == "cond":  # the loop's condition reads a variable too
                return t.logical_and(step < steps, t.reduce_max(t.abs(h)) < 10.0 + t.reduce_sum(extra * 0.0))
            return step < steps

        xs = rng.normal(size=[2, steps, FEATURES]).astype(np.float32)
        y = loop_checkpoint(directory, x, cond, body, units, xs)
    return {"x": xs, "y": y}


def _resource_reads(graph_def) -> list[str]:
    return [n.name for f in graph_def.library.function for n in f.node_def
            if n.op in ("ReadVariableOp", "ResourceGather")]


CASES = {"body-1var-u4": (1, 4, 3, "body"), "body-2vars-u5": (2, 5, 4, "body"), "cond-2vars-u3": (2, 3, 5, "cond"),
         "cond-1var-u6": (1, 6, 2, "cond"), "nested-2vars-u4": (2, 4, 3, "nested"),
         "branch-1var-u3": (1, 3, 4, "branch"), "gather-2vars-u4": (2, 4, 3, "gather")}


@pytest.mark.parametrize("case", list(CASES))
def test_variables_read_in_loop_functions_are_frozen(case, tmp_path):
    n_vars, units, steps, read_in = CASES[case]
    directory = str(tmp_path / "ckpt")
    ref = _build(directory, n_vars=n_vars, units=units, steps=steps, read_in=read_in, seed=units * 7 + steps)
    model = tfopt.load(directory, outputs=["y"])
    assert "While" in ops(model) and _resource_reads(model.graph_def)  # the weights are read inside the loop
    frozen, _ = tfopt.freeze(directory, outputs=["y"], atol=1e-6, rtol=1e-6)
    assert not VARIABLE_OPS & set(ops(frozen))
    assert "ReadVariableOp" not in ops(frozen) and not _resource_reads(frozen.graph_def)
    np.testing.assert_allclose(GraphRunner(frozen)({"x": ref["x"]})["y"], ref["y"], atol=1e-6, rtol=1e-6)


def test_a_frozen_loop_over_variables_converts_to_openvino(tmp_path):
    """The frozen While reaches a runtime with TensorFlow's numbers (1e-5)."""
    import importlib.util

    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    if importlib.util.find_spec("openvino") is None:
        pytest.skip("the openvino extra is needed")
    directory = str(tmp_path / "ckpt")
    ref = _build(directory, n_vars=2, units=4, steps=3, read_in="nested", seed=3)
    out = str(tmp_path / "out")
    result = tfopt.convert(directory, out, to=["openvino"], outputs=["y"], report_runs=1)
    assert [a.format for a in result.artifacts] == ["openvino"], result.failed
    got = runner_for("openvino", os.path.join(out, result.artifacts[0].path), manifest_model(out))({"x": ref["x"]})
    np.testing.assert_allclose(got["y"], ref["y"], atol=1e-5, rtol=1e-5)
