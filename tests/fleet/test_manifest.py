"""The fleet manifest: defaults merged, paths made absolute, every key checked against
``ConvertOptions`` (a wrong key names the closest valid one)."""

from __future__ import annotations

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
