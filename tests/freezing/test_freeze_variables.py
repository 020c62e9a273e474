"""Resource variables read inside TF1 while loops become constants (``tfopt.freezing.freeze_variables``).

A TF1 ``while_loop`` (``dynamic_rnn``) whose body reads resource variables gets each handle through
``Enter(T=resource)`` (twice for a nested loop); freezing must leave no variable and the same numbers,
in the frozen graph and in every target's artifact.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import loop_checkpoint, ops
from tfopt._tf import tf
from tfopt.demos.examples import control_flow_v1
from tfopt.graph import VARIABLE_OPS
from tfopt.runtimes.tensorflow import GraphRunner

TIME, FEATURES = 4, 3


def _build_checkpoint(directory: str, *, n_vars: int, units: int, nested: bool, seed: int) -> np.ndarray:
    """Save a TF1 checkpoint of ``y = loop over time of tanh(x_t W + h U [+ b])``, each weight a
    resource variable read in the loop body (the last one inside an inner loop when ``nested``), and
    return ``x`` and ``y`` computed by TensorFlow's own Session."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    rng = np.random.default_rng(seed)
    with graph.as_default(), control_flow_v1():
        x = v1.placeholder(t.float32, [None, TIME, FEATURES], name="x")
        shapes = [[FEATURES, units], [units, units], [units]][:n_vars]
        weights = [v1.get_variable(f"cell/w{i}", s, use_resource=True,
                                   initializer=v1.random_normal_initializer(stddev=0.5, seed=seed + i))
                   for i, s in enumerate(shapes)]

        def body(step, h):
            z = t.matmul(x[:, step], weights[0])
            if n_vars > 1:
                z += t.matmul(h, weights[1])
            if n_vars > 2 and nested:  # the bias added twice by an inner loop: the handle enters two frames
                z = v1.while_loop(lambda k, acc: k < 2, lambda k, acc: (k + 1, acc + weights[2]), [0, z])[1]
            elif n_vars > 2:
                z += weights[2]
            return step + 1, t.tanh(z)

        xs = rng.normal(size=[2, TIME, FEATURES]).astype(np.float32)
        y = loop_checkpoint(directory, x, lambda step, h: step < TIME, body, units, xs)
    np.savez(os.path.join(directory, "reference.npz"), x=xs, y=y)
    return y


CASES = {"1var-u5": (1, 5, False), "2vars-u4": (2, 4, False), "3vars-u6": (3, 6, False),
         "3vars-u3-nested": (3, 3, True)}


@pytest.mark.parametrize("case", list(CASES))
def test_resource_variables_read_in_a_while_loop_are_frozen(case, tmp_path):
    n_vars, units, nested = CASES[case]
    directory = str(tmp_path / "ckpt")
    _build_checkpoint(directory, n_vars=n_vars, units=units, nested=nested, seed=n_vars * 10 + units)
    model = tfopt.load(directory, outputs=["y"])
    assert ops(model)["VarHandleOp"] == n_vars and ops(model)["Enter"] >= n_vars  # handles enter the loop
    frozen, _ = tfopt.freeze(directory, outputs=["y"], atol=1e-6, rtol=1e-6)
    assert not VARIABLE_OPS & set(ops(frozen))
    assert "ReadVariableOp" not in ops(frozen)
    with np.load(os.path.join(directory, "reference.npz")) as ref:
        np.testing.assert_allclose(GraphRunner(frozen)({"x": ref["x"]})["y"], ref["y"], atol=1e-6, rtol=1e-6)


# tf2onnx's loop rewriter cannot lower a v1 while_loop nested in another: plain tf2onnx fails on the frozen
# graph as well ("Graph has cycles, node.name='while/while/Identity'"), so the nested case has no ONNX cell.
EVERY_TARGET = {"2vars-u4": ["onnx", "openvino", "tflite"], "3vars-u3-nested": ["openvino", "tflite"]}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EVERY_TARGET))
def test_a_loop_reading_resource_variables_converts_in_every_target(case, tmp_path):
    """The frozen loop reaches every target that can express it; each artifact gives TensorFlow's own
    numbers (1e-5)."""
    import importlib.util

    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    n_vars, units, nested = CASES[case]
    directory = str(tmp_path / "ckpt")
    _build_checkpoint(directory, n_vars=n_vars, units=units, nested=nested, seed=7)
    out = str(tmp_path / "out")
    result = tfopt.convert(directory, out, to=EVERY_TARGET[case], outputs=["y"], report_runs=1)
    assert not result.failed, result.failed
    assert sorted(a.format for a in result.artifacts) == EVERY_TARGET[case]
    frozen = manifest_model(out)
    with np.load(os.path.join(directory, "reference.npz")) as ref:
        for artifact in result.artifacts:
            # a TFLite file may fix the batch to 1 (emitters/tflite_batch.py): rows one at a time
            got = np.concatenate([runner_for(artifact.format, os.path.join(out, artifact.path), frozen)(
                {"x": ref["x"][i:i + 1]})["y"] for i in range(len(ref["x"]))])
            np.testing.assert_allclose(got, ref["y"], atol=1e-5, rtol=1e-5, err_msg=artifact.format)
