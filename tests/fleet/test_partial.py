"""A partial model in a fleet (issue 24, class 8), as ``tfopt convert`` treats it: the targets that
build are written and verified, the one that cannot is a ``failed`` row naming the reason, the
model is ``partial`` and the fleet exits 11; with ``all_or_nothing`` the model fails (exit 1) and
nothing is written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from tests.helpers import graph_pb
from tfopt.fleet.rows import exit_code, rows, summary
from tfopt.fleet.run import run_fleet


def _erf(tf):  # TFLite's builtins lack Erf; OpenVINO runs it
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    w = tf.constant(np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))
    tf.identity(tf.math.erf(tf.matmul(x, w)), name="y")


@pytest.mark.slow  # ~90 s a case: one worker process per task, each importing TensorFlow
@pytest.mark.parametrize("all_or_nothing", [False, True], ids=["partial", "all-or-nothing"])
def test_a_partial_model_is_consistent_with_convert(all_or_nothing, tmp_path):
    graph_pb(tmp_path / "erf.pb", _erf)
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(yaml.safe_dump({"defaults": {"to": "tflite,openvino", "report_runs": 1,
                                                     "all_or_nothing": all_or_nothing},
                                        "models": [{"name": "erf", "path": "erf.pb"}]}))
    out = tmp_path / "out"
    result = run_fleet(str(manifest), str(out), jobs=1)
    (model,) = result.models
    by_target = {r.target: r for r in rows(result) if r.kind == "emit"}
    if all_or_nothing:
        assert model.status == "failed" and exit_code(result) == 1 and "Erf" in model.error
        assert not (out / "erf").exists()
        return
    assert model.status == "partial" and exit_code(result) == result.exit_code == 11, model
    assert summary(result)["models_partial"] == 1
    assert by_target["tflite"].status == "failed" and "Erf" in by_target["tflite"].message
    assert by_target["openvino"].status == "ok" and by_target["openvino"].max_abs_err <= 1e-5
    with open(out / "erf" / "manifest.json") as f:
        written = json.load(f)
    assert [a["format"] for a in written["artifacts"]] == ["openvino"]
    assert [(f["format"], f["stage"]) for f in written["failed"]] == [("tflite", "converting")]
    assert not any(name.endswith(".tflite") for name in os.listdir(out / "erf"))
