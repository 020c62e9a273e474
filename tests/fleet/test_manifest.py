"""The fleet manifest: defaults merged, paths made absolute, every key checked against
``ConvertOptions`` (a wrong key names the closest valid one)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tfopt.errors import OptionError
from tfopt.fleet.manifest import fingerprint, load_manifest


def _write(tmp_path, manifest):
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def test_defaults_merge_and_paths_are_relative_to_the_manifest(tmp_path):
    path = _write(tmp_path, {"defaults": {"to": "tflite,onnx", "eval-data": "data/eval.npz"},
                             "models": [{"name": "a", "path": "m/a.keras", "calibration": "gen:samples"},
                                        {"name": "b", "path": "/abs/b.pb", "to": ["pb"]}]})
    a, b = load_manifest(path)
    assert a.options == {"to": ["tflite", "onnx"], "eval_data": str(tmp_path / "data" / "eval.npz"),
                         "path": str(tmp_path / "m" / "a.keras"), "calibration": "gen:samples"}
    assert b.options["to"] == ["pb"] and b.path == "/abs/b.pb" and a.base == str(tmp_path)
    assert fingerprint(a.options) != fingerprint(b.options)


@pytest.mark.parametrize(("manifest", "message"), [
    ({"models": [{"name": "a", "path": "a.keras", "quantise": "int8"}]},
     "models[0]: unknown option 'quantise'. Did you mean: quantize"),
    ({"defaults": {"calibraton": "c.npz"}, "models": [{"name": "a", "path": "a.keras"}]},
     "defaults: unknown option 'calibraton'. Did you mean: calibration"),
    ({"models": [{"name": "a", "path": "a.keras", "overwrite": True}]}, "the fleet's --overwrite flag"),
    ({"models": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, "'a' appears twice"),
    ({"models": [{"path": "x"}]}, "needs 'name' and 'path'"),
    ({"models": []}, "no models"),
], ids=["unknown-key", "unknown-default", "overwrite", "twice", "no-name", "empty"])
def test_a_bad_manifest_is_an_option_error(tmp_path, manifest, message):
    with pytest.raises(OptionError, match=None) as info:
        load_manifest(_write(tmp_path, manifest))
    assert message in str(info.value) and os.path.basename(str(tmp_path / "fleet.yaml")) in str(info.value)


@pytest.mark.parametrize("changed", ["model-file", "model-dir", "calibration", "eval-data"])
def test_changed_input_bytes_make_just_that_model_stale(tmp_path, changed):
    """The stamp holds the bytes of every input file the options name (a directory: each file in it):
    new bytes at the same path, the manifest unchanged, make that model stale and leave the other up to
    date. (scripts/convert_fleet.py's run of the story is tests/test_scripts.py's slow
    test_fleet_converts_then_resumes.)"""
    from tfopt.fleet.plan import up_to_date
    from tfopt.fleet.tasks import STAMP

    (tmp_path / "sm" / "variables").mkdir(parents=True)
    for rel in ("a.pb", "sm/saved_model.pb", "sm/variables/v.data", "b.pb", "cal.npz", "eval.npz"):
        (tmp_path / rel).write_bytes(rel.encode())
    path = _write(tmp_path, {"defaults": {"calibration": "cal.npz", "eval-data": "eval.npz"},
                             "models": [{"name": "a", "path": "sm" if changed == "model-dir" else "a.pb"},
                                        {"name": "b", "path": "b.pb", "calibration": "b.pb", "eval-data": "b.pb"}]})
    outdirs = {}
    for model in load_manifest(path):  # what a finished conversion leaves: its stamp, manifest and report
        outdirs[model.name] = out = tmp_path / "out" / model.name
        out.mkdir(parents=True)
        (out / STAMP).write_text(json.dumps({"fingerprint": fingerprint(model.options)}))
        (out / "manifest.json").write_text(json.dumps({"artifacts": []}))
        (out / "report.json").write_text("{}")
    stamps = {m.name: fingerprint(m.options) for m in load_manifest(path)}
    assert all(up_to_date(str(outdirs[n]), s) for n, s in stamps.items())
    target = {"model-file": "a.pb", "model-dir": "sm/variables/v.data", "calibration": "cal.npz",
              "eval-data": "eval.npz"}[changed]
    (tmp_path / target).write_bytes(b"other bytes")
    again = {m.name: fingerprint(m.options) for m in load_manifest(path)}
    assert again["b"] == stamps["b"] and up_to_date(str(outdirs["b"]), again["b"])
    assert again["a"] != stamps["a"] and not up_to_date(str(outdirs["a"]), again["a"])
