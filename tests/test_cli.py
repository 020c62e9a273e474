"""The CLI: bad input gets one clear line, a documented exit code, no output, inputs untouched."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import snapshot
from tests.helpers import graph_pb
from tfopt import cli


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err




@pytest.fixture
def two_input_pb(tmp_path):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
        y = t.compat.v1.placeholder(t.float32, [2, 3], name="y")
        t.identity(x * 2.0 + y, name="out")
    return graph_pb(tmp_path / "two.pb", build)


@pytest.fixture
def lambda_keras(tmp_path):
    import keras

    inputs = keras.Input((3,), name="x")
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, keras.layers.Lambda(lambda t: t + 1.0)(inputs)).save(path)
    return path


def _truncate(path, keep=0.5):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


CASES = {
    # id: (build inputs -> argv list, exit code, message regex)
    "missing-path": (lambda p, t: ["freeze", p / "nope.pb", "-o", p / "o.pb"], 3, r"nope\.pb: no such file"),
    "dir-without-model": (lambda p, t: ["freeze", p / "empty", "-o", p / "o.pb"], 3, r"empty: this directory holds no model"),
    "truncated-pb": (lambda p, t: ["freeze", t["trunc_pb"], "-o", p / "o.pb"], 4, r"trunc\.pb: not a valid GraphDef"),
    "truncated-meta": (lambda p, t: ["freeze", t["trunc_meta"], "-o", p / "o.pb"], 4, r"\.meta: not a valid MetaGraphDef"),
    "missing-data-file": (lambda p, t: ["freeze", t["no_data"], "-o", p / "o.pb"], 4, r"data-00000-of-00001: checkpoint data file is missing"),
    "unknown-output": (lambda p, t: ["freeze", t["ckpt"], "--outputs", "probz", "-o", p / "o.pb"], 6, r"output 'probz' is not a node.*Did you mean: probs"),
    "unbound-placeholder": (lambda p, t: ["freeze", t["two"], "--outputs", "out", "--inputs", "x", "-o", p / "o.pb"], 6,
                            r"placeholder 'y' .* neither an input nor bound.*--set y=VALUE"),
    "set-wrong-dtype": (lambda p, t: ["freeze", t["ckpt"], "--set", "is_training=maybe", "-o", p / "o.pb"], 2,
                        r"--set is_training=maybe: 'is_training' is bool"),
    "set-unknown-name": (lambda p, t: ["freeze", t["ckpt"], "--set", "is_trainin=0", "-o", p / "o.pb"], 2,
                         r"no placeholder 'is_trainin'.*Did you mean: is_training"),
    "lambda-without-opt-in": (lambda p, t: ["freeze", t["lambda"], "-o", p / "o.pb"], 5, r"Lambda layer.*--unsafe"),
    "output-parent-missing": (lambda p, t: ["freeze", t["two"], "--outputs", "out", "-o", p / "no" / "dir" / "o.pb"], 8,
                              r"parent directory .* does not exist"),
    "output-not-writable": (lambda p, t: ["freeze", t["two"], "--outputs", "out", "-o", "/proc/tfopt-test.pb"], 8,
                            r"tfopt-test\.pb: (cannot write|directory .* is not writable)"),
    "output-over-input": (lambda p, t: ["freeze", t["ckpt"], "-o", t["ckpt"] + "/frozen.pb"], 2, r"would overwrite the input model"),
    "bad-inputs-shape": (lambda p, t: ["freeze", t["two"], "--outputs", "out", "--inputs", "x:3xfoo", "-o", p / "o.pb"], 2,
                         r"--inputs x:3xfoo: shape must look like"),
}


@pytest.fixture
def bad_inputs(tmp_path, tf1_ckpt, copy_tree, two_input_pb, lambda_keras):
    (tmp_path / "empty").mkdir()
    trunc_pb = tmp_path / "trunc.pb"
    shutil.copy(two_input_pb, trunc_pb)
    _truncate(trunc_pb)
    ckpt = copy_tree(tf1_ckpt.directory)
    trunc_dir = ckpt + "_truncated"
    shutil.copytree(ckpt, trunc_dir)
    trunc_meta = os.path.join(trunc_dir, os.path.basename(tf1_ckpt.meta))
    _truncate(trunc_meta, 0.3)
    no_data = ckpt + "_nodata"
    shutil.copytree(ckpt, no_data)
    for f in os.listdir(no_data):
        if ".data-" in f:
            os.remove(os.path.join(no_data, f))
    return {"trunc_pb": str(trunc_pb), "trunc_meta": trunc_meta, "no_data": no_data, "ckpt": ckpt,
            "two": two_input_pb, "lambda": lambda_keras}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, bad_inputs, capsys):
    make_argv, exit_code, message = CASES[case]
    argv = make_argv(tmp_path, bad_inputs)
    source = str(argv[1])
    before = snapshot(source) if os.path.exists(source) else {}
    listing = sorted(os.listdir(tmp_path))

    code, _, err = run(capsys, *argv)

    assert code == exit_code, err
    assert err.startswith("tfopt: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert not os.path.exists(tmp_path / "o.pb")
    assert sorted(os.listdir(tmp_path)) == listing, "something was written next to the output"
    if before:
        assert snapshot(source) == before, "the input model was modified"


def test_verification_failure_is_an_error(tmp_path, capsys):
    """A graph whose output is random cannot match itself: exit 7 naming the random op, nothing written."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2, 3], name="x")
        t.identity(x + t.random.uniform([2, 3]), name="noisy")
    pb = graph_pb(tmp_path / "noisy.pb", build)
    code, _, err = run(capsys, "freeze", pb, "-o", tmp_path / "o.pb")
    assert code == 7 and "original model is stochastic" in err and "noisy" in err and "RandomUniform" in err
    assert not (tmp_path / "o.pb").exists()
    code, _, _ = run(capsys, "freeze", pb, "-o", tmp_path / "o.pb", "--no-verify")
    assert code == 0 and (tmp_path / "o.pb").exists()


