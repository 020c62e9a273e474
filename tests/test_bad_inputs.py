"""Hostile-but-realistic input through the CLI: each gets its typed error and exit code, one line,
before any work where it can be, and the input files are left as they were."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.conftest import snapshot
from tests.helpers import graph_pb
from tfopt import cli
from tfopt._tf import tf


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _truncate(path, keep):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:keep])




def _cycle_graph_def():
    """x -> a = x + b, b = identity(a): a two-node cycle, then out = identity(a)."""
    g = tf().compat.v1.GraphDef()
    for name, op, inputs in (("x", "Placeholder", []), ("a", "AddV2", ["x", "b"]), ("b", "Identity", ["a"]),
                             ("out", "Identity", ["a"])):
        node = g.node.add(name=name, op=op)
        node.input.extend(inputs)
        node.attr["dtype" if op == "Placeholder" else "T"].type = 1  # DT_FLOAT
    return g


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models built here: a Dense SavedModel (and its .tflite), an Embedding, two outputs, two
    signatures, a GraphDef with a cycle (also saved as .bin), a gather on a table tfopt cannot see,
    a .keras whose config.json is cut in half."""
    import keras

    root = tmp_path_factory.mktemp("bad_inputs")
    t = tf()
    x = keras.Input((4,), name="x")
    dense = keras.Model(x, keras.layers.Dense(3, name="d")(x))
    dense.export(str(root / "dense"), verbose=False)
    dense.save(str(root / "dense.keras"))
    keras.Model(x, [keras.layers.Dense(3)(x), keras.layers.Dense(2)(x)]).export(str(root / "two_out"), verbose=False)
    ids = keras.Input((5,), dtype="int32", name="ids")
    emb = keras.Model(ids, keras.layers.Flatten()(keras.layers.Embedding(4, 2)(ids)))  # ids must be < 4
    emb.export(str(root / "emb"), verbose=False)

    class TwoSignatures(t.Module):
        @t.function(input_signature=[t.TensorSpec([None, 4], t.float32, name="x")])
        def double(self, x):
            return {"y": 2.0 * x}

        @t.function(input_signature=[t.TensorSpec([None, 4], t.float32, name="x")])
        def negate(self, x):
            return {"y": -x}

    module = TwoSignatures()
    t.saved_model.save(module, str(root / "two_sig"), signatures={"serving_default": module.double,
                                                                  "negate": module.negate})

    def opaque_gather(t):  # the table's row count depends on values (the distinct ids): no shape tells it
        ids = t.compat.v1.placeholder(t.int32, [None, 3], name="ids")
        table = t.tile(t.expand_dims(t.cast(t.unique(t.reshape(ids, [-1]))[0], t.float32), 1), [1, 2])
        t.identity(t.gather(table, ids), name="out")

    graph_pb(root / "opaque.pb", opaque_gather)
    with open(root / "cycle.pb", "wb") as f:
        f.write(_cycle_graph_def().SerializeToString())
    shutil.copy(graph_pb(root / "plain.pb", lambda t: t.identity(
        t.compat.v1.placeholder(t.float32, [None, 2], name="x") * 2.0, name="out")), root / "graph.bin")
    with zipfile.ZipFile(root / "dense.keras") as z:
        items = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(root / "half.keras", "w") as z:
        for name, data in items.items():
            z.writestr(name, data[: len(data) // 2] if name == "config.json" else data)
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "loop_a", root / "loop_b")
    assert cli.main(["convert", str(root / "dense"), "-o", str(root / "conv"), "--to", "tflite", "--report-runs", "1"]) == 0
    shutil.copy(root / "conv" / "model.fp32.tflite", root / "trunc.tflite")
    _truncate(root / "trunc.tflite", os.path.getsize(root / "trunc.tflite") // 2)
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 4)).astype("float32")
    calib[3, 1] = np.nan
    calib[5, 0] = np.inf
    np.savez(root / "calib_nan.npz", x=calib)
    np.savez(root / "eval_nan.npz", x=calib, labels=np.zeros(16, dtype=np.int64))
    return {k: str(root / k) for k in ("dense", "two_out", "emb", "two_sig", "opaque.pb", "cycle.pb", "graph.bin",
                                         "half.keras", "loop_a", "conv", "trunc.tflite", "calib_nan.npz",
                                         "eval_nan.npz")}


