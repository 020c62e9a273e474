"""The deployment scripts: the fleet converter (fresh, then resumed) and the CI shell example."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, **kwargs)


def _tiny_keras(path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)).save(str(path))


@pytest.fixture(scope="module")
def fleet(digits_model, tf1_ckpt, tmp_path_factory):
    """Three models, three formats: a SavedModel (int8, calibrated, gated), a TF1 checkpoint and a
    Keras .keras file."""
    import yaml

    root = tmp_path_factory.mktemp("fleet")
    _tiny_keras(root / "tiny.keras")
    manifest = {
        "defaults": {"to": "tflite,onnx", "quantize": ["none"], "report_runs": 2},
        "models": [
            {"name": "digits", "path": os.path.relpath(digits_model["path"], root), "quantize": "none,int8",
             "calibration": digits_model["calib"], "eval-data": digits_model["eval"],
             "fail-if": ["accuracy_drop>5", "fp32:max_abs_err>1e-4"]},
            {"name": "legacy", "path": tf1_ckpt.directory, "to": ["pb", "tflite"]},
            {"name": "tiny", "path": "tiny.keras"},
        ],
    }
    with open(root / "fleet.yaml", "w") as f:
        yaml.safe_dump(manifest, f)
    return root


def test_fleet_script_converts_resumes_and_exits_by_outcome(tmp_path):
    """The script's plan and summary lines and exit status, fresh then resumed: a model converted by an
    earlier run is up to date (left untouched) while the others convert; a tripped gate exits 10, a
    model that cannot be converted 1 (the others still convert); a model whose gate failed stays
    up to date and still reports its failure. One small model, TFLite only: a .keras file whose layer
    is a custom object (``custom_objects`` is a module name, imported from the manifest's directory
    while the script runs from elsewhere, as the CLI imports it from the working directory),
    converted twice (as ``custom``, and gated as ``strict``: six worker processes, each importing
    TensorFlow). That new bytes at the same path make just that model stale is
    tests/fleet/test_manifest.py's test_changed_input_bytes_make_just_that_model_stale; the slow
    ``test_fleet_converts_then_resumes`` runs that through the script too, on an int8 gated SavedModel
    and a TF1 checkpoint."""
    import yaml

    _custom_keras(tmp_path)
    custom = {"path": "custom.keras", "custom-objects": "fleet_layers"}
    with open(tmp_path / "fleet.yaml", "w") as f:
        yaml.safe_dump({"defaults": {"to": ["tflite"], "report_runs": 1},
                        "models": [{"name": "custom", **custom}, {"name": "strict", **custom, "fail_if": "bytes>1"},
                                   {"name": "missing", "path": "nope.keras"}]}, f)
    script = os.path.join(ROOT, "scripts", "convert_fleet.py")
    first = _run([sys.executable, script, str(tmp_path / "fleet.yaml"), "--jobs", "2", "--only", "custom"])
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 to convert, 0 up to date" in first.stdout and "converted 1, up to date 0" in first.stdout
    out = tmp_path / "fleet_out"
    assert not os.path.exists(out / "strict")
    mtime = os.path.getmtime(out / "custom" / "report.json")

    second = _run([sys.executable, script, str(tmp_path / "fleet.yaml"), "--jobs", "2"])
    assert second.returncode == 1, second.stdout + second.stderr
    assert "2 to convert, 1 up to date" in second.stdout and \
        "converted 1, up to date 1, gate failures 1, errors 1" in second.stdout, second.stdout
    assert "missing: ModelNotFoundError" in second.stdout and "strict               gate failed" in second.stdout
    for name in ("custom", "strict"):
        with open(out / name / "manifest.json") as f:
            assert [a["format"] for a in json.load(f)["artifacts"]] == ["tflite"]
    assert os.path.exists(out / "custom" / "model.fp32.tflite") and not os.path.exists(out / "missing")
    assert os.path.getmtime(out / "custom" / "report.json") == mtime

    mtimes = {p: os.path.getmtime(out / p / "report.json") for p in ("custom", "strict")}
    third = _run([sys.executable, script, str(tmp_path / "fleet.yaml"), "--only", "custom", "strict"])
    assert third.returncode == 10, third.stdout + third.stderr  # only a gate failed: reports written
    assert "0 to convert, 2 up to date" in third.stdout and \
        "converted 0, up to date 1, gate failures 1, errors 0" in third.stdout, third.stdout
    assert "strict               gate failed" in third.stdout
    assert {p: os.path.getmtime(out / p / "report.json") for p in mtimes} == mtimes


@pytest.mark.slow  # ~200 s on 2 cores (about 20 worker processes, each importing TensorFlow); the fast lane:
# test_fleet_script_converts_resumes_and_exits_by_outcome (the script, resume, exit codes), tests/fleet/test_manifest.py's
# test_changed_input_bytes_make_just_that_model_stale (a stale input) and tests/fleet/test_run.py
# (run_fleet byte-identical to convert for .keras, SavedModel and .pb; reruns; the prepare cache)
def test_fleet_converts_then_resumes(fleet, digits_model):
    script = os.path.join(ROOT, "scripts", "convert_fleet.py")
    first = _run([sys.executable, script, str(fleet / "fleet.yaml"), "--jobs", "2"])
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 to convert" in first.stdout and "converted 3, up to date 0" in first.stdout
    out = fleet / "fleet_out"
    with open(out / "digits" / "report.json") as f:
        report = json.load(f)
    assert {(a["format"], a["precision"]) for a in report["artifacts"]} == {
        ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")}
    assert all(not g["failed"] for g in report["gates"]) and len(report["gates"]) == 6
    assert {"model.fp32.tflite", "model.pb"} <= set(os.listdir(out / "legacy"))
    with open(out / "tiny" / "manifest.json") as f:
        assert len(json.load(f)["artifacts"]) == 2

    mtimes = {p: os.path.getmtime(out / p / "report.json") for p in ("digits", "legacy", "tiny")}
    second = _run([sys.executable, script, str(fleet / "fleet.yaml")])
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 to convert, 3 up to date" in second.stdout and "converted 0, up to date 3" in second.stdout
    assert {p: os.path.getmtime(out / p / "report.json") for p in mtimes} == mtimes

    # a changed input file makes just that model stale
    x = np.load(digits_model["calib"])["images"]
    np.savez(fleet / "calib2.npz", images=x[::-1])
    text = (fleet / "fleet.yaml").read_text().replace(digits_model["calib"], str(fleet / "calib2.npz"))
    (fleet / "edited.yaml").write_text(text)
    third = _run([sys.executable, script, str(fleet / "edited.yaml"), "--only", "digits", "legacy"])
    assert third.returncode == 0 and "1 to convert, 1 up to date" in third.stdout, third.stdout + third.stderr


def test_ci_shell_example(digits_model, tmp_path):
    out = str(tmp_path / "deploy")
    result = _run(["bash", os.path.join(ROOT, "scripts", "ci_example.sh"), digits_model["path"],
                   digits_model["calib"], digits_model["eval"], out])
    assert result.returncode == 0, result.stdout + result.stderr
    import xml.etree.ElementTree as ET

    suite = ET.parse(out + ".gates.xml").getroot()
    assert int(suite.get("tests")) >= 7 and suite.get("failures") == "0"
    assert os.path.exists(os.path.join(out, "report.html"))


CUSTOM_LAYERS = '''
import keras


class Doubled(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def _custom_keras(directory) -> None:
    """``directory/custom.keras``, whose one layer is ``fleet_layers.Doubled`` (``directory/fleet_layers.py``)."""
    import importlib.util

    import keras

    (directory / "fleet_layers.py").write_text(CUSTOM_LAYERS)
    spec = importlib.util.spec_from_file_location("fleet_layers", directory / "fleet_layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    inputs = keras.Input((4,), name="x")
    keras.Model(inputs, layers.Doubled()(inputs)).save(str(directory / "custom.keras"))


def test_fleet_unknown_option_names_the_closest(tmp_path):
    import yaml

    with open(tmp_path / "m.yaml", "w") as f:
        yaml.safe_dump({"models": [{"name": "a", "path": "a.keras", "custom_objects_file": "layers.py"}]}, f)
    result = _run([sys.executable, os.path.join(ROOT, "scripts", "convert_fleet.py"), str(tmp_path / "m.yaml")])
    assert result.returncode == 1 and "to convert" not in result.stdout, result.stdout + result.stderr
    assert "models[0]: unknown option 'custom_objects_file'. Did you mean: custom_objects" in result.stderr


@pytest.mark.parametrize("flags, has_vnni", [
    ("fpu sse2 avx2 fma", False), ("avx2 avx512f avx512bw", False), ("avx2 avx512f avx512_vnni", True),
    ("avx2 avx_vnni", True), ("avx2 avx512f amx_tile amx_int8 amx_bf16", True), ("", False)])
def test_int8_benchmark_names_the_cpu_and_says_when_it_lacks_vnni(tmp_path, flags, has_vnni):
    """``scripts/benchmark.py int8`` prints the CPU's model name and whether its int8 kernels have
    VNNI/AMX dot products (without, int8 gains less)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from benchmark import cpu_summary

    info = tmp_path / "cpuinfo"
    info.write_text("".join(f"processor\t: {i}\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n\n" for i in range(2)))
    line = cpu_summary(str(info))
    assert line.startswith("CPU: Test CPU 9000,")
    assert ("int8 gains less here" in line) is not has_vnni, line


def test_int8_benchmark_help_names_its_speed_options():
    result = _run([sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "int8", "--help"])
    assert result.returncode == 0, result.stderr
    assert all(flag in result.stdout for flag in ("--threads", "--runs", "--full", "--per-tensor")), result.stdout
