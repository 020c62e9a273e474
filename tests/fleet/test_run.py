"""``run_fleet`` on the local executor: a fleet of three formats converts byte-identically to
``tfopt.convert`` (ONNX for the .keras model, TFLite for the others); a task that kills its worker fails its model only (retried, with its log's tail);
a rerun converts nothing; a hung task is ended by its timeout; slow lane: a new precision re-runs only its tasks
and hits the prepare cache, a corrupt cache entry is rebuilt (their fast twins run the tasks in one process:
tests/fleet/test_safe_cache.py). One first run is shared (module scope): the .keras model and the crash, in
worker processes (each imports TensorFlow, ~8 s of CPU); the SavedModel and the .pb run the same tasks
(:func:`tfopt.fleet.tasks.run_task`, what each worker runs) in this process: what a worker process adds
(its spec and outcome files, its log, a crash, a timeout, isolated latency) does not depend on the format."""

from __future__ import annotations

import glob
import os
import pathlib
import time

import pytest

from tests.fleet.fleet_models import build_fleet, files_of, run_tasks_here
from tfopt.fleet.cache import VERSION
from tfopt.fleet.run import run_fleet

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file

GOOD = ["conv"]  # through worker processes
HERE = ["dense", "mlp"]  # the same tasks in this process
TARGETS = {"conv": ["onnx"], "dense": ["tflite"], "mlp": ["tflite"]}  # tests/fleet/fleet_models.py


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    manifest = build_fleet(root)
    out = str(root / "out")
    result = run_fleet(manifest, out, jobs=2, only=[*GOOD, "crash"])
    here = {name: run_tasks_here(manifest, root / "here", str(root / "here-cache"), name) for name in HERE}
    return {"root": root, "manifest": manifest, "out": out, "first": result, "here": here}


def _task(result, model, kind, target=None, precision=None):
    [task] = [t for t in result.tasks if (t.model, t.kind, t.target, t.precision) == (model, kind, target, precision)]
    return task


@pytest.mark.parametrize("name", GOOD + HERE)
def test_artifacts_are_byte_identical_to_convert(fleet, name, tmp_path):
    import json

    import tfopt

    if name in GOOD:
        model = next(m for m in fleet["first"].models if m.name == name)
        status, report, source, outdir = model.status, model.report, model.source, model.outdir
    else:
        here = fleet["here"][name]
        status = here["outcomes"][f"{name}/finish"]["model_status"]
        outdir, source = here["outdir"], os.path.join(str(fleet["root"]), "dense_sm" if name == "dense" else "mlp.pb")
        report = json.loads(pathlib.Path(outdir, "report.json").read_text())
    assert status == "converted", (name, status)
    assert {(a["format"], a["precision"]) for a in report["artifacts"]} == {(t, "fp32") for t in TARGETS[name]}
    tfopt.convert(source, str(tmp_path / "ref"), to=TARGETS[name], report_runs=1)
    expected = files_of(str(tmp_path / "ref"))
    assert {"manifest.json", *(f"model.fp32.{t}" for t in TARGETS[name])} <= set(expected)
    assert files_of(outdir) == expected  # artifacts and manifest.json (verification errors included)


def test_a_task_that_kills_its_worker_fails_its_model_only(fleet):
    result = fleet["first"]
    assert result.exit_code == 1
    assert {m.name: m.status for m in result.models} == {"conv": "converted", "crash": "failed"}
    prepare = _task(result, "crash", "prepare")
    assert prepare.status == "failed" and prepare.retries == 1, prepare
    assert "exited with status 3" in prepare.error and prepare.log_tail
    assert _task(result, "crash", "finish").status == "skipped"
    assert not os.path.exists(os.path.join(fleet["out"], "crash"))  # never half-written


def test_the_fleet_report_lists_every_artifact_and_the_crash(fleet):
    """OUTROOT/fleet.{json,md,html} and the JUnit file, from the first run (before the reruns below)."""
    import xml.etree.ElementTree as ET

    from tfopt.fleet.report import read_fleet_report

    out = fleet["out"]
    read = read_fleet_report(os.path.join(out, "fleet.json"))
    assert {m.name: m.status for m in read.models} == {m.name: m.status for m in fleet["first"].models}
    assert read.exit_code == 1
    suites = {s.get("name"): s for s in ET.parse(os.path.join(out, "fleet-junit.xml")).getroot()}
    assert set(suites) == {*GOOD, "crash"}
    assert all(int(suites[n].get("failures")) == 0 and int(suites[n].get("tests")) == len(TARGETS[n]) for n in GOOD)
    assert int(suites["crash"].get("failures")) >= 1
    from tfopt.report.svg import SCRIPT

    html = pathlib.Path(out, "fleet.html").read_text().replace(SCRIPT, "")  # the charts' own few lines
    assert "crash" in html and "<script" not in html and "http" not in html.split("</style>")[-1]
    assert "| crash |" in pathlib.Path(out, "fleet.md").read_text()


