"""The fleet's cache holds data only (issue 26): every file JSON, ``.npz`` without object arrays,
protobuf or an artifact; a pickle planted in an entry (hash-checked, as a writer with access to a
shared cache could plant it) is never unpickled: the entry is rebuilt and the payload's marker file
never appears; a warm run hits every stage and writes the same files; a failed emit is not served
from the cache next run, it is tried again.

The tasks run in this process (:func:`tfopt.fleet.tasks.run_task`, what each worker runs), in the
plan's order, so one TensorFlow serves every run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import yaml

from tests.fleet.fleet_models import files_of, run_tasks_here
from tests.helpers import graph_pb
from tfopt.fleet.cache import ENTRY, VERSION, Cache, file_sha256, tree_files
from tfopt.fleet.manifest import fingerprint, load_manifest
from tfopt.fleet.plan import up_to_date

DATA_SUFFIXES = (".json", ".npz", ".pb", ".tflite", ".onnx")


class Payload:
    """Unpickling this creates ``marker``: what a hostile cache writer could run on every reader."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _mlp(units):
    def build(tf):
        rng = np.random.default_rng(units)
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant(rng.normal(size=(4, units)).astype(np.float32))
        tf.nn.relu(tf.matmul(x, w) + tf.constant(rng.normal(size=units).astype(np.float32)), name="y")
    return build


def _erf(tf):  # TFLite's builtins lack Erf: that emit fails, ONNX's builds
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    w = tf.constant(np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))
    tf.identity(tf.math.erf(tf.matmul(x, w)), name="y")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    graph_pb(root / "mlp.pb", _mlp(3))
    np.savez(root / "cal.npz", x=np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32))
    graph_pb(root / "erf.pb", _erf)
    manifest = root / "fleet.yaml"
    manifest.write_text(yaml.safe_dump({
        "defaults": {"report_runs": 1},
        "models": [{"name": "mlp", "path": "mlp.pb", "to": ["tflite"], "quantize": ["fp32", "int8"],
                    "calibration": "cal.npz"},
                   {"name": "erf", "path": "erf.pb", "to": ["tflite", "onnx"], "quantize": ["fp32"]}]}))
    cache = str(root / "cache")
    cold = {m: run_tasks_here(manifest, root / "cold", cache, m) for m in ("mlp", "erf")}
    return {"root": root, "manifest": manifest, "cache": cache, "cold": cold}


def _entries(cache, stage):
    root = os.path.join(cache, VERSION, stage)
    return sorted(os.path.join(root, a, b) for a in os.listdir(root) for b in os.listdir(os.path.join(root, a))
                  if not b.startswith(".")) if os.path.isdir(root) else []


def test_every_file_in_the_cache_is_data(fleet):
    files = [os.path.join(d, f) for d, _, names in os.walk(fleet["cache"]) for f in names]
    assert files and {os.path.splitext(f)[1] for f in files} >= {".json", ".npz", ".pb"}
    for path in files:
        assert path.endswith(DATA_SUFFIXES), path
        with open(path, "rb") as f:
            assert not f.read(1).startswith(b"\x80"), f"{path} starts with a pickle protocol header"
        if path.endswith(".json"):
            with open(path) as f:
                json.load(f)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as arrays:
                assert all(not arrays[k].dtype.hasobject for k in arrays.files)
            with zipfile.ZipFile(path) as z:  # every member a .npy (magic \x93NUMPY), no pickle inside
                assert all(z.read(n).startswith(b"\x93NUMPY") for n in z.namelist())


def test_a_warm_run_hits_every_stage_and_writes_the_same_files(fleet, tmp_path):
    cold, warm = fleet["cold"]["mlp"], run_tasks_here(fleet["manifest"], tmp_path, fleet["cache"], "mlp")
    prepare = next(o for t, o in warm["outcomes"].items() if t.endswith("/prepare"))
    assert set(prepare["cache_hits"]) == {"optimize", "statistics"}
    assert len(warm["shortcuts"]) == 2 and all(s is not None for s in warm["shortcuts"].values())
    assert all("emit" in o["cache_hits"] for t, o in warm["outcomes"].items() if "/emit/" in t)
    assert all(o["model_status"] == "converted" for t, o in warm["outcomes"].items() if t.endswith("/finish"))
    expected = files_of(cold["outdir"])
    assert {"model.fp32.tflite", "model.int8.tflite", "manifest.json"} <= set(expected)
    assert files_of(warm["outdir"]) == expected


def _plant(entry, rel, payload: bytes) -> None:
    """Write ``payload`` as the entry's file ``rel`` and re-hash ``entry.json``: the entry passes the
    cache's hash check, as one written by a hostile writer of a shared cache would."""
    with open(os.path.join(entry, rel), "wb") as f:
        f.write(payload)
    with open(os.path.join(entry, ENTRY)) as f:
        document = json.load(f)
    document["files"] = {r: file_sha256(os.path.join(entry, r)) for r in tree_files(entry) if r != ENTRY}
    with open(os.path.join(entry, ENTRY), "w") as f:
        json.dump(document, f)


