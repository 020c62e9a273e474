"""The fleet on models with tensors outside their graph (``--external-threshold``): the prepare task
records the original's outputs once (cache stage ``recording``: JSON + ``.npz``), and the emit and
finish tasks verify and measure every artifact against that recording without loading the original
(one copy of the weights per model, not per task). Shown with a loader that refuses every call once
the prepare task is done; every artifact still verifies within the float32 bound, and the recording
holds the original's own outputs.

The tasks run in this process (:func:`tfopt.fleet.tasks.run_task`, what each worker runs), in the
plan's order."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from tests.fleet.test_serving import ATOL, _write
from tfopt.fleet.cache import Cache
from tfopt.fleet.manifest import fingerprint, load_manifest
from tfopt.fleet.plan import model_tasks
from tfopt.fleet.tasks import run_task

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")

THRESHOLD = 4096  # bytes: every table/kernel of the generated models is over it ("large"), every bias under it


def _tasks(tmp_path, entry: dict, to: str):
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(yaml.safe_dump({"defaults": {"to": to, "report_runs": 1, "external_threshold": THRESHOLD},
                                        "models": [entry]}))
    [model] = load_manifest(str(manifest))
    out = str(tmp_path / "out")
    os.makedirs(out)
    return model_tasks(model, 0, os.path.join(out, model.name), stamp=fingerprint(model.options),
                       cache=os.path.join(out, ".tfopt-cache"), logs=os.path.join(out, "logs"), overwrite=True)


def _stage_entries(cache: Cache, stage: str) -> list[str]:
    root = os.path.join(cache.root, "v2", stage)
    return [os.path.join(root, a, b) for a in os.listdir(root) for b in os.listdir(os.path.join(root, a))
            if not b.startswith(".")] if os.path.isdir(root) else []


# One fast case with every target; the other formats' recordings are the same record_and_release, proven
# per format by tests/conversion/test_release.py: their fleet runs are in the slow lane.
@pytest.mark.parametrize("kind,size,to", [("savedmodel", 300, "tflite,onnx,openvino"),
                                          pytest.param("keras", 400, "onnx,openvino", marks=pytest.mark.slow),
                                          pytest.param("tf1", 500, "tflite,openvino", marks=pytest.mark.slow)])
def test_emit_and_finish_never_load_the_original(tmp_path, monkeypatch, kind, size, to):
    import tfopt.loaders
    from tfopt.conversion import store_format
    from tfopt.conversion.store import load_prepared
    from tfopt.verification.verify import reference_outputs, reference_runner

    entry = _write(str(tmp_path), kind, size)
    tasks = _tasks(tmp_path, entry, to)
    loader = tfopt.loaders.load
    calls: list[str] = []

    def refuse(path, **_):
        calls.append(str(path))
        raise AssertionError(f"the original {path} was loaded after the prepare task")

    cwd = os.getcwd()
    try:
        outcomes = {}
        for task in tasks:
            outcomes[task.id] = run_task(task.spec)
            if task.kind == "prepare":  # from now on the original cannot be loaded
                monkeypatch.setattr(tfopt.loaders, "load", refuse)
    finally:
        os.chdir(cwd)
    assert not calls
    finish = outcomes[tasks[-1].id]
    assert finish["model_status"] == "converted", finish
    assert all("recording" in outcomes[t.id]["cache_hits"] for t in tasks if t.kind == "emit")

    outdir = tasks[-1].spec["outdir"]
    with open(os.path.join(outdir, "manifest.json")) as f:
        manifest = json.load(f)
    assert not manifest["failed"] and {a["format"] for a in manifest["artifacts"]} == set(to.split(","))
    for artifact in manifest["artifacts"]:
        assert artifact["max_abs_err"] is not None and artifact["max_abs_err"] <= ATOL, artifact
    with open(os.path.join(outdir, "report.json")) as f:
        report = json.load(f)
    assert len(report["artifacts"]) == len(manifest["artifacts"])
    for row in report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row

    # the recording is data only, and it is the original's own outputs on the inputs verified on
    cache = Cache(tasks[0].spec["cache"])
    [recorded] = _stage_entries(cache, "recording")
    assert sorted(f for f in os.listdir(recorded) if f != "entry.json") == ["recording.json", "recording.npz"]
    [graphs] = _stage_entries(cache, "optimize")
    prepared = load_prepared(graphs, None)
    original = loader(os.path.join(str(tmp_path), entry["path"]),
                      **({"outputs": entry["outputs"]} if "outputs" in entry else {}))
    state = store_format.load(recorded, "recording")
    sets = prepared.verified_at.sets()
    assert len(state["sets"]) == len(sets) >= 1
    for inputs_at, outputs in zip(sets, state["sets"], strict=True):
        expected = reference_outputs(original, inputs_at)
        assert set(outputs) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(outputs[name], value, rtol=0, atol=1e-6, err_msg=name)
    report = state["report"]  # the report's part: the original's outputs on the report's inputs
    got = reference_runner(original)({**report.inputs, **(original.bindings if original.reference else {})})
    for name, value in report.expected.items():
        np.testing.assert_allclose(value, got[name], rtol=0, atol=ATOL, err_msg=name)
