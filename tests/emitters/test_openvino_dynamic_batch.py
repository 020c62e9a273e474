"""What a dynamic batch costs in OpenVINO's CPU plugin, as docs/concepts/openvino.md states it: the
plugin merges the NHWC input's ``Transpose`` into the ``Reorder`` after it only in a static graph
(its merge passes skip dynamic nodes), and a bounded batch is dynamic to it too. tfopt keeps the
model's batch, so its IR pays this; the docs tell deployers to fix the batch they serve.

A generated NHWC conv model is converted by tfopt's emitter and compiled as written, reshaped to
batch 1 and to ``[1..8]``, and in ``scripts/benchmark_ov_batch.py``'s NCHW form (the ``Transpose``
removed); the slow lane does the same on an NNCF int8 IR. Structure only, no timing: layer types
of the compiled graph hold on any x86-64 CPU (checked with ``ONEDNN_MAX_CPU_ISA=AVX2`` too). If the static/dynamic assertion fails after an
OpenVINO upgrade, the plugin merges in dynamic graphs now: re-measure with
``python scripts/benchmark.py ov-batch`` and update the docs (and docs/known-limits.md).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import tf

SHAPE = (12, 12, 3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _conv_net(t):
    rng = np.random.default_rng(0)
    x = t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x")
    h = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32), 1, "SAME"))
    h = t.nn.conv2d(h, rng.normal(0, 0.3, (1, 1, 8, 8)).astype(np.float32), 1, "SAME")
    t.identity(t.reduce_mean(h, [1, 2]), name="out")


def _script():
    spec = importlib.util.spec_from_file_location("benchmark_ov_batch", os.path.join(ROOT, "scripts", "benchmark_ov_batch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled():
    """(the four compiled forms of tfopt's IR, the model, TensorFlow's outputs on batches of 1 and 3)."""
    import openvino as ov

    from tfopt.emitters.openvino import convert_to_openvino

    model = graph_model(_conv_net, {"x": (None, *SHAPE)}, ["out"])
    ir = convert_to_openvino(model)
    assert ir.inputs[0].get_partial_shape()[0].is_dynamic  # tfopt keeps the model's batch
    forms = _script().variants(ov, ir)
    xs = {n: np.random.default_rng(n).uniform(-1, 1, (n, *SHAPE)).astype(np.float32) for n in (1, 3)}
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.import_graph_def(model.graph_def, name="")
    with t.compat.v1.Session(graph=graph) as session:
        expected = {n: session.run("out:0", {"x:0": x}) for n, x in xs.items()}
    return forms, expected, xs


def _kinds(form) -> list[str]:
    return [op.get_rt_info()["layerType"].astype(str) for op in form.get_runtime_model().get_ordered_ops()]


def _executed_copies(form) -> int:
    """Input ``Transpose``/``Reorder`` layers the plugin runs (a merged ``..._fake`` reorder is not run)."""
    request = form.create_infer_request()
    request.infer({0: np.zeros([d if d > 0 else 1 for d in _dims(form)], np.float32)})
    return sum(info.node_type in ("Transpose", "Reorder") and info.status == info.Status.EXECUTED
               for info in request.get_profiling_info())


def _dims(form) -> list[int]:
    shape = form.inputs[0].get_partial_shape()
    return [d.get_length() if d.is_static else d.get_min_length() for d in shape]


def test_the_dynamic_ir_runs_any_batch_as_tensorflow(compiled):
    """Bound 1e-5 absolute (float32, outputs of order 1): batch 1 and 3 through the same compiled model."""
    forms, expected, xs = compiled
    for n, x in xs.items():
        np.testing.assert_allclose(forms["dynamic"](x)[0], expected[n], atol=1e-5)
        np.testing.assert_allclose(forms["nchw"](x.transpose(0, 3, 1, 2).copy())[0], expected[n], atol=1e-5)
    np.testing.assert_allclose(forms["static"](xs[1])[0], expected[1], atol=1e-5)


# A guard of OpenVINO's documented limit, not of tfopt: it fails when an OpenVINO upgrade (or a CPU whose
# plugin lays out the input otherwise) merges in dynamic graphs too, so it runs in the slow lane only.
@pytest.mark.slow
def test_only_a_static_graph_merges_the_input_transpose(compiled):
    """The documented limit: dynamic and bounded graphs run the ``Transpose`` and a ``Reorder``; the
    static one runs neither (one merged reorder, not executed); the NCHW form has no ``Transpose``."""
    forms, _, _ = compiled
    assert "Transpose" in _kinds(forms["dynamic"]) and "Transpose" in _kinds(forms["bounded"])
    assert "Transpose" not in _kinds(forms["static"]) and "Transpose" not in _kinds(forms["nchw"])
    assert _executed_copies(forms["static"]) < _executed_copies(forms["dynamic"])
    assert _executed_copies(forms["bounded"]) == _executed_copies(forms["dynamic"])


@pytest.mark.slow
def test_an_int8_ir_keeps_the_input_transpose_dynamic_only(compiled):
    """The same in an NNCF int8 IR, where the input runs ``FakeQuantize`` -> ``Transpose`` (u8)."""
    import openvino as ov

    from tfopt._openvino import nncf
    from tfopt.emitters.openvino import convert_to_openvino

    _, _, xs = compiled
    ir = convert_to_openvino(graph_model(_conv_net, {"x": (None, *SHAPE)}, ["out"]))
    samples = [np.random.default_rng(i).uniform(-1, 1, (1, *SHAPE)).astype(np.float32) for i in range(8)]
    forms = _script().variants(ov, nncf().quantize(ir, nncf().Dataset(samples), subset_size=8))
    assert "Transpose" in _kinds(forms["dynamic"]) and "Transpose" in _kinds(forms["bounded"])
    assert "Transpose" not in _kinds(forms["static"]) and "Transpose" not in _kinds(forms["nchw"])
    assert _executed_copies(forms["static"]) < _executed_copies(forms["dynamic"])
    x = xs[3]  # the same int8 network on the same values: equal up to float32 summation order (bound 1e-5)
    np.testing.assert_allclose(forms["nchw"](x.transpose(0, 3, 1, 2).copy())[0], forms["dynamic"](x)[0], atol=1e-5)
