"""The manifest's sizes are computed beside the next artifacts' builds (a background thread; once all
are built, the main thread takes those the thread has not started) and are exactly the sizes of the
files written: bytes, and gzip level 9 of every file."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.conversion.convert import convert
from tfopt.conversion.parts import Artifact
from tfopt.conversion.sizes import BackgroundSizes
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
    on_main = {}
    real = build.artifact_sizes

    def observed(fmt, path):
        on_main[os.path.basename(path)] = threading.current_thread() is threading.main_thread()
        return real(fmt, path)
    monkeypatch.setattr(build, "artifact_sizes", observed)
    import tfopt.conversion.sizes as sizes

    monkeypatch.setattr(sizes, "artifact_sizes", observed)
    out = str(tmp_path / "out")
    result = convert(_net(width, seed), out, to=targets, quantize=["fp32", "fp16"], verify=False)
    assert len(result.artifacts) == 2 * len(targets)
    assert len(on_main) == len(result.artifacts)  # each measured once
    # while artifacts are built the main thread measures none (it builds the next one): the first is
    # the thread's; at the end it takes the newest ones the thread has not started, a tail of the order
    order = [on_main[a.path.split("/")[0]] for a in result.artifacts]  # an IR: its directory is measured
    assert not order[0] and order == sorted(order), order
    for artifact in result.artifacts:
        written = os.path.join(out, artifact.path)
        assert (artifact.bytes, artifact.gzip_bytes) == real(artifact.format, written), artifact
        assert artifact.gzip_bytes > 0



def _files(tmp_path, count):
    rng = np.random.default_rng(count)
    paths = [str(tmp_path / f"model{i}.tflite") for i in range(count)]
    for i, path in enumerate(paths):
        with open(path, "wb") as f:
            f.write(rng.integers(0, 4, 20_000 + 997 * i, dtype=np.uint8).tobytes())
    return paths


def _settle_held(monkeypatch, paths, kept, *, removed=None):
    """Measure every file in the background, the thread held on its first job until the main thread
    measured the second (the last it can take, newest first); remove ``removed`` (a failed artifact), then settle the first ``kept`` artifacts.
    Returns (artifacts, path -> measured on the main thread)."""
    import tfopt.conversion.sizes as sizes

    release, on_main = threading.Event(), {}

    def held(fmt, path):
        on_main[path] = threading.current_thread() is threading.main_thread()
        if on_main[path] and path == paths[1]:
            release.set()
        elif not on_main[path]:
            release.wait(timeout=5)  # the thread's first job waits until the main thread took the rest
        return build.artifact_sizes(fmt, path)
    monkeypatch.setattr(sizes, "artifact_sizes", held)
    artifacts = [Artifact("tflite", "fp32", os.path.basename(p), 0, 0, "") for p in paths]
    with BackgroundSizes() as background:
        for artifact, path in zip(artifacts, paths):
            background.measure(artifact, "tflite", path)
        if removed is not None:
            os.remove(removed)
        background.settle(artifacts[:kept])
    return artifacts, on_main


@pytest.mark.parametrize("count", [3, 5])
def test_settle_measures_what_the_thread_has_not_started(count, tmp_path, monkeypatch):
    """The thread holds the oldest artifact; settle() measures every newer one on the main thread
    (newest first), then takes the oldest's from the thread: each artifact's sizes are its file's."""
    paths = _files(tmp_path, count)
    artifacts, on_main = _settle_held(monkeypatch, paths, count)
    assert on_main == {p: i > 0 for i, p in enumerate(paths)}
    assert [(a.bytes, a.gzip_bytes) for a in artifacts] == [build.artifact_sizes("tflite", p) for p in paths]


def test_settle_skips_a_failed_artifact_not_started(tmp_path, monkeypatch):
    """An artifact measured but not kept (it failed verification, its file removed) and not started
    by the thread is never measured: no read of a removed file."""
    paths = _files(tmp_path, 3)
    expected = [build.artifact_sizes("tflite", p) for p in paths[:2]]
    artifacts, on_main = _settle_held(monkeypatch, paths, 2, removed=paths[2])
    assert paths[2] not in on_main
    assert [(a.bytes, a.gzip_bytes) for a in artifacts[:2]] == expected
