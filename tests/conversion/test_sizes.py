"""The manifest's sizes are computed beside the next artifacts' builds (a background thread) and
are exactly the sizes of the files written: bytes, and gzip level 9 of every file."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.conversion.convert import convert
from tfopt.report import build

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file


def _net(width, seed):
    def make(t):
        rng = np.random.default_rng(seed)
        x = t.compat.v1.placeholder(t.float32, (None, 6, 6, 2), name="x")
        y = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 1, (3, 3, 2, width)).astype(np.float32), 1, "SAME"))
        t.identity(t.matmul(t.reduce_mean(y, axis=[1, 2]), rng.normal(0, 1, (width, 3)).astype(np.float32)),
                   name="out")
    return graph_model(make, {"x": (None, 6, 6, 2)}, ["out"])


@pytest.mark.parametrize(("width", "seed", "targets"), [(4, 0, ["tflite", "onnx"]), (7, 1, ["openvino", "tflite"]),
                                                        (5, 2, ["onnx", "openvino", "tflite"])])
def test_sizes_in_the_background_are_the_files_sizes(width, seed, targets, tmp_path, monkeypatch):
    threads = []
    real = build.artifact_sizes

    def observed(fmt, path):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(fmt, path)
    monkeypatch.setattr(build, "artifact_sizes", observed)
    import tfopt.conversion.sizes as sizes

    monkeypatch.setattr(sizes, "artifact_sizes", observed)
    out = str(tmp_path / "out")
    result = convert(_net(width, seed), out, to=targets, quantize=["fp32", "fp16"], verify=False)
    assert len(result.artifacts) == 2 * len(targets)
    assert threads == [False] * len(result.artifacts)  # none on the main thread, which builds the next artifact
    for artifact in result.artifacts:
        written = os.path.join(out, artifact.path)
        assert (artifact.bytes, artifact.gzip_bytes) == real(artifact.format, written), artifact
        assert artifact.gzip_bytes > 0
