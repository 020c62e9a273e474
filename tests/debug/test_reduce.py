"""``tfopt debug reduce`` with real converters: a Digamma (no TFLite builtin, no OpenVINO rule) buried in
a conv net reduces to that op and its repro.py reproduces the failure without tfopt; a conv whose one
outlier weight (1e5) overflows fp16 (max 65504) reduces to that conv."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import graph_model, graph_pb
from tfopt.cli import main
from tfopt.debug.check import Check
from tfopt.debug.reduce import reduce
from tfopt.debug.repro import repro_script, write_repro
from tfopt.debug.subgraph import Cutter
from tfopt.errors import OptionError
from tfopt.runtimes.tensorflow import GraphRunner

SHAPE = (1, 16, 16, 3)


def conv_net(tf, *, odd_op: bool = False, outlier: bool = False) -> None:
    """Five conv/bias/relu blocks, mean pool and a matmul; the odd op or the outlier sits in block 2."""
    rng = np.random.RandomState(0)
    x = tf.compat.v1.placeholder(tf.float32, SHAPE, name="x")
    y = x
    for i in range(5):
        w = (rng.randn(3, 3, int(y.shape[-1]), 8) * 0.3).astype(np.float32)
        if outlier and i == 2:
            w[1, 1, 0, 0] = 1e5  # fp16 has no 1e5: TFLite's fp16 weights clamp it to 65504
        y = tf.nn.conv2d(y, tf.constant(w), 1, "SAME", name=f"conv{i}")
        y = tf.nn.relu(tf.nn.bias_add(y, tf.constant(rng.randn(8).astype(np.float32) * 0.1), name=f"bias{i}"),
                       name=f"relu{i}")
        if odd_op and i == 2:
            y = tf.math.digamma(y + 1.0, name="odd")
    y = tf.reduce_mean(y, axis=[1, 2], name="pool")
    tf.identity(tf.matmul(y, tf.constant(rng.randn(8, 4).astype(np.float32))), name="out")


FEEDS = {"x": np.random.RandomState(2).rand(*SHAPE).astype(np.float32)}


@pytest.fixture(scope="module")
def digamma_net():
    return graph_model(lambda tf: conv_net(tf, odd_op=True), {"x": SHAPE}, ["out"])


@pytest.fixture(scope="module")
def outlier_net():
    return graph_model(lambda tf: conv_net(tf, outlier=True), {"x": SHAPE}, ["out"])


def test_a_cut_is_fed_and_checked_with_the_full_graphs_values(digamma_net):
    cutter = Cutter(digamma_net, FEEDS)
    try:
        cut = cutter.cut(["conv3", "bias3", "relu3"])
        assert [s.name for s in cut.model.inputs] == ["odd"]  # the cut tensor's producer names its placeholder
        assert [s.tensor for s in cut.model.outputs] == ["relu3:0"]
        got = GraphRunner(cut.model)(cut.feeds)
        full = cutter.values.get(["relu3:0"])["relu3:0"]
        np.testing.assert_allclose(got["relu3"], full, rtol=1e-6, atol=1e-6)  # same ops, same inputs
        np.testing.assert_array_equal(cut.expected["relu3"], full)
    finally:
        cutter.close()


def test_an_unconvertible_op_reduces_to_itself_and_repro_py_reproduces_it(digamma_net, tmp_path):
    result = reduce(digamma_net, FEEDS, "tflite", check=Check.parse("fails", "fp32"))
    print(f"tflite fails: {result.ops_before} -> {len(result.cut.kept)} ops, {result.conversions} conversions, "
          f"{result.seconds:.1f} s")
    assert result.complete and len(result.cut.kept) <= 3 and "odd" in result.cut.kept
    assert result.outcome.signature == result.reference.signature  # fails in the same way
    assert "Digamma" in result.outcome.message
    assert result.conversions <= 2 + 2 * int(np.ceil(np.log2(result.ops_before))) + len(result.cut.kept) ** 2
    out = str(tmp_path / "out")
    write_repro(result, out, "tflite", "fp32", Check("fails"))
    assert sorted(os.listdir(out)) == ["converter_call.txt", "inputs.npz", "reduce.json", "reduced.pb", "repro.py"]
    assert "Digamma" in (tmp_path / "out" / "converter_call.txt").read_text()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no tfopt on the path: TF alone
    child = subprocess.run([sys.executable, "repro.py"], cwd=out, env=env, capture_output=True, text=True,
                           check=False, timeout=300)
    assert child.returncode == 1, child.stdout + child.stderr[-2000:]
    assert child.stdout.startswith("REPRODUCED") and "Digamma" in child.stdout


def test_an_fp16_overflowing_weight_reduces_to_its_conv(outlier_net):
    check = Check.parse("mismatch", "fp16")
    result = reduce(outlier_net, FEEDS, "tflite", precision="fp16", check=check)
    print(f"tflite fp16 mismatch: {result.ops_before} -> {len(result.cut.kept)} ops, {result.conversions} "
          f"conversions, {result.seconds:.1f} s, error {result.outcome.error:.3g}")
    assert result.cut.kept == ("conv2",)
    # 1e5 clamped to 65504: the output is off by about a third of its scale, far above fp16's 1e-2
    assert 0.2 < result.outcome.error < 0.5 and check.tol == 1e-2
    compile(repro_script(result, "tflite", "fp16", check), "repro.py", "exec")  # valid Python


def test_the_cli_writes_out_and_refuses_a_model_that_does_not_fail(tmp_path, capsys):
    model = graph_pb(tmp_path / "model.pb", lambda tf: conv_net(tf, odd_op=True))
    out = str(tmp_path / "reduced")
    np.savez(tmp_path / "inputs.npz", **FEEDS)
    assert main(["debug", "reduce", model, "--target", "openvino", "--outputs", "out", "--inputs",
                 str(tmp_path / "inputs.npz"), "-o", out]) == 0
    printed = capsys.readouterr().out
    assert "-> 1 op(s): odd" in printed and "conversions in" in printed
    assert os.path.exists(os.path.join(out, "repro.py"))
    clean = graph_pb(tmp_path / "clean.pb", conv_net)
    assert main(["debug", "reduce", clean, "--target", "openvino", "--outputs", "out",
                 "-o", str(tmp_path / "r2")]) == OptionError.exit_code
    err = capsys.readouterr().err
    assert "nothing to reduce" in err and "--check mismatch" in err
    assert not os.path.exists(tmp_path / "r2")


@pytest.mark.parametrize("text", ["mismatch:x", "fails:1", "broken", "mismatch:-1"])
def test_a_bad_check_is_an_option_error(text):
    with pytest.raises(OptionError, match="--check"):
        Check.parse(text, "fp32")