def test_latency_is_measured_in_isolation_and_the_reports_say_so(fleet):
    """Each model's finish task (which times its artifacts) ran with no other task beside it."""
    result = fleet["first"]
    finishes = [t for t in result.tasks if t.kind == "finish" and t.status == "ok"]
    assert len(finishes) == len(GOOD) and all(t.parallel == 0 for t in finishes), finishes
    assert {m.name: m.latency for m in result.models if m.report} == dict.fromkeys(GOOD, "isolated")
    for name in ("fleet.md", "fleet.html"):
        assert "latency: measured in isolation" in pathlib.Path(fleet["out"], name).read_text()
    assert max(t.parallel for t in result.tasks) >= 1  # the other tasks did run side by side (--jobs 2)


def test_fleet_html_chart_renders_in_chromium(fleet, tmp_path):
    """fleet.html in headless Chromium: a bar per model (its tasks' seconds by kind) with its status."""
    from tests.browser import check_charts, render

    page = render(os.path.join(fleet["out"], "fleet.html"), str(tmp_path / "profile"))
    check_charts(page, ticks=2, legend=3)
    (chart,) = page.charts
    assert chart.legend == ["prepare", "emit", "finish"]
    ran = {(t.model, t.kind) for t in fleet["first"].tasks if t.seconds > 0}
    assert chart.marks == len(ran) >= 4  # conv: prepare + emit + finish; crash: its prepare
    for model in fleet["first"].models:
        assert f"{model.status}, " in page.dom


def test_a_rerun_converts_nothing(fleet):
    out = fleet["out"]
    mtimes = {n: os.path.getmtime(os.path.join(out, n, "report.json")) for n in GOOD}
    again = run_fleet(fleet["manifest"], out, jobs=2, only=GOOD)
    assert again.exit_code == 0 and again.tasks == []
    assert {m.status for m in again.models} == {"up-to-date"}
    assert {n: os.path.getmtime(os.path.join(out, n, "report.json")) for n in GOOD} == mtimes


@pytest.mark.slow  # ~40 s of CPU (four worker processes and a tf2onnx child, each importing TensorFlow); the fast
# lane: tests/fleet/test_safe_cache.py's test_a_new_precision_reruns_only_its_tasks_and_hits_the_prepare_cache (the
# stamp, the prepare cache, the driver's shortcut that run_fleet reports as cached, the same bytes), in one process
def test_a_new_precision_reruns_only_its_tasks_and_hits_the_prepare_cache(fleet):
    text = pathlib.Path(fleet["manifest"]).read_text().replace("path: conv.keras\n", "path: conv.keras\n  quantize: [fp32, fp16]\n", 1)
    manifest = os.path.join(str(fleet["root"]), "fp16.yaml")
    with open(manifest, "w") as f:
        f.write(text)
    before = files_of(os.path.join(fleet["out"], "conv"))
    result = run_fleet(manifest, fleet["out"], jobs=2, only=["conv"])
    assert result.exit_code == 0, result
    assert {"optimize", "statistics"} <= set(_task(result, "conv", "prepare").cache_hits)
    for target in TARGETS["conv"]:
        assert _task(result, "conv", "emit", target, "fp32").status == "cached"
        assert _task(result, "conv", "emit", target, "fp16").status == "ok"
    after = files_of(os.path.join(fleet["out"], "conv"))
    fp32 = [f"model.fp32.{t}" for t in TARGETS["conv"]]
    assert {k: after[k] for k in fp32} == {k: before[k] for k in fp32}
    assert {f"model.fp16.{t}" for t in TARGETS["conv"]} <= set(after)


@pytest.mark.slow  # ~50 s of CPU (six worker processes); the fast lane: tests/fleet/test_safe_cache.py's
# test_a_corrupt_cache_entry_is_rebuilt_not_used (the same corruption, what each worker runs, in one process)
def test_a_corrupt_cache_entry_is_rebuilt_not_used(fleet):
    assert run_fleet(fleet["manifest"], fleet["out"], jobs=2, only=["mlp"]).exit_code == 0  # (not in the first run)
    entries = glob.glob(os.path.join(fleet["out"], ".tfopt-cache", VERSION, "optimize", "*", "*", "portable.pb"))
    assert entries
    for path in entries:
        with open(path, "r+b") as f:
            f.seek(10)
            f.write(b"\xff\xff\xff\xff")
    before = files_of(os.path.join(fleet["out"], "mlp"))
    result = run_fleet(fleet["manifest"], fleet["out"], jobs=2, only=["mlp"], force=True)
    assert result.exit_code == 0
    assert "optimize" not in _task(result, "mlp", "prepare").cache_hits  # found corrupt: rebuilt
    assert files_of(os.path.join(fleet["out"], "mlp")) == before
    rebuilt = [p for p in glob.glob(os.path.join(fleet["out"], ".tfopt-cache", VERSION, "optimize", "*", "*", "portable.pb"))
               if os.path.getmtime(p) > time.time() - 600]
    assert rebuilt


def test_a_hung_task_is_ended_by_its_timeout(fleet):
    start = time.perf_counter()
    result = run_fleet(fleet["manifest"], fleet["out"], jobs=1, only=["hang"], task_timeout=5, retries=0)
    assert time.perf_counter() - start < 120
    prepare = _task(result, "hang", "prepare")
    assert prepare.status == "timeout" and "--task-timeout 5" in prepare.error
    assert result.exit_code == 1 and result.models[0].status == "failed"
    assert not os.path.exists(os.path.join(fleet["out"], "hang"))
