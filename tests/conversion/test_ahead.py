"""Jobs sent ahead to the tf2onnx child (issue 25, conversion time): ``convert()`` sends the float
ONNX conversion as soon as the frozen graph exists (``ahead.send_ahead``) and the int8 engine's
graph as soon as the statistics exist (``ahead.send_engine_ahead``), and collects each at its ONNX
stage. Invariants: the jobs are in flight (sent, not collected) while the other targets' stages
run, and every file is byte-identical to the synchronous path's (each job sent at its ONNX stage).

The model class: NHWC convs with two-way branches (tf2onnx's transpose optimizer walks sets of
these nodes: the order its hashes give is what the child fixes), of several widths and depths, in
several target orders. Numbers: every artifact as ``convert()`` verified it against TensorFlow.
"""

from __future__ import annotations

import contextvars
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb

# the int8 case below sends the float job ahead too (two jobs in flight): the float-only orders are slow
FLOAT = [pytest.param(2, 1, ["tflite", "onnx", "openvino"], id="tflite-onnx-openvino", marks=pytest.mark.slow),
         pytest.param(3, 2, ["tflite", "onnx"], id="tflite-onnx", marks=pytest.mark.slow),  # ~40 s each, loaded
         pytest.param(4, 3, ["openvino", "tflite", "onnx"], id="openvino-tflite-onnx", marks=pytest.mark.slow)]
INT8 = [pytest.param(3, 2, ["tflite", "onnx", "openvino"], id="tflite-onnx-openvino"),
        pytest.param(2, 3, ["openvino", "onnx"], id="openvino-onnx", marks=pytest.mark.slow),
        pytest.param(4, 1, ["tflite", "openvino", "onnx"], id="tflite-openvino-onnx", marks=pytest.mark.slow)]
# against TensorFlow, as convert() verified them; int8: of the outputs' range (about 1 here), the engine's
# 8-bit (TFLite) and 7-bit (ONNX, OpenVINO) grids over three layers
BOUNDS = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.1}


def _convs(tmp_path, channels: int, blocks: int, batch: int | None = 1) -> str:
    """NHWC convs with two-way branches (tf2onnx's transpose optimizer walks sets of these nodes)."""
    rng = np.random.default_rng(channels * 10 + blocks)

    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, (batch, 8, 8, channels), name="x")
        for i in range(blocks):
            w = tf.constant(rng.standard_normal((3, 3, channels, channels)).astype(np.float32) * 0.2)
            y = tf.nn.conv2d(x, w, 1, "SAME")
            x = tf.identity(tf.nn.relu(y) + tf.sigmoid(y) * x, name=f"block{i}")
        tf.identity(tf.reduce_mean(x, axis=[1, 2]), name="y")

    return graph_pb(tmp_path / f"convs_{channels}_{blocks}.pb", build)


def _files(out: str) -> dict[str, bytes]:
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            if not name.startswith("report"):  # the report holds latencies
                with open(os.path.join(root, name), "rb") as f:
                    found[os.path.relpath(os.path.join(root, name), out)] = f.read()
    return found


def _ahead_and_synchronous(tmp_path, monkeypatch, source: str, order: list[str], **options):
    """``convert()`` with the jobs sent ahead, then with none (each sent at its ONNX stage): both
    results, and (stage, jobs sent to the child, jobs collected) as each stage of ``order`` started."""
    from tfopt.conversion import ahead
    from tfopt.emitters import onnx_worker
    from tfopt.emitters.onnx_worker import shared_child

    monkeypatch.setattr(onnx_worker, "_SHARED", contextvars.ContextVar("own", default=None))  # a child per run
    seen: list[tuple[str, int, int]] = []
    with shared_child() as child:  # convert() joins it

        def progress(event):
            if isinstance(event, str) and event.split(" ")[0] in order:
                seen.append((event, len(child.submitted), child.converted))

        sent = tfopt.convert(source, str(tmp_path / "ahead"), to=order, report_runs=1, progress=progress, **options)
    monkeypatch.setattr(ahead, "send_ahead", lambda p, prepared: False)  # the synchronous path
    monkeypatch.setattr(ahead, "send_engine_ahead", lambda p, prepared: False)
    with shared_child() as child:
        sync = tfopt.convert(source, str(tmp_path / "sync"), to=order, report_runs=1, **options)
        converted = child.converted
    assert [(a.format, a.precision, a.path, a.sha256) for a in sent.artifacts] == \
        [(a.format, a.precision, a.path, a.sha256) for a in sync.artifacts]
    assert _files(str(tmp_path / "ahead")) == _files(str(tmp_path / "sync"))  # manifest included
    for artifact in sent.artifacts:
        assert artifact.max_abs_err is not None and artifact.max_abs_err <= BOUNDS[artifact.precision], artifact
    return sent, seen, converted


@pytest.mark.parametrize(("channels", "blocks", "order"), FLOAT)
def test_the_onnx_job_is_sent_before_tflite_and_writes_the_synchronous_bytes(channels, blocks, order, tmp_path,
                                                                             monkeypatch):
    source = _convs(tmp_path, channels, blocks)
    result, seen, converted = _ahead_and_synchronous(tmp_path, monkeypatch, source, order, quantize=["fp32", "fp16"])
    for event, sent, collected in seen:
        if event.startswith(("tflite", "openvino")) and order.index(event.split(" ")[0]) < order.index("onnx"):
            assert (sent, collected) == (1, 0), event  # in flight while the parent builds the others
    assert converted == 1  # synchronous: fp16 read back from fp32's conversion, as with the job sent ahead
    assert [a.format for a in result.artifacts][::2] == order  # the asked order, fp32 then fp16


@pytest.mark.parametrize(("channels", "blocks", "order"), INT8)
def test_the_int8_engine_job_is_sent_before_the_other_stages_and_writes_the_synchronous_bytes(
        channels, blocks, order, tmp_path, monkeypatch):
    source = _convs(tmp_path, channels, blocks, batch=None)  # calibration samples are batches of one
    calibration = str(tmp_path / "calibration.npz")
    rng = np.random.default_rng(channels + blocks)
    np.savez(calibration, x=rng.standard_normal((8, 8, 8, channels)).astype(np.float32))
    result, seen, converted = _ahead_and_synchronous(tmp_path, monkeypatch, source, order,
                                                     quantize=["fp32", "int8"], calibration=calibration)
    assert [(a.format, a.precision, a.quantizer) for a in result.artifacts if a.precision == "int8"] == \
        [(t, "int8", "tfopt") for t in order]  # every int8 artifact is the engine's
    before = [(event, sent, collected) for event, sent, collected in seen
              if order.index(event.split(" ")[0]) < order.index("onnx")]
    assert any(event.endswith("int8") for event, _, _ in before)
    for event, sent, collected in before:  # both the float and the engine's int8 graph are in flight
        assert (sent, collected) == (2, 0), event
    assert converted == 2  # synchronous: the same two jobs, each sent at its stage
