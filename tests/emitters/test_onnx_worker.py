"""One tf2onnx child process serves every ONNX conversion of a run: its files are byte-identical to
a child per conversion whatever ran before, a failing job is a typed error and the next job still
converts, and ``tfopt convert`` starts one child for every ONNX artifact."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import onnx
import pytest

from tests.helpers import graph_model
from tfopt.emitters.onnx import convert_ahead, convert_to_onnx
from tfopt.emitters.onnx_worker import convert_in_child, shared_child, submit_in_child
from tfopt.errors import ConversionError


def _residual(channels: int, blocks: int):
    """NHWC convs with two-way branches: tf2onnx's transpose optimizer walks sets of these nodes."""

    def build(tf):
        rng = np.random.default_rng(channels * 10 + blocks)
        x = tf.compat.v1.placeholder(tf.float32, (1, 8, 8, channels), name="x")
        for i in range(blocks):
            w = tf.constant(rng.standard_normal((3, 3, channels, channels)).astype(np.float32) * 0.2)
            y = tf.nn.conv2d(x, w, 1, "SAME")
            x = tf.nn.relu(y) + tf.sigmoid(y) * x
            x = tf.identity(x, name=f"block{i}")
        tf.identity(tf.reduce_mean(x, axis=[1, 2]), name="y")

    return graph_model(build, {"x": (1, 8, 8, channels)}, ["y"])


MODELS = {f"c{c}_b{b}": (c, b) for c, b in ((2, 1), (3, 3), (5, 2))}


def _bytes(model) -> bytes:
    proto, _ = convert_in_child(model.graph_def, [s.tensor for s in model.inputs], [s.tensor for s in model.outputs],
                                17)
    return bytes(proto.SerializeToString(deterministic=True))


@pytest.fixture(scope="module")
def models():
    return {name: _residual(*shape) for name, shape in MODELS.items()}


@pytest.fixture(scope="module")
def alone(models):
    """Each graph in a child of its own (outside a shared scope)."""
    return {name: _bytes(model) for name, model in models.items()}


# Both orders in the slow lane (each starts a child importing TensorFlow). A synchronous job is a job
# sent ahead and collected at once (Tf2OnnxChild.convert is submit + collect), and the child runs each
# the same way: test_jobs_sent_ahead_write_what_synchronous_jobs_write keeps the forward order in the fast
# lane, and test_a_forked_child_writes_what_a_new_child_writes[seed-1-spawns] runs these three graphs
# as synchronous jobs in one shared child started once (spawned: its process's hash seed is not the
# child's, as pytest's is not) and compares them with a child per job.
@pytest.mark.slow
@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_a_shared_child_writes_what_a_child_per_job_writes(models, alone, order):
    names = list(models) if order == "forward" else list(models)[::-1]
    with shared_child() as child:
        got = {name: _bytes(models[name]) for name in names}
        assert (child.started, child.converted) == (1, len(names))
    assert got == alone


def _spec(model):
    return model.graph_def, [s.tensor for s in model.inputs], [s.tensor for s in model.outputs], 17


# The reverse order in the slow lane (a child importing TensorFlow): in the forward order two of the three
# graphs already follow others in the child, and the seed tests below run them in one child too.
@pytest.mark.parametrize("order", ["forward", pytest.param("reverse", marks=pytest.mark.slow)])
def test_jobs_sent_ahead_write_what_synchronous_jobs_write(models, alone, order):
    """Each job sent ahead (queued in the child: sending the next waits for none) and collected
    later gives the file a synchronous job gives, whatever ran before it in the child."""
    names = list(models) if order == "forward" else list(models)[::-1]
    assert not submit_in_child(*_spec(models[names[0]]))  # outside a shared scope: nothing is sent
    with shared_child() as child:
        for name in names:
            assert submit_in_child(*_spec(models[name]))
            assert child.converted == 0  # every job sent is still queued or converting
        got = {name: _bytes(models[name]) for name in names}  # collected, or read back: none converted again
        assert (child.started, child.converted, len(child.submitted)) == (1, len(names), len(names))
    assert got == alone


# One job queued behind in the slow lane: two behind (fast) is the same class, the jobs behind the
# failed one sent again in their order to one new child (two children, one importing TensorFlow).
@pytest.mark.parametrize("queued", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_jobs_queued_behind_a_child_that_died_run_in_a_new_child(models, alone, queued):
    """The child dies with jobs queued: the one it was converting fails with its exit code, as a
    synchronous job would; the jobs behind it are sent again, in order, to a new child."""
    names = list(models)[:queued + 1]
    with shared_child() as child:
        for name in names:
            assert submit_in_child(*_spec(models[name]))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)  # while it imports TensorFlow: no job answered yet
        with pytest.raises(RuntimeError, match=f"exited with {-signal.SIGKILL}"):
            child.convert(*_spec(models[names[0]]))
        assert {name: _bytes(models[name]) for name in names[1:]} == {name: alone[name] for name in names[1:]}
        assert (child.started, child.converted, len(child.submitted)) == (2, queued + 1, queued + 1)


