"""Large reductions and resizes lowered together for a converter (:mod:`tfopt.emitters.converter_lower`).

The class: a graph holding both a large float32 reduction and a resize that needs TensorFlow's weights,
in the main graph and inside a ``tf.cond`` branch (a function body). Both are lowered from one import of
the graph (the two lowerings used to import it once each, per target conversion), the report keeps each
lowering's lines apart, and the lowered graph computes what the original does: TensorFlow on both,
within 1e-5 of the output's scale (the resize's matrix products and the split sums round differently
from the kernels, a few ulp; the bound of each lowering is in its own test module). Each artifact records
both reports (manifest.json, report.md), in every target, the ONNX one made ahead for tf2onnx's child too.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt._tf
from tests.helpers import graph_model
from tfopt.emitters.converter_lower import lower_for_converter
from tfopt.runtimes.tensorflow import GraphRunner

IMAGE = (None, 40, 48, 2)  # a mean over 40·48 = 1920 > BLOCK elements per channel: split


def _both(t, x):
    return t.raw_ops.ResizeBicubic(images=x, size=[7, 9]), t.reduce_mean(x, [1, 2])


@pytest.fixture(scope="module")
def model():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, IMAGE, name="x")
        resized, mean = _both(t, x)
        inner = t.cond(t.reduce_max(x) > 0, lambda: _both(t, x * 2.0), lambda: _both(t, x))
        t.identity(resized, name="resized")
        t.identity(mean, name="avg")
        t.identity(inner[0], name="inner_resized")
        t.identity(inner[1], name="inner_avg")

    return graph_model(build, {"x": IMAGE}, ["resized", "avg", "inner_resized", "inner_avg"])


def test_reductions_and_resizes_lowered_from_one_import(model, monkeypatch):
    imports = []

    class Counted(tfopt._tf.GraphFacts):  # the real import, counted
        def __init__(self, graph_def):
            imports.append(graph_def)
            super().__init__(graph_def)

    monkeypatch.setattr(tfopt._tf, "GraphFacts", Counted)
    lowered = lower_for_converter(model.graph_def)
    monkeypatch.undo()
    assert len(imports) == 1
    in_body = [line.split(" ")[0] for line in lowered.reductions + lowered.resizes if "/" in line.split(" ")[0]]
    assert len(lowered.reductions) >= 2 and all("Mean" in line for line in lowered.reductions), lowered.reductions
    assert len(lowered.resizes) >= 2 and all("ResizeBicubic" in line for line in lowered.resizes), lowered.resizes
    assert len(in_body) >= 2, in_body  # the branch's too
    assert lowered.resize_skips == []
    assert set(lowered.provenance()) == {"split_reductions", "lowered_resizes"}

    x = (5 + np.random.default_rng(4).standard_normal((2, *IMAGE[1:]))).astype(np.float32)
    want = GraphRunner(model)({"x": x})
    got = GraphRunner(model.replace(graph_def=lowered.graph_def))({"x": x})
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5 * np.abs(value).max(), err_msg=name)


def test_rows_only_leaves_a_column_reduction_and_lowers_the_resize(model):
    lowered = lower_for_converter(model.graph_def, rows_only=True)  # two channels kept inside: a column mean
    assert lowered.reductions == [] and len(lowered.resizes) >= 2
    assert set(lowered.provenance()) == {"lowered_resizes"}


# Each target's own rewrites beside the two every target gets (tfopt.emitters.rewrite_record's kinds).
OWN = {"tflite": {"lowered_for_builtins": "(Asinh:"},
       "onnx": {},
       "openvino": {"lowered_ReverseV2": "(ReverseV2:", "lowered_LRN": "(LRN:"}}


@pytest.mark.parametrize("targets", [
    pytest.param(["tflite", "openvino"], id="tflite+openvino"),
    pytest.param(["onnx"], id="onnx", marks=pytest.mark.slow),  # its own tf2onnx child (~8 s): the graph lowered ahead for it
])
def test_every_artifact_records_its_rewrites_in_its_manifest_and_report(tmp_path, targets):
    """A large mean over rows (split in every target, TFLite's too), a bicubic resize, and ops one converter gets as
    their formula (Asinh: TFLite; a reverse over two axes and LRN: OpenVINO): each artifact's manifest record and
    report name every rewrite its converter read, each node once, and no other; tfopt verified each within 1e-4."""
    import json

    import tfopt

    def build(t):
        x = t.compat.v1.placeholder(t.float32, IMAGE, name="x")
        t.identity(t.raw_ops.ResizeBicubic(images=x, size=[7, 9]), name="resized")
        t.identity(t.reduce_mean(x, [1, 2, 3]), name="avg")  # 3840 > BLOCK elements, contiguous rows
        t.identity(t.math.asinh(x) + t.reverse(x, axis=[1, 2]) + t.nn.local_response_normalization(x, 1), name="own")

    out = tmp_path / "out"
    result = tfopt.convert(graph_model(build, {"x": IMAGE}, ["resized", "avg", "own"]), str(out), to=targets,
                           quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert all(a["fidelity"]["max_abs_err"] <= 1e-4 for a in result.report["artifacts"]), result.report["artifacts"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(a["format"] for a in manifest["artifacts"]) == sorted(targets)
    for artifact in manifest["artifacts"]:
        expected = {"split_reductions": "(Mean:", "lowered_resizes": "(ResizeBicubic:", **OWN[artifact["format"]]}
        rewrites = artifact["rewrites"]
        assert set(rewrites) == set(expected), (artifact["format"], rewrites)
        for kind, op in expected.items():
            [line] = rewrites[kind]  # one node each, named with its op
            assert op in line, (artifact["format"], rewrites)
    report = (out / "report.md").read_text()
    for target in targets:
        assert f"{target} fp32: converted from a rewritten graph" in report, report
