"""`tfopt optimize`, `freeze --optimize`, `inspect --passes`, --passes/--skip/--grappler."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import saver_predict
from tests.test_cli import run
from tfopt.graph import op_histogram
from tfopt.loaders import load
from tfopt.runtimes.tensorflow import GraphRunner


def _ops(path):
    return op_histogram(load(path).graph_def)


@pytest.mark.parametrize("command", [["optimize"], ["freeze", "--optimize"]], ids=["optimize", "freeze-optimize"])
def test_optimize_folds_batchnorm_and_fuses(tf1_ckpt, tmp_path, digits_test, capsys, command):
    out = tmp_path / "opt.pb"
    code, text, err = run(capsys, *command, tf1_ckpt.directory, "-o", out)
    assert code == 0, err
    ops = _ops(out)
    assert not {"Rsqrt", "Mul", "Sub", "FusedBatchNormV3"} & set(ops)  # the BN is inside conv1
    assert ops.get("_FusedConv2D") == 1  # conv + bias + relu
    assert "_FusedMatMul" not in ops and ops["MatMul"] == 1  # logits: bias without activation stays unfused
    assert "fold_mul_into_weights" in text and "(runtime vs original)" in text
    x, _ = digits_test
    np.testing.assert_allclose(GraphRunner(load(out))({"images": x})["probs"], saver_predict(tf1_ckpt, x), atol=1e-5)


def test_passes_none_equals_freeze(tf1_ckpt, tmp_path, capsys):
    assert run(capsys, "freeze", tf1_ckpt.prefix, "-o", tmp_path / "f.pb")[0] == 0
    assert run(capsys, "optimize", tf1_ckpt.prefix, "--passes", "none", "-o", tmp_path / "o.pb")[0] == 0
    assert _ops(tmp_path / "f.pb") == _ops(tmp_path / "o.pb")


def test_skip_and_list(tf1_ckpt, tmp_path, capsys):
    code, _, _ = run(capsys, "optimize", tf1_ckpt.prefix, "--skip", "fuse_activation", "fold_mul_into_weights",
                     "-o", tmp_path / "a.pb")
    ops = _ops(tmp_path / "a.pb")
    assert code == 0 and "_FusedConv2D" not in ops and ops["Mul"] == 1  # the BN scale stays
    code, _, _ = run(capsys, "optimize", tf1_ckpt.prefix, "--passes", "fold_constants,prune_dead",
                     "-o", tmp_path / "b.pb")
    assert code == 0 and "Rsqrt" not in _ops(tmp_path / "b.pb") and "Mul" in _ops(tmp_path / "b.pb")


@pytest.mark.parametrize(("args", "message"), [
    (["--passes", "fold_batchnrom"], r"--passes: unknown pass 'fold_batchnrom'.*Did you mean: fold_batchnorm"),
    (["--skip", "fuse"], r"--skip: unknown pass 'fuse'"),
    (["--grappler", "constfolding"], r"--grappler: unknown optimizer\(s\) constfolding"),
], ids=["unknown-pass", "unknown-skip", "unknown-grappler"])
def test_bad_optimization_options(tf1_ckpt, tmp_path, capsys, args, message):
    import re

    code, _, err = run(capsys, "optimize", tf1_ckpt.prefix, *args, "-o", tmp_path / "o.pb")
    assert code == 2 and re.search(message, err), err
    assert not os.listdir(tmp_path)


def test_grappler_escape_hatch(tf1_ckpt, tmp_path, capsys, digits_test):
    code, _, err = run(capsys, "optimize", tf1_ckpt.prefix, "--passes", "none", "--grappler", "constfold,arithmetic",
                       "-o", tmp_path / "g.pb")
    assert code == 0, err
    assert "Rsqrt" not in _ops(tmp_path / "g.pb")  # Grappler's constant folding ran
    x, _ = digits_test
    np.testing.assert_allclose(GraphRunner(load(tmp_path / "g.pb"))({"images": x})["probs"],
                               saver_predict(tf1_ckpt, x), atol=1e-5)


def test_inspect_passes_is_a_dry_run(tf1_ckpt, tmp_path, capsys):
    before = sorted(os.listdir(tf1_ckpt.directory))
    code, text, _ = run(capsys, "inspect", "--passes", "default", tf1_ckpt.directory)
    assert code == 0 and "nothing is written" in text
    for name in ("resolve_switch", "fold_constants", "fold_mul_into_weights", "fuse_activation"):
        assert name in text
    assert sorted(os.listdir(tf1_ckpt.directory)) == before
    code, text, _ = run(capsys, "inspect", "--passes", "default", "--json", tf1_ckpt.directory)
    report = json.loads(text)
    names = [p["name"] for p in report["optimize"]["passes"]]
    assert names[-1] == "fuse_activation" and report["optimize"]["nodes_runtime"] < report["optimize"]["nodes_before"]
    assert all({"nodes_before", "nodes_after", "removed", "added", "skips"} <= set(p) for p in report["optimize"]["passes"])


def test_every_skip_is_reported_with_reason(tmp_path, capsys):
    """A BatchNorm after a Concat: the optimize output says which node and why."""
    from tests.helpers import graph_model
    from tfopt.emitters.frozen_graph import emit_frozen_graph

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [1, 4, 4, 2], name="x")
        y = t.concat([x, t.nn.conv2d(x, np.ones((1, 1, 2, 2), np.float32), 1, "SAME")], axis=-1)
        t.nn.relu(t.nn.batch_normalization(y, np.zeros(4, np.float32), np.ones(4, np.float32), 0.5, 2.0, 1e-3),
                  name="out")
    pb = emit_frozen_graph(graph_model(build, {"x": (1, 4, 4, 2)}, ["out"]), str(tmp_path / "m.pb"))
    code, text, _ = run(capsys, "optimize", pb, "-o", tmp_path / "o.pb")
    assert code == 0
    assert "skipped fold_mul_into_weights: batchnorm/mul_1: multiply not folded: producer 'concat' is ConcatV2" in text