@pytest.fixture
def checkpoints(tf1_ckpt, tmp_path):
    """``orig``: a checkpoint whose state file holds its absolute path (as on the training machine);
    ``copy``: that directory copied without its .data file; ``trunc``: a copy whose .data is cut."""
    orig = tmp_path / "orig"
    shutil.copytree(tf1_ckpt.directory, orig)
    prefix = orig / os.path.basename(tf1_ckpt.prefix)
    (orig / "checkpoint").write_text(f'model_checkpoint_path: "{prefix}"\nall_model_checkpoint_paths: "{prefix}"\n')
    copy = tmp_path / "copy"
    shutil.copytree(orig, copy)
    trunc = tmp_path / "trunc"
    shutil.copytree(tf1_ckpt.directory, trunc)  # its state file is stale: the files here are read
    for name in os.listdir(copy):
        if ".data-" in name:
            os.remove(copy / name)
            _truncate(trunc / name, 100)
    return {"orig": str(orig), "copy": str(copy), "trunc": str(trunc)}


def _m(key):
    return lambda m, c, p: m[key]


CASES = {
    # id: (argv from (models, checkpoints, tmp_path), exit code, message regex)
    "truncated-ckpt-data": (lambda m, c, p: ["freeze", c["trunc"], "-o", p / "o.pb"], 4,
                            r"trunc/model\.ckpt-\d+\.data-00000-of-00001: cannot read variable .* truncated"),
    "ckpt-copy-without-data": (lambda m, c, p: ["freeze", c["copy"], "-o", p / "o.pb"], 4,
                               r"copy/model\.ckpt-\d+\.data-00000-of-00001: missing next to the \.meta, and .*checkpoint "
                               r"points to .*/orig/model\.ckpt-\d+, outside"),
    "graph-cycle": (lambda m, c, p: ["freeze", m["cycle.pb"], "--outputs", "out", "-o", p / "o.pb"], 6,
                    r"cycle\.pb: the graph has a cycle through 2 node\(s\): b -> a -> b"),
    "negative-dimension": (lambda m, c, p: ["freeze", m["dense"], "--inputs", "x:-3x4", "-o", p / "o.pb"], 2,
                           r"--inputs x:-3x4: dimensions must be >= 0"),
    "unknown-input-name": (lambda m, c, p: ["freeze", m["dense"], "--inputs", "y:1x4", "-o", p / "o.pb"], 2,
                           r"'y' is not a placeholder.*The model's inputs: x \(float32\[\?x4\]\)"),
    "ids-range-unknown": (lambda m, c, p: ["freeze", m["opaque.pb"], "--outputs", "out", "-o", p / "o.pb"], 7,
                          r"random verification inputs for 'ids' \(int32, drawn in \[0, \d\)\).*--eval-data.*--no-verify"),
    "verify-truncated-tflite": (lambda m, c, p: ["verify", m["trunc.tflite"], "--reference", m["dense"]], 4,
                                r"trunc\.tflite: the tflite runtime cannot open it .* truncated"),
    "verify-other-model": (lambda m, c, p: ["verify", m["conv"] + "/model.fp32.tflite", "--reference", m["two_out"]], 2,
                           r"model\.fp32\.tflite: does not run as the reference model does .*is --reference the model"),
    "graphdef-named-bin": (lambda m, c, p: ["freeze", m["graph.bin"], "-o", p / "o.pb"], 3,
                           r"graph\.bin: this file holds no model.*--input-format .*graphdef"),
    "symlink-loop": (lambda m, c, p: ["freeze", m["loop_a"], "-o", p / "o.pb"], 3, r"loop_a: symbolic link loop"),
    "half-written-keras": (lambda m, c, p: ["freeze", m["half.keras"], "-o", p / "o.pb"], 4,
                           r"half\.keras/config\.json: not valid JSON"),
    "nan-calibration": (lambda m, c, p: ["convert", m["dense"], "-o", p / "o.pb", "--to", "tflite", "--quantize", "int8",
                                         "--calibration", m["calib_nan.npz"]], 2,
                        r"--calibration .*calib_nan\.npz: input 'x' has 2 NaN/Inf value\(s\).*--allow-nonfinite"),
    "nan-eval-data": (lambda m, c, p: ["convert", m["dense"], "-o", p / "o.pb", "--to", "tflite",
                                       "--eval-data", m["eval_nan.npz"]], 2,
                      r"--eval-data .*eval_nan\.npz: input 'x' has 2 NaN/Inf value\(s\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, models, checkpoints, tmp_path, capsys):
    make_argv, exit_code, message = CASES[case]
    argv = make_argv(models, checkpoints, tmp_path)
    source = str(argv[1])
    before = snapshot(source) if os.path.exists(source) else {}
    originals = snapshot(checkpoints["orig"])

    code, _, err = run(capsys, *argv)

    assert code == exit_code, err
    error = [line for line in err.splitlines() if not line.startswith("  ")]  # convert's progress lines aside
    assert len(error) == 1 and error[0].startswith("tfopt: error: "), err
    assert re.search(message, error[0]), err
    assert not os.path.exists(tmp_path / "o.pb")
    if before:
        assert snapshot(source) == before, "the input was modified"
    assert snapshot(checkpoints["orig"]) == originals


# Each rule has one statement (tfopt._checks.RANGES, tfopt.options' check()) and one message: the CLI's
# argument types only parse, so the CLI and the API refuse a bad value with the same words, once.
RULES = {  # id: (CLI argv, the API call as (function name, keywords), the one message)
    "atol": (["freeze", "{dense}", "-o", "{out}", "--atol", "-1"], ("freeze", {"atol": -1.0}),
             "--atol -1.0: must be a number >= 0"),
    "rtol": (["optimize", "{dense}", "-o", "{out}", "--rtol", "nan"], ("optimize", {"opt_rtol": float("nan")}),
             "--rtol nan: must be a number >= 0"),
    "calibration-samples": (["convert", "{dense}", "-o", "{out}", "--calibration-samples", "-5"],
                            ("convert", {"calibration_samples": -5}), "--calibration-samples -5: must be an integer >= 1"),
    "report-runs": (["convert", "{dense}", "-o", "{out}", "--report-runs", "0"], ("convert", {"report_runs": 0}),
                    "--report-runs 0: must be an integer >= 1"),
    "threads": (["verify", "{dense}", "--reference", "{dense}", "--threads", "0"], ("convert", {"threads": 0}),
                "--threads 0: must be an integer >= 1"),
    "auto-keep-float": (["convert", "{dense}", "-o", "{out}", "--auto-keep-float", "-0.5"],
                        ("convert", {"auto_keep_float": -0.5}), "--auto-keep-float -0.5: must be a number >= 0"),
    "opset": (["convert", "{dense}", "-o", "{out}", "--opset", "3"], ("convert", {"opset": 3}),
              "--opset 3: must be an integer >= 7"),
    "cluster": (["convert", "{dense}", "-o", "{out}", "--cluster", "1"], ("convert", {"cluster": 1}),
                "--cluster 1: must be an integer >= 2"),
    "finetune-epochs": (["convert", "{dense}", "-o", "{out}", "--prune", "0.5", "--finetune-epochs", "0"],
                        ("convert", {"prune": 0.5, "finetune_epochs": 0}), "--finetune-epochs 0: must be an integer >= 1"),
    "external-threshold": (["freeze", "{dense}", "-o", "{out}", "--external-threshold", "0"],
                           ("freeze", {"external_threshold": 0}), "--external-threshold 0: must be an integer >= 1"),
    "metric-without-eval-data": (["verify", "{dense}", "--reference", "{dense}", "--metric", "m:f"],
                                 ("convert", {"metric": "m:f"}),
                                 "--metric m:f: needs --eval-data DATA.npz holding the labels it scores against"),
    "prune": (["convert", "{dense}", "-o", "{out}", "--prune", "1.5"], ("convert", {"prune": 1.5}),
              "--prune 1.5: sparsity is a fraction in (0, 1), e.g. 0.5"),
    "cluster-init": (["convert", "{dense}", "-o", "{out}", "--cluster-init", "kmeans"], ("convert", {"cluster_init": "kmeans"}),
                     "--cluster-init kmeans: choose from kmeans++, linear, density, random"),
    "quantizer": (["convert", "{dense}", "-o", "{out}", "--quantizer", "tflite"], ("convert", {"quantizer": "tflite"}),
                  "--quantizer tflite: choose tfopt (int8 decided once in the TF graph, the same in every target) "
                  "or native (each converter's own)"),
}


@pytest.mark.parametrize("case", list(RULES))
def test_each_rule_has_one_message_in_the_cli_and_the_api(case, models, tmp_path, capsys):
    import tfopt

    template, (function, kwargs), message = RULES[case]
    argv = [a.format(dense=models["dense"], out=tmp_path / "out") for a in template]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"tfopt: error: {message}", err  # one line: the rule's message, said once
    args = (models["dense"], str(tmp_path / "api")) if function == "convert" else (models["dense"],)
    with pytest.raises(tfopt.OptionError) as exc:
        getattr(tfopt, function)(*args, **({"to": ["tflite"]} if function == "convert" else {}), **kwargs)
    assert str(exc.value) == message
    assert os.listdir(tmp_path) == []


def test_a_value_that_does_not_parse_is_argparses(models, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["convert", models["dense"], "-o", str(tmp_path / "out"), "--report-runs", "many"])
    assert exc.value.code == 2
    assert "argument --report-runs: 'many' is not an integer" in capsys.readouterr().err


def test_nonfinite_data_allowed_fails_every_gate(models, tmp_path, capsys):
    """NaN in calibration (accepted with --allow-nonfinite) makes the int8 outputs NaN: the report
    says NaN in every place, and a gate reading a NaN metric fails whatever its operator."""
    out, junit = tmp_path / "out", tmp_path / "gates.xml"
    code, stdout, err = run(capsys, "convert", models["dense"], "-o", out, "--to", "tflite", "--quantize", "int8",
                            "--calibration", models["calib_nan.npz"], "--allow-nonfinite", "--report-runs", "1",
                            "--fail-if", "max_abs_err>1e-6", "--fail-if", "cosine<0.5", "--junit", junit)
    assert code == 10, err
    assert re.search(r"tflite\s+int8 .*\bnan\b", stdout), stdout
    assert "measured on inputs holding NaN/Inf (--allow-nonfinite): x 2" in stdout
    with open(out / "report.json") as f:
        text = f.read()
    report = json.loads(text)  # strict JSON: no bare NaN
    assert "NaN" not in text
    fidelity = report["artifacts"][0]["fidelity"]
    assert fidelity["max_abs_err"] == "nan" and fidelity["cosine"] == "nan"
    assert report["nonfinite_inputs"] == {"x": 2}
    assert [g["failed"] for g in report["gates"]] == [True, True]
    assert junit.read_text().count('<failure message="') == 2 and "NaN fails every gate" in junit.read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    # The manifest's error is the verification's, which compares on the finite rows only (a NaN
    # reference decides nothing); the report above measured every row, NaN included.
    assert manifest["verification"]["source"] == "calibration"
    assert 0 < manifest["artifacts"][0]["max_abs_err"] < 1


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_a_nan_metric_fails_every_gate(op):
    from tfopt.report.gates import evaluate_gates, parse_gate

    row = {"format": "tflite", "precision": "int8", "bytes": 1, "gzip_bytes": 1, "accuracy": None,
           "accuracy_drop": None, "latency_ms": {"median": 1.0, "p90": 1.0},
           "fidelity": {"max_abs_err": float("nan"), "mean_abs_err": 0.0, "rel_err": 0.0, "cosine": 1.0,
                        "top1_agreement": 1.0}}
    results = evaluate_gates({"artifacts": [row]}, [parse_gate(f"max_abs_err{op}0.5")])
    assert [r["failed"] for r in results] == [True]


def test_worst_keeps_nan_where_python_max_drops_it():
    from tfopt.verification.nonfinite import from_json, to_json, worst

    nan = float("nan")
    assert max(0.0, nan) == 0.0  # the bug this guards against
    assert np.isnan(worst([0.0, nan])) and np.isnan(worst([1.0, nan], lowest=True))
    assert worst([0.5, 2.0]) == 2.0 and worst([0.5, 2.0], lowest=True) == 0.5
    assert to_json({"a": [nan, float("inf"), -float("inf"), 1.0]}) == {"a": ["nan", "inf", "-inf", 1.0]}
    assert np.isnan(from_json({"a": "nan"})["a"])


def test_embedding_ids_are_drawn_inside_the_table(models, tmp_path, capsys):
    code, out, err = run(capsys, "freeze", models["emb"], "-o", tmp_path / "emb.pb")
    assert code == 0, err
    assert "verified output_0: max abs err 0" in out


def test_inspect_names_the_other_signatures(models, capsys):
    code, out, err = run(capsys, "inspect", models["two_sig"])
    assert code == 0, err
    assert "signature serving_default (shown); also negate: choose with --signature NAME" in out


def test_checkpoint_with_a_state_file_pointing_elsewhere_still_reads_a_complete_copy(checkpoints, tmp_path, capsys):
    complete = tmp_path / "complete"
    shutil.copytree(checkpoints["orig"], complete)  # its state file still points at orig: the files here win
    code, out, err = run(capsys, "freeze", complete, "-o", tmp_path / "o.pb")
    assert code == 0, err
    assert "read     variables from" not in out


def _can_run_as_nobody():
    import pwd

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    if os.geteuid() != 0:
        return False
    try:  # this Python may live where nobody cannot reach it (e.g. under /root)
        return subprocess.run([sys.executable, "-c", "import numpy"], user="nobody", capture_output=True,
                              timeout=60).returncode == 0
    except OSError:
        return False


def test_unreadable_model_is_permission_denied_for_a_normal_user():
    if not _can_run_as_nobody():
        pytest.skip("needs root, and a Python the user nobody can run")
    import pathlib
    import tempfile

    shared = pathlib.Path(tempfile.mkdtemp(prefix="tfopt-perm-"))  # pytest's tmp dirs are private to root
    pb = graph_pb(shared / "model.pb", lambda t: t.identity(t.compat.v1.placeholder(t.float32, [1], name="x"),
                                                                 name="out"))
    os.chmod(pb, 0)
    os.chmod(shared, 0o755)
    parent = shared
    while str(parent) != "/":  # nobody must reach the file to be refused by its own mode
        parent = parent.parent
        if not os.stat(parent).st_mode & 0o005:
            shutil.rmtree(shared)
            pytest.skip(f"{parent} cannot be traversed by other users")
    package = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))  # tfopt/ of the checkout under test
    env = {**os.environ, "PYTHONPATH": os.path.dirname(package), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-m", "tfopt", "inspect", pb], user="nobody", env=env, cwd="/",
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(shared)
    assert proc.returncode == 3, proc.stderr
    assert re.search(r"model\.pb: permission denied", proc.stderr), proc.stderr


def test_permission_denied_maps_to_model_not_found():
    """The mapping the test above checks end to end (it needs a second user), checked as a unit."""
    from tfopt.errors import ModelNotFoundError
    from tfopt.loaders import unreadable

    error = unreadable(PermissionError(13, "Permission denied", "/models/frozen.pb"), "/models")
    assert isinstance(error, ModelNotFoundError) and error.exit_code == 3
    assert str(error).startswith("/models/frozen.pb: permission denied")


def test_a_v1_while_loop_back_edge_is_not_a_cycle():
    """Merge(Enter, NextIteration) -> body -> NextIteration is how TF1 spells a loop."""
    from tfopt.errors import GraphError
    from tfopt.graphdef.order import check_acyclic

    g = tf().compat.v1.GraphDef()
    for name, op, inputs in (("x", "Placeholder", []), ("enter", "Enter", ["x"]), ("merge", "Merge", ["enter", "next"]),
                             ("body", "Identity", ["merge"]), ("next", "NextIteration", ["body"])):
        g.node.add(name=name, op=op).input.extend(inputs)
    check_acyclic(g, "loop.pb")
    with pytest.raises(GraphError, match=r"loop\.pb: the graph has a cycle through 2 node\(s\): b -> a -> b"):
        check_acyclic(_cycle_graph_def(), "loop.pb")


def test_a_checkpoint_read_from_another_directory_is_said(checkpoints, tf1_ckpt, tmp_path, capsys, caplog):
    """Nothing of the checkpoint the state file names is here (only a graph): it is read from where
    the state file points, and the path actually read is printed."""
    pointer = tmp_path / "pointer"
    pointer.mkdir()
    shutil.copy(tf1_ckpt.meta, pointer / "graph.meta")
    shutil.copy(os.path.join(checkpoints["orig"], "checkpoint"), pointer / "checkpoint")
    with caplog.at_level(logging.WARNING, logger="tfopt.loaders.tf1_checkpoint"):  # whatever earlier tests set
        code, out, err = run(capsys, "freeze", pointer, "-o", tmp_path / "o.pb")
    assert code == 0, err
    orig = os.path.join(checkpoints["orig"], os.path.basename(tf1_ckpt.prefix))
    assert f"read     variables from {orig}" in out
    assert f"reading the checkpoint {orig}" in caplog.text  # a warning on stderr for every command
