"""A TF while-loop converted to every runtime that cannot be interrupted (TFLite ``WHILE``, ONNX ``Loop``,
OpenVINO ``Loop``): each target's ``loops`` role finds the loop, a bounded run on inputs the loop never ends on
is stopped at the bound with a :class:`~tfopt.errors.VerificationTimeoutError` naming the runtime, and on
inputs it ends on the child process answers as TensorFlow does (issue 24)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import tfopt
from tfopt.errors import VerificationTimeoutError
from tfopt.targets import TABLE

LOOPING = [t for t in ("tflite", "onnx", "openvino") if TABLE[t].available()]
BOUND = 1.5  # seconds


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``y = (steps while every |x| > 0) + sum(x)``, unverified (the loop never ends on made-up inputs)."""
    from tests.helpers import saved_function
    from tfopt._tf import tf

    t = tf()

    def serve(x):
        count, _ = t.while_loop(lambda i, v: t.reduce_min(t.abs(v)) > 0.0, lambda i, v: (i + 1.0, v),
                                [t.constant(0.0), x])
        return {"y": count + t.reduce_sum(x)}

    root = tmp_path_factory.mktemp("loop")
    path = saved_function(root / "saved", serve, [t.TensorSpec([None, 3], t.float32, name="x")])
    out = str(root / "out")
    result = tfopt.convert(path, out, to=LOOPING, quantize=["fp32"], verify=False)
    return out, {a.format: os.path.join(out, a.path) for a in result.artifacts}


@pytest.mark.parametrize("target", LOOPING)
def test_a_converted_while_loop_is_found_stopped_at_the_bound_and_answers_where_it_ends(converted, target):
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for
    from tfopt.runtimes.child import ChildRunner

    out, paths = converted
    assert TABLE[target].call("loops", paths[target])
    model = manifest_model(out)
    runner = runner_for(target, paths[target], model, timeout=BOUND)
    assert isinstance(runner, ChildRunner)
    x = np.array([[0.0, 1.0, 2.0]], np.float32)  # a zero: the loop ends at once
    np.testing.assert_allclose(runner({"x": x})["y"], 3.0, atol=1e-6)
    start = time.monotonic()
    with pytest.raises(VerificationTimeoutError, match=TABLE[target].runtime_name):
        runner({"x": np.ones((1, 3), np.float32)})  # never ends
    assert time.monotonic() - start < BOUND + 10.0
    runner.close()


def test_a_graph_without_a_loop_is_found_loop_free(tmp_path):
    from tfopt._tf import tf

    t = tf()

    class M(t.Module):
        @t.function(input_signature=[t.TensorSpec([None, 3], t.float32, name="x")])
        def serve(self, x):
            return {"y": t.nn.relu(x) * 2.0}

    m = M()
    t.saved_model.save(m, str(tmp_path / "saved"), signatures=m.serve.get_concrete_function())
    result = tfopt.convert(str(tmp_path / "saved"), str(tmp_path / "out"), to=LOOPING, quantize=["fp32"])
    for a in result.artifacts:
        assert not TABLE[a.format].call("loops", os.path.join(str(tmp_path / "out"), a.path)), a.format