def test_freeze_prints_removals_and_error(tf1_ckpt, tmp_path, capsys):
    code, out, _ = run(capsys, "freeze", tf1_ckpt.directory, "-o", tmp_path / "f.pb")
    assert code == 0
    assert "bound    is_training = False (training flag)" in out
    assert "Switch" in out and "VariableV2" in out  # what was removed
    assert "verified probs: max abs err 0" in out


def test_freeze_json_report(tf1_ckpt, tmp_path, capsys):
    code, out, _ = run(capsys, "freeze", tf1_ckpt.prefix, "-o", tmp_path / "f.pbtxt", "--json")
    report = json.loads(out)
    assert code == 0 and report["output"].endswith("f.pbtxt")
    assert report["removed_ops"]["Switch"] >= 8 and report["training_nodes_left"] == []
    assert {p["name"] for p in report["passes"]} >= {"resolve_switch", "freeze_variables", "prune_dead"}
    assert (tmp_path / "f.pbtxt").read_text().startswith("node {")


def test_set_binds_placeholder(two_input_pb, tmp_path, capsys):
    from tfopt.loaders import load
    from tfopt.runtimes.tensorflow import GraphRunner

    code, out, _ = run(capsys, "freeze", two_input_pb, "--outputs", "out", "--inputs", "x:2x3", "--set", "y=0.5",
                       "-o", tmp_path / "f.pb")
    assert code == 0 and "bound    y = 0.5 (filled to shape 2x3) (--set)" in out
    frozen = load(tmp_path / "f.pb")
    assert [(s.name, s.shape) for s in frozen.inputs] == [("x", (2, 3))]
    got = GraphRunner(frozen)({"x": np.ones((2, 3), np.float32)})["out"]
    np.testing.assert_allclose(got, np.full((2, 3), 2.5))


def test_inspect_json(tf1_ckpt, capsys):
    code, out, _ = run(capsys, "inspect", tf1_ckpt.directory, "--json")
    info = json.loads(out)
    assert code == 0 and info["output_candidates"] == ["probs"] and info["training_flags"] == ["is_training"]


def _imports_tensorflow(code: str) -> bool:
    result = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('tensorflow' in sys.modules)"],
                            capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return result.stdout.strip().splitlines()[-1] == "True"


def test_help_and_pb_inspect_do_not_import_tensorflow(two_input_pb):
    assert not _imports_tensorflow("from tfopt import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass")
    assert not _imports_tensorflow(f"from tfopt import cli\ncli.main(['inspect', {two_input_pb!r}])")
    assert _imports_tensorflow("from tfopt._tf import tf\ntf()")  # the probe itself can see an import
