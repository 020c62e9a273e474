"""The fleet benchmark's model building (scripts/benchmark_fleet.py): three formats, each loadable,
a manifest naming them. The timed fleet runs are the benchmark's own, not a test's."""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from tfopt.loaders import load

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from benchmark_fleet import build_fleet


@pytest.mark.slow  # ~10 s CPU, but TF model building is 30-50 s wall on a loaded machine
def test_build_fleet_three_formats(tmp_path):
    manifest = build_fleet(str(tmp_path), 3, steps=1)
    with open(manifest) as f:
        body = yaml.safe_load(f)
    assert body["defaults"]["to"] == ["tflite", "onnx", "openvino"]
    paths = [os.path.join(tmp_path, m["path"]) for m in body["models"]]
    assert [os.path.splitext(p)[1] for p in paths] == [".keras", "", ".pb"]
    assert os.path.isfile(os.path.join(paths[1], "saved_model.pb"))
    assert len({m["name"] for m in body["models"]}) == 3
    for path in paths:
        model = load(path)
        assert [s.name for s in model.inputs] == ["images"] and len(model.outputs) == 1
