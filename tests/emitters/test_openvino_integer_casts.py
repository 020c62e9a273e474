"""Float inputs that the graph casts to integers (token ids into an embedding table, class ids into
``one_hot``) stay exact when OpenVINO's CPU plugin runs the IR in bf16, its default on CPUs with bf16:
tfopt marks those casts, and the float ops before them, ``precise`` (``emitters/openvino_precise.py``).
Without the mark the plugin rounds the ids to 8 significant bits first (id 1000 becomes 1000, 1001
becomes 1000, 4093 becomes 4096), and the lookups take other rows.

The IR's structure is checked on any CPU: every float-to-integer ``Convert`` of the written IR, and the
``Reshape`` between it and the input, carry the attribute. Where the CPU has bf16 (and ``bf16`` is
asked for explicitly, as the plugin's default there), the IR's outputs are compared with TensorFlow's:
within bf16's rounding of the dense layer after the lookups, not the rows of other ids.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import tf

ROWS, DIM, CLASSES = 4096, 6, 300


def _ids_net(t):
    """Token ids (fed as float32, as Keras's default ``Input`` feeds an ``Embedding``) through a
    reshape and a cast into a table lookup, and class ids into ``one_hot``; dense layers after both."""
    rng = np.random.default_rng(0)
    ids = t.compat.v1.placeholder(t.float32, (None, 12), name="ids")
    cls = t.compat.v1.placeholder(t.float32, (None,), name="cls")
    table = rng.normal(0, 1, (ROWS, DIM)).astype(np.float32)
    rows = t.gather(table, t.cast(t.reshape(ids, (-1, 3, 4)), t.int32))  # (?, 3, 4, DIM)
    h = t.reduce_mean(rows, axis=2)
    h = t.reshape(h, (-1, 3 * DIM))
    hot = t.one_hot(t.cast(cls, t.int64), CLASSES)
    out = t.matmul(h, rng.normal(0, 0.5, (3 * DIM, 4)).astype(np.float32))
    out = out + t.matmul(hot, rng.normal(0, 0.5, (CLASSES, 4)).astype(np.float32))
    t.identity(out, name="out")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(the written model.xml, the model, ids and class ids, TensorFlow's outputs on them)."""
    from tfopt.emitters.openvino import emit_openvino

    model = graph_model(_ids_net, {"ids": (None, 12), "cls": (None,)}, ["out"])
    xml = emit_openvino(model, str(tmp_path_factory.mktemp("ov") / "ir"))
    rng = np.random.default_rng(1)
    feed = {"ids": rng.integers(0, ROWS, (16, 12)).astype(np.float32),
            "cls": rng.integers(0, CLASSES, (16,)).astype(np.float32)}
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.import_graph_def(model.graph_def, name="")
    with t.compat.v1.Session(graph=graph) as session:
        expected = session.run("out:0", {f"{k}:0": v for k, v in feed.items()})
    return xml, feed, expected


def test_every_float_to_integer_cast_and_the_float_ops_before_it_are_marked_precise(written):
    xml = written[0]
    layers = {layer.get("id"): layer for layer in ET.parse(xml).getroot().iter("layer")}
    producer = {e.get("to-layer"): e.get("from-layer") for e in ET.parse(xml).getroot().iter("edge")
                if e.get("to-port") == "0"}

    def precise(layer):
        return any(a.get("name") == "precise" for a in layer.iterfind("rt_info/attribute"))

    casts = [layer for layer in layers.values() if layer.get("type") == "Convert"
             and layer.find("input/port").get("precision") == "FP32"
             and layer.find("data").get("destination_type") in ("i32", "i64")]
    assert len(casts) >= 2 and all(precise(c) for c in casts)  # the ids' cast and the class ids' cast
    for cast in casts:  # up to the Parameter, every float op on the way is marked too
        layer = layers[producer[cast.get("id")]]
        while layer.get("type") != "Parameter":
            assert precise(layer), layer.get("name")
            layer = layers[producer[layer.get("id")]]
    assert not any(precise(layer) for layer in layers.values() if layer.get("type") == "MatMul")


def _onednn_capped_below_bf16():
    """``ONEDNN_MAX_CPU_ISA=AVX2`` (imitating an AVX2 CPU) leaves the plugin's bf16 flag on but removes
    oneDNN's bf16 kernels: compiling at bf16 then fails (docs/known-limits.md), as no AVX2 CPU would."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    return isa not in ("", "ALL", "DEFAULT") and "BF16" not in isa and "AMX" not in isa


def test_ids_fed_as_floats_stay_exact_when_the_cpu_plugin_runs_the_ir_in_bf16(written):
    import openvino as ov

    xml, feed, expected = written
    feed = {f"{name}:0": x for name, x in feed.items()}  # the IR's input tensor names
    core = ov.Core()
    exact = core.compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feed)[0]
    assert np.abs(exact - expected).max() <= 1e-4 * (1 + np.abs(expected).max())
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") or _onednn_capped_below_bf16():
        return  # an f32-only CPU cannot round the ids: the structure test above holds the fix there
    low = core.compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})(feed)[0]
    # bf16's 8 bits in the dense layers: 1.1e-2 here (3.6 without the mark: other rows, other classes)
    assert np.abs(low - expected).max() <= 0.02 * (1 + np.abs(expected).max())


@pytest.mark.slow
def test_the_large_model_path_marks_its_casts_too(tmp_path):
    """A model above ``--external-threshold`` reaches OpenVINO through its serving SavedModel in a child
    (``emitters/large_worker.py``): its IR gets the same marks, and at the f32 hint the same numbers."""
    import keras

    import tfopt
    from tfopt._openvino import openvino

    keras.utils.set_random_seed(3)
    ids = keras.Input((8,), name="ids")  # Keras's default Input: float32 token ids into an Embedding
    model = keras.Model(ids, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(ROWS, DIM)(ids))))
    model.save(str(tmp_path / "m.keras"))
    result = tfopt.convert(str(tmp_path / "m.keras"), str(tmp_path / "out"), to=["openvino"], quantize=["fp32"],
                           report_runs=1, external_threshold=256)  # every kernel is larger: the large path
    assert not result.failed, result.errors
    xml = next(str(p) for p in (tmp_path / "out").rglob("model.xml"))
    casts = [layer for layer in ET.parse(xml).getroot().iter("layer") if layer.get("type") == "Convert"
             and layer.find("input/port").get("precision") == "FP32"
             and layer.find("data").get("destination_type") in ("i32", "i64")]
    assert casts and all(any(a.get("name") == "precise" for a in c.iterfind("rt_info/attribute")) for c in casts)
    x = np.random.default_rng(2).integers(0, ROWS, (4, 8)).astype(np.float32)
    got = openvino().Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([x])[0]
    want = np.asarray(model(x))
    assert np.abs(got - want).max() <= 1e-4 * (1 + np.abs(want).max())
