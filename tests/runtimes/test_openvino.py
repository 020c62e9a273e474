"""OpenVINO at the precision a deployer gets: tfopt verifies with ``INFERENCE_PRECISION_HINT`` f32,
and a plain ``core.compile_model(xml, "CPU")`` runs an f32 IR in bf16 on CPUs with bf16. The
manifest, the report and the printed summary carry the call that reproduces the verified numbers
and the CPU's default precision; the fidelity at the default is measured separately (here forced
to a bf16 hint through ``build_report``'s public parameter, since this CPU may have no bf16),
while the verified row stays f32. Holds on any x86-64 CPU: the assertions are about what is
recorded and about bounds, not about which precision a CPU has."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tfopt.runtimes.openvino import REPRODUCE, VERIFIED_CONFIG, cpu_default_precision

TOL = 1e-5  # the verified f32 row
BF16_TOL = 0.1  # a bf16 run of a small CNN with softmax outputs: 8-bit mantissas, a bound any CPU meets


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import tensorflow as tf

    from tfopt.cli import main

    keras = tf.keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2), name="images")
    x = keras.layers.Conv2D(6, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    root = tmp_path_factory.mktemp("ov_precision")
    model.save(str(root / "model.keras"))
    out = str(root / "out")
    return str(root / "model.keras"), out, main, model


@pytest.fixture(scope="module")
def printed(converted):
    import contextlib
    import io

    path, out, main, _ = converted
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["convert", path, "-o", out, "--to", "openvino", "--report-runs", "2"]) == 0
    return buffer.getvalue()


def test_manifest_records_the_reproducing_setting_and_the_default_precision(converted, printed):
    out = converted[1]
    with open(os.path.join(out, "manifest.json")) as f:
        settings = json.load(f)["runtime_settings"]["openvino"]
    assert settings["verified_with"] == VERIFIED_CONFIG == {"INFERENCE_PRECISION_HINT": "f32"}
    assert settings["reproduce"] == REPRODUCE and '{"INFERENCE_PRECISION_HINT": "f32"}' in REPRODUCE
    assert settings["cpu_default_precision"] == cpu_default_precision() in ("f32", "bf16", "f16")
    assert "FP32" in settings["cpu_capabilities"]


def test_report_and_summary_show_the_default_precision(converted, printed):
    out = converted[1]
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    row = next(a for a in report["artifacts"] if a["format"] == "openvino")
    default = row["runtime_default"]
    assert default["verified_with"] == {"INFERENCE_PRECISION_HINT": "f32"} and default["reproduce"] == REPRODUCE
    assert default["cpu_default_precision"] == cpu_default_precision()
    if cpu_default_precision() == "f32":  # no second run: the default gives the verified numbers
        assert default["measured"] is False and default["fidelity"] is None and "f32" in default["why"]
    else:  # a bf16 CPU: measured at its default, beside the verified row
        assert default["measured"] is True and default["fidelity"]["cosine"] > 0.99
    assert row["fidelity"]["max_abs_err"] <= TOL
    assert report["runtime_settings"]["openvino"]["reproduce"] == REPRODUCE
    assert f"runtime  openvino fp32: verified with {REPRODUCE}" in printed
    with open(os.path.join(out, "report.md")) as f:
        assert REPRODUCE in f.read()


def test_the_html_report_tells_the_runtime_precision_as_the_markdown_does(converted, printed):
    """report.html carries every runtime note report.md and the summary carry: the reproducing call,
    and on a bf16 CPU the fidelity a plain compile_model gives (issue 24: users are told what they
    get by default)."""
    import html

    from tfopt.report.table import runtime_notes

    out = converted[1]
    with open(os.path.join(out, "report.json")) as f:
        notes = runtime_notes(json.load(f))
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    assert notes and any(REPRODUCE in n and cpu_default_precision() in n for n in notes)
    assert "<h2>Runtime precision</h2>" in page
    for note in notes:
        assert html.escape(note) in page


def test_a_bf16_default_is_reported_separately_and_the_verified_row_stays_f32(converted, printed):
    from tfopt.loaders import load
    from tfopt.report.build import build_report
    from tfopt.report.table import runtime_notes

    path, out, _, _ = converted
    report = build_report(out, load(path), runs=1, write_to=None, runtime_default_precision="bf16")
    row = next(a for a in report["artifacts"] if a["format"] == "openvino")
    default = row["runtime_default"]
    assert default["hint"] == "bf16" and default["measured"] is True
    assert default["compiled_precision"] in ("bf16", "f32")  # a CPU without bf16 falls back to f32
    assert default["fidelity"] is not row["fidelity"] and default["fidelity"]["max_abs_err"] <= BF16_TOL
    assert default["verified_with"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert row["fidelity"]["max_abs_err"] <= TOL  # the verified numbers: f32, whatever the default run gave
    note = runtime_notes(report)[0]
    assert "hint bf16" in note and REPRODUCE in note and "at the runtime's default" in note


def test_the_reproducing_setting_gives_the_verified_numbers(converted, printed):
    from tfopt._openvino import openvino

    _, out, _, model = converted
    core = openvino().Core()
    compiled = core.compile_model(os.path.join(out, "openvino.fp32", "model.xml"), "CPU", dict(VERIFIED_CONFIG))
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    x = np.random.default_rng(0).random((1, 8, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(compiled(x)[0], model(x).numpy(), rtol=0, atol=TOL)


def _has_bf16() -> bool:
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return "avx512_bf16" in flags or "amx_bf16" in flags


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo") or not _has_bf16(),
                    reason="needs a CPU with bf16: only there does OpenVINO default to bf16 under an AVX2 cap")
def test_a_runtime_default_the_plugin_refuses_is_reported_not_fatal(converted, tmp_path):
    """With oneDNN capped to AVX2 on a bf16 CPU the plugin still defaults to bf16, which capped oneDNN
    cannot run: the conversion is verified at f32 as always, and the report says the plain call fails
    (before: the report's extra run raised and the conversion ended with an internal RuntimeError)."""
    import subprocess
    import sys

    path, _, _, _ = converted
    out = str(tmp_path / "out")
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2")
    child = subprocess.run([sys.executable, "-m", "tfopt", "convert", path, "-o", out, "--to", "openvino",
                            "--report-runs", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-2000:]
    with open(os.path.join(out, "report.json")) as f:
        row = json.load(f)["artifacts"][0]
    assert row["fidelity"]["max_abs_err"] <= TOL
    default = row["runtime_default"]
    assert default["measured"] is False and default["fidelity"] is None and default["fails"], default
    assert "fails on this machine" in default["why"] and "compile_model" in default["why"], default


def test_the_default_precision_note_names_the_inputs_it_was_measured_on(converted, printed):
    """Made-up inputs centred at 0 understate a lower precision's error on inputs whose signal rides on an
    offset (stella's flare CNN on normalised flux 1 +- 0.001: 7.2e-4 made up, 0.56 on its light curves), so
    the note says which inputs it used and, when they were made up, how to measure on real ones."""
    from tfopt.loaders import load
    from tfopt.report.build import build_report
    from tfopt.report.table import runtime_notes

    path, out, _, _ = converted
    report = build_report(out, load(path), runs=1, write_to=None, runtime_default_precision="bf16")
    compiled = next(a for a in report["artifacts"] if a["format"] == "openvino")["runtime_default"]["compiled_precision"]
    note = runtime_notes(report)[0]
    assert report["verification"]["source"] == "made up"
    # a CPU without bf16 compiles the hint as f32: then the default equals the verified run and needs no caveat
    assert ("made-up inputs" in note and "--calibration DATA" in note) == (compiled != "f32"), note
    for source, said in (("calibration", "on the --calibration inputs"), ("eval-data", "on the --eval-data inputs"),
                         ("verify-shape", "made-up inputs"), ("made up", "made-up inputs")):
        default = {**report["artifacts"][0]["runtime_default"], "compiled_precision": "bf16"}
        dressed = {**report, "verification": {"source": source},
                   "artifacts": [{**report["artifacts"][0], "runtime_default": default}]}
        assert said in runtime_notes(dressed)[0], (source, runtime_notes(dressed)[0])