def _object_npz(marker: str) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("stage,how", [("optimize", "pickle"), ("statistics", "pickle"), ("statistics", "npz")])
def test_a_pickle_planted_in_an_entry_never_runs(fleet, stage, how, tmp_path):
    marker = str(tmp_path / "pwned")
    live = str(tmp_path / "live")
    pickle.loads(pickle.dumps(Payload(live)))  # the payload is live: unpickled, it creates its marker
    assert os.path.exists(live)
    cache = shutil.copytree(fleet["cache"], str(tmp_path / "cache"))
    entries = _entries(cache, stage)
    for entry in entries:
        if how == "pickle":  # every metadata file of the entry (not a graph) becomes the pickle
            for rel in [r for r in tree_files(entry) if r != ENTRY and not r.endswith((".pb", ".npz"))]:
                _plant(entry, rel, pickle.dumps({"qat": False, "payload": Payload(marker)}))
        else:
            for rel in [r for r in tree_files(entry) if r.endswith(".npz")]:
                _plant(entry, rel, _object_npz(marker))
    again = run_tasks_here(fleet["manifest"], tmp_path / "again", cache, "mlp")
    assert not os.path.exists(marker), "a planted pickle was executed"
    prepare = next(o for t, o in again["outcomes"].items() if t.endswith("/prepare"))
    assert stage not in prepare["cache_hits"]  # found foreign: rebuilt, not used
    assert files_of(again["outdir"]) == files_of(fleet["cold"]["mlp"]["outdir"])
    assert any(Cache(cache).get(stage, os.path.basename(e)) is not None for e in entries)  # rebuilt in place


def test_a_failed_emit_is_tried_again_not_served(fleet, tmp_path):
    cold = fleet["cold"]["erf"]["outcomes"]
    assert cold["erf/finish"]["model_status"] == "partial"
    assert cold["erf/emit/tflite/fp32"]["record"]["failed"] and not cold["erf/emit/onnx/fp32"]["record"]["failed"]
    for entry in _entries(fleet["cache"], "emit"):  # no failure among the results the cache serves
        with open(os.path.join(entry, "emit.json")) as f:
            assert not json.load(f)["failed"]
    warm = run_tasks_here(fleet["manifest"], tmp_path, fleet["cache"], "erf")
    assert warm["shortcuts"]["erf/emit/onnx/fp32"] is not None
    assert warm["shortcuts"]["erf/emit/tflite/fp32"] is None  # the driver does not serve the failure
    tflite = warm["outcomes"]["erf/emit/tflite/fp32"]
    assert "emit" not in tflite["cache_hits"] and tflite["record"]["failed"]  # tried again, failed again
    assert "emit" in warm["outcomes"]["erf/emit/onnx/fp32"]["cache_hits"]
    assert warm["outcomes"]["erf/finish"]["model_status"] == "partial"
    with open(os.path.join(warm["outdir"], "manifest.json")) as f:
        written = json.load(f)
    assert [a["format"] for a in written["artifacts"]] == ["onnx"]
    assert [f["format"] for f in written["failed"]] == ["tflite"]


def test_a_new_precision_reruns_only_its_tasks_and_hits_the_prepare_cache(fleet, tmp_path):
    """Adding ``fp16`` to a converted model: its stamp changes (``run_fleet`` plans it again), the
    prepare task hits the optimize and statistics entries, the driver serves the fp32 and int8 emits
    from the cache (what ``run_fleet`` reports as ``cached``, no process) and only fp16 is emitted;
    the served artifacts are the cold run's bytes. (tests/fleet/test_run.py's slow twin runs it
    through ``run_fleet``'s worker processes.)"""
    root, cold = fleet["root"], fleet["cold"]["mlp"]
    manifest = root / "fp16.yaml"
    document = yaml.safe_load(fleet["manifest"].read_text())
    document["models"][0]["quantize"] = ["fp32", "int8", "fp16"]
    manifest.write_text(yaml.safe_dump(document))
    [before] = [m for m in load_manifest(str(fleet["manifest"])) if m.name == "mlp"]
    [after] = [m for m in load_manifest(str(manifest)) if m.name == "mlp"]
    assert up_to_date(cold["outdir"], fingerprint(before.options))
    assert not up_to_date(cold["outdir"], fingerprint(after.options))  # the model is planned again
    again = run_tasks_here(manifest, tmp_path, fleet["cache"], "mlp")
    assert {"optimize", "statistics"} <= set(again["outcomes"]["mlp/prepare"]["cache_hits"])
    served = {t for t, s in again["shortcuts"].items() if s is not None}
    assert served == {"mlp/emit/tflite/fp32", "mlp/emit/tflite/int8"}
    assert "emit" not in again["outcomes"]["mlp/emit/tflite/fp16"]["cache_hits"]  # the one new task
    expected, got = files_of(cold["outdir"]), files_of(again["outdir"])
    assert {k: got[k] for k in ("model.fp32.tflite", "model.int8.tflite")} == \
        {k: expected[k] for k in ("model.fp32.tflite", "model.int8.tflite")}
    assert "model.fp16.tflite" in got and "model.fp16.tflite" not in expected


def test_a_corrupt_cache_entry_is_rebuilt_not_used(fleet, tmp_path):
    """Bytes of an optimize entry's graph overwritten (its hash no longer matches): the entry is
    removed and rebuilt, never used, and the artifacts are the cold run's. (tests/fleet/test_run.py's
    slow twin does it through ``run_fleet``.)"""
    cache = shutil.copytree(fleet["cache"], str(tmp_path / "cache"))
    entries = [e for e in _entries(cache, "optimize") if os.path.exists(os.path.join(e, "portable.pb"))]
    assert entries
    for entry in entries:
        with open(os.path.join(entry, "portable.pb"), "r+b") as f:
            f.seek(10)
            f.write(b"\xff\xff\xff\xff")
    again = run_tasks_here(fleet["manifest"], tmp_path / "again", cache, "mlp")
    assert "optimize" not in again["outcomes"]["mlp/prepare"]["cache_hits"]  # found corrupt: rebuilt
    assert files_of(again["outdir"]) == files_of(fleet["cold"]["mlp"]["outdir"])
    rebuilt = [e for e in entries if Cache(cache).get("optimize", os.path.basename(e)) is not None]
    assert rebuilt  # written again in place, intact