def test_a_failing_job_sent_ahead_fails_where_it_is_collected_as_a_synchronous_one_does(models, alone, monkeypatch):
    """A failing job is a typed error, synchronous or sent ahead, told once; the child outlives it and
    converts the next job; a repeated job is read back, not converted again. Each graph is lowered for
    tf2onnx once in the scope (the job sent ahead and the conversion collecting it share it), and not at
    all by a job sent ahead outside a scope, where nothing is sent."""
    from tfopt.emitters import onnx as onnx_emitter

    lowered = []
    made = onnx_emitter._made_for_tf2onnx
    monkeypatch.setattr(onnx_emitter, "_made_for_tf2onnx", lambda m: lowered.append(m.outputs[0].tensor) or made(m))
    name, model = next(iter(models.items()))
    broken = model.replace(outputs=[dataclasses.replace(model.outputs[0], tensor="no_such_node:0")])
    assert not convert_ahead(model, 17) and not lowered
    with shared_child() as child:
        with pytest.raises(ConversionError, match=r"tf2onnx \(opset 17\) failed") as synchronous:
            convert_to_onnx(broken, 17)
        assert convert_ahead(broken, 17)  # sent again: a failure is told once, not remembered
        assert convert_ahead(model, 17)  # queued behind the broken job (its failure kept for its stage)
        with pytest.raises(ConversionError) as ahead:
            convert_to_onnx(broken, 17)
        assert (str(ahead.value), ahead.value.exit_code) == (str(synchronous.value), synchronous.value.exit_code)
        first, second = _bytes(model), _bytes(model)  # collected, then read back
        assert (child.started, child.converted) == (1, 3)  # the failures did not take the child down
        assert lowered == ["no_such_node:0", model.outputs[0].tensor]
    assert first == second == alone[name]


def test_convert_starts_one_child_for_every_onnx_artifact(tmp_path):
    from tfopt.conversion.convert import convert
    from tfopt.demos.examples import keras_cnn

    path = str(tmp_path / "model.keras")
    keras_cnn().save(path)
    with shared_child() as child:  # convert() joins the caller's scope
        result = convert(path, str(tmp_path / "out"), to=["onnx"], quantize=["fp32", "fp16"])
        assert (child.started, child.converted) == (1, 1)  # fp16 starts from the fp32 conversion
    assert sorted(a.precision for a in result.artifacts) == ["fp16", "fp32"]
    bounds = {"fp32": 1e-4, "fp16": 1e-2}  # verified against TensorFlow: the errors convert() measured
    for artifact in result.artifacts:
        assert artifact.max_abs_err is not None and artifact.max_abs_err <= bounds[artifact.precision]
    assert all(onnx.load(str(tmp_path / "out" / a.path)).graph.node for a in result.artifacts)


FORKED = """
import hashlib, json, os, sys
from tests.emitters.test_onnx_worker import MODELS, _bytes, _residual
from tfopt.emitters.onnx_worker import shared_child

with shared_child() as child:
    child.start(fork=True)  # nothing of TensorFlow has run in this process yet
    with open(f"/proc/{child.pid}/cmdline", "rb") as f:
        same_program = f.read() == open("/proc/self/cmdline", "rb").read()
    files = {name: hashlib.sha256(_bytes(_residual(*shape))).hexdigest() for name, shape in MODELS.items()}
    print(json.dumps({"files": files, "started": child.started, "converted": child.converted, "forked": child.forked,
                      "fork": same_program}))
"""


@pytest.mark.parametrize("seed", ["0", "1"], ids=["seed-0-forks", "seed-1-spawns"])
def test_a_forked_child_writes_what_a_new_child_writes(alone, seed):
    """In a process whose hash seed is the child's (the tfopt command's), the child is a fork of it
    after TensorFlow's import (one import for both), and writes the same bytes as a new child;
    with another seed it is a new process, as before."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", FORKED], env=env, cwd=root, capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    forks = seed == "0"
    assert (got["started"], got["converted"], got["forked"], got["fork"]) == (1, len(MODELS), int(forks), forks)
    assert got["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in alone.items()}
