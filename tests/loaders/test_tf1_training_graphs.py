"""TF1 training graphs written the standard ways (``tf.compat.v1.layers`` BatchNorm on an
``is_training`` placeholder, dropout through ``keep_prob`` or ``rate``, a label placeholder named
``y``, ``tf.compat.v1.losses``): outputs found from structure, no random op left, exact verification."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import keras2_builds
from tfopt.cli import main
from tfopt.loaders.training_nodes import explain_outputs, loss_nodes
from tfopt.runtimes.tensorflow import GraphRunner

BUILDER = os.path.join(os.path.dirname(__file__), os.pardir, "freezing", "tf1_training_graph.py")
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "TruncatedNormal", "Floor", "GreaterEqual", "SelectV2"}
CASES = {"keep_prob-switch-merge": ("keep_prob", "v1"), "rate-functional-if": ("rate", "v2")}


@pytest.fixture(scope="module")
def tf1_checkpoints(tmp_path_factory):
    """case -> its checkpoint directory, every case written by one process."""
    return keras2_builds(BUILDER, tmp_path_factory.mktemp("tf1_training"), list(CASES),
                         lambda case, path: [path, *CASES[case]])


@pytest.fixture(scope="module", params=list(CASES))
def tf1_graph(request, tf1_checkpoints):
    return {"dir": tf1_checkpoints(request.param), "dropout": CASES[request.param][0]}


def test_loss_and_single_output_found_from_structure(tf1_graph):
    from tfopt.loaders.tf1_checkpoint import read_meta_graph

    graph_def = read_meta_graph(os.path.join(tf1_graph["dir"], "model.ckpt.meta")).graph_def
    assert loss_nodes(graph_def)[0] == {"sparse_softmax_cross_entropy_loss/value"}
    assert list(explain_outputs(graph_def)) == ["probs"]


def test_freezes_with_no_flags(tf1_graph, tmp_path, capsys):
    out = str(tmp_path / "frozen.pb")
    assert main(["freeze", tf1_graph["dir"], "-o", out, "--atol", "1e-6"]) == 0
    printed = capsys.readouterr().out
    assert "bound    is_training = False (training flag)" in printed
    if tf1_graph["dropout"] == "keep_prob":  # a PlaceholderWithDefault rate keeps its default (0.0)
        assert "bound    keep_prob = 1.0 (dropout keep probability)" in printed
    frozen = tfopt.load(out)
    ops = {n.op for n in frozen.graph_def.node}
    assert not ops & RANDOM_OPS
    assert [s.name for s in frozen.outputs] == ["probs"] and [s.name for s in frozen.inputs] == ["x"]


def test_verification_is_exact(tf1_graph):
    frozen, report = tfopt.freeze(tf1_graph["dir"], atol=1e-6, rtol=0)
    assert report.verification[0].max_abs_err < 1e-6
    x = np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)
    a, b = GraphRunner(frozen)({"x": x})["probs"], GraphRunner(frozen)({"x": x})["probs"]
    np.testing.assert_array_equal(a, b)  # deterministic: nothing random left


def test_inspect_passes_takes_freeze_options_and_the_pass_table_chains(tf1_graph, capsys):
    knob = "keep_prob=1.0" if tf1_graph["dropout"] == "keep_prob" else "rate=0.0"
    code = main(["inspect", tf1_graph["dir"], "--passes", "--set", knob, "is_training=false", "--inputs", "x",
                 "--outputs", "probs", "--atol", "1e-6", "--rtol", "1e-6", "--json"])
    import json

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["freeze"]["bindings"]["is_training"]["reason"] == "--set"
    for stage in ("freeze", "optimize"):
        rows = report[stage]["passes"]
        assert all(a["nodes_after"] == b["nodes_before"] for a, b in itertools.pairwise(rows)), rows
    assert report["freeze"]["passes"][0]["nodes_before"] == report["freeze"]["nodes_before"]
    assert report["freeze"]["passes"][-1]["nodes_after"] == report["freeze"]["nodes_after"]
    assert report["optimize"]["passes"][0]["nodes_before"] == report["freeze"]["nodes_after"]
    assert main(["inspect", tf1_graph["dir"], "--passes", "--no-verify"]) == 0
    assert "nothing is written" in capsys.readouterr().out
    assert main(["inspect", tf1_graph["dir"], "--set", knob]) == 2  # binding options need --passes
    assert "used only with --passes" in capsys.readouterr().err


def test_inspect_shows_the_knobs_and_why_probs_is_the_output(tf1_graph):
    info = tfopt.inspect(tf1_graph["dir"])
    assert info["output_candidates"] == ["probs"] and "sink" in info["output_reasons"]["probs"]
    assert info["training_flags"] == ["is_training"]
    assert info["dropout_knobs"] == ({"keep_prob": 1.0} if tf1_graph["dropout"] == "keep_prob" else {})
