"""The fleet on models with tensors outside their graph (``--external-threshold``): the serving
SavedModel the TFLite and OpenVINO converters read is one cache entry per model, written by the
prepare task; no task writes into the hash-checked ``optimize`` entry or holds its own copy of the
weights; the external files of the stored graphs are links, not copies; every artifact is verified
against the original, and the report counts every file of each artifact."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import yaml

from tests.external.conftest import THRESHOLD, Table, recommender, tf1_checkpoint
from tfopt._tf import tf
from tfopt.fleet.cache import Cache, tree_files

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")

ATOL = 1e-5  # float32 end to end: only summation order differs


def _entries(cache_root: str) -> list[tuple[str, str, str]]:
    """(stage, key, directory) of every entry in the cache."""
    root = os.path.join(cache_root, "v2")
    return [(stage, key, os.path.join(root, stage, prefix, key)) for stage in sorted(os.listdir(root))
            for prefix in os.listdir(os.path.join(root, stage)) for key in os.listdir(os.path.join(root, stage, prefix))
            if not key.startswith(".")]


def _weight_copies(root: str, name: str) -> int:
    """How many distinct files (by inode) under ``root`` are named ``name``-like: ``variables.data-*``."""
    found = set()
    for d, _, files in os.walk(root):
        for f in files:
            if f.startswith(name):
                st = os.stat(os.path.join(d, f))
                found.add((st.st_dev, st.st_ino))
    return len(found)


def _write(directory, kind: str, size: int) -> dict:
    """One model of ``kind`` in ``directory``; its manifest entry."""
    if kind in ("keras", "h5"):
        path = os.path.join(directory, f"rec{size}.{kind}")
        with warnings.catch_warnings():  # tf_keras: "HDF5 ... is considered legacy": the format under test
            warnings.simplefilter("ignore", UserWarning)
            recommender(size, 8, 16, keras2=kind == "h5").save(path)
        return {"name": f"{kind}{size}", "path": os.path.basename(path)}
    if kind == "savedmodel":
        module, path = Table(size, 16, seed=size), os.path.join(directory, f"sm{size}")
        tf().saved_model.save(module, path, signatures={"serving_default": module.serve})
        return {"name": f"sm{size}", "path": os.path.basename(path)}
    os.makedirs(os.path.join(directory, f"ckpt{size}"))
    prefix = tf1_checkpoint(os.path.join(directory, f"ckpt{size}"), size, resource=True)
    return {"name": f"tf1{size}", "path": os.path.relpath(prefix + ".meta", directory), "outputs": ["probs"]}


@pytest.mark.slow
@pytest.mark.parametrize("models", [[("keras", 500), ("tf1", 900)], [("h5", 600), ("savedmodel", 700)]],
                         ids=["keras3-tf1ckpt", "keras2h5-savedmodel"])
def test_fleet_converts_models_with_external_tensors(tmp_path, models):
    from tfopt.fleet.run import run_fleet

    entries = [_write(str(tmp_path), kind, size) for kind, size in models]
    manifest = str(tmp_path / "fleet.yaml")
    with open(manifest, "w") as f:
        yaml.safe_dump({"defaults": {"to": "tflite,onnx,openvino", "report_runs": 1, "external_threshold": THRESHOLD},
                        "models": entries}, f)
    out = str(tmp_path / "out")
    result = run_fleet(manifest, out, jobs=2)
    assert {m.name: m.status for m in result.models} == {e["name"]: "converted" for e in entries}, \
        [(m.name, m.error) for m in result.models]
    finish = [t for t in result.tasks if t.kind == "finish"]
    assert all({"optimize", "statistics"} <= set(t.cache_hits) for t in finish), finish  # nothing was rebuilt
    emits = [t for t in result.tasks if t.kind == "emit"]
    assert emits and all("recording" in t.cache_hits for t in emits), emits  # none loaded the original

    cache = Cache(os.path.join(out, ".tfopt-cache"))
    stages = [stage for stage, _, _ in _entries(cache.root)]
    assert stages.count("serving") == len(entries)  # one serving SavedModel per model ...
    assert _weight_copies(cache.root, "variables.data") == len(entries)  # ... and no other anywhere
    for stage, key, directory in _entries(cache.root):
        assert cache.get(stage, key) == directory, f"{stage}/{key}: changed after it was written"
        if stage == "optimize":  # both graphs' external tensors: one file each, never inlined in the .npz
            with open(os.path.join(directory, "entry.json")) as f:
                assert sorted(json.load(f)["files"]) == [f for f in tree_files(directory) if f != "entry.json"]
            assert os.listdir(os.path.join(directory, "external"))
    for model in result.models:
        _check_outputs(model)


def _check_outputs(model) -> None:
    """Every artifact verified within ATOL of the original, its size counting all its files."""
    from tfopt.targets import TABLE

    with open(os.path.join(model.outdir, "manifest.json")) as f:
        manifest = json.load(f)
    assert not manifest["failed"], manifest["failed"]
    assert {a["format"] for a in manifest["artifacts"]} == {"tflite", "onnx", "openvino"}
    for artifact in manifest["artifacts"]:
        assert artifact["max_abs_err"] is not None and artifact["max_abs_err"] <= ATOL, artifact
        path = os.path.join(model.outdir, artifact["path"])
        record = TABLE[artifact["format"]]
        files = ([os.path.join(os.path.dirname(path), f) for f in os.listdir(os.path.dirname(path))]
                 if record.marker else [path, *(p for p in record.companion_files(path) if os.path.exists(p))])
        assert artifact["bytes"] == sum(os.path.getsize(p) for p in files), artifact  # ONNX: its .data too
    with open(os.path.join(model.outdir, "report.json")) as f:
        report = json.load(f)
    for row in report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row
        median = row["latency_ms"]["median"]
        assert row["latency_ms"]["runs"] >= 1 and np.isfinite(median) and median > 0, row


# The .keras model in the slow lane: the stored entry left as written is the same check for it, and
# tests/fleet/test_run.py emits .keras models from the cache; the TF1 checkpoint (a serving SavedModel
# built from a session graph) is the fleet's only fast TF1 emit.
@pytest.mark.parametrize("kind,size", [pytest.param("keras", 300, marks=pytest.mark.slow), ("tf1", 700)])
def test_emit_from_a_stored_model_leaves_its_entry_as_written(tmp_path, kind, size):
    """What an emit task does: read the stored graphs from the cache, convert with the serving
    SavedModel the prepare task stored (one entry, written once), verify against the original.
    The ``optimize`` entry stays as written (it is hash-checked: a file added to it made the next
    reader rebuild the model)."""
    from types import SimpleNamespace

    from tfopt.conversion.pipeline import optimize_model
    from tfopt.conversion.stages import Prepared
    from tfopt.conversion.store import load_prepared, save_graphs
    from tfopt.external.emit import emit_large
    from tfopt.fleet.serving import provide_serving
    from tfopt.runtimes import runner_for
    from tfopt.verification.testing import random_inputs

    entry = _write(str(tmp_path), kind, size)
    source = os.path.join(str(tmp_path), entry["path"])
    portable, runtime, freeze, optimize = optimize_model(source, external_threshold=THRESHOLD,
                                                         **({"outputs": entry["outputs"]} if "outputs" in entry else {}))
    cache = Cache(str(tmp_path / "cache"))
    with cache.put("optimize", "k" * 64) as tmp:
        save_graphs(Prepared(portable, runtime, freeze, optimize, False, None, freeze.verified_at), tmp)
    pairs = [("tflite", "fp32"), ("openvino", "dynamic")]
    stored = cache.get("optimize", "k" * 64)
    for _ in range(2):  # the prepare task, then an emit task: one entry, written once
        model = load_prepared(stored, None).portable
        written = provide_serving(cache, "k" * 64, pairs, model)
    assert provide_serving(cache, "k" * 64, pairs, portable) == written  # the graph as frozen: the same entry
    assert provide_serving(cache, "k" * 64, [("onnx", "fp32")], model) is None  # onnx reads the graph itself
    for target, precision in pairs:
        path = str(tmp_path / f"{target}.{precision}")
        out = emit_large(target, SimpleNamespace(portable=model, path=path + (".tflite" if target == "tflite" else ""),
                                                 precision=precision, quantize=None, quantization_aware=False))
        runner = runner_for(target, out, portable)
        try:
            for seed in (0, 1):
                feeds = random_inputs(portable.inputs, seed=seed, graph_def=portable.graph_def)
                expected, got = portable.reference(feeds), runner(feeds)
                for spec in portable.outputs:  # dynamic: int8 weights, one scale per row (OpenVINO)
                    np.testing.assert_allclose(got[spec.name], expected[spec.name], rtol=0,
                                               atol=ATOL if precision == "fp32" else 0.05, err_msg=spec.name)
        finally:
            runner.close()
    assert cache.get("optimize", "k" * 64) == stored  # nothing added to the hash-checked entry
    assert [s for s, _, _ in _entries(cache.root)].count("serving") == 1
    assert _weight_copies(cache.root, "variables.data") == 1 and written.startswith(cache.root)
    external = os.path.join(stored, "external")
    assert sum(os.path.getsize(os.path.join(external, f)) for f in os.listdir(external)) == portable.external.nbytes
    stored_files = {os.stat(os.path.join(external, f)).st_ino for f in os.listdir(external)}
    assert {os.stat(portable.external[n].path).st_ino for n in portable.external} == stored_files  # linked, not copied
