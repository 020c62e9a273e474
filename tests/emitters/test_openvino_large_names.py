"""A model above ``--external-threshold`` reaches OpenVINO through its serving SavedModel
(:mod:`tfopt.emitters.large`), whose frontend named each port by its signature key only (``out``, not
the graph tensor ``out:0`` the frozen-graph path names it by) and let an output that passes an input
through share the input's tensor (one port named ``x`` and ``out``). Both paths now name every output
port by the model's tensor, each on a tensor of its own: checked in the real OpenVINO runtime on
generated models forced onto the large path by a small threshold, by name and by value."""

from __future__ import annotations

import numpy as np
import pytest

THRESHOLD = 256  # bytes: every kernel here is larger, so every model takes the large path


def _keras2(path: str):
    import tf_keras as K

    K.utils.set_random_seed(1)
    a, b = K.Input((3,), name="a"), K.Input((5,), name="b")
    h = K.layers.Dense(16, activation="tanh")(K.layers.Concatenate()([a, b]))
    outs = [K.layers.Lambda(lambda t: t[:, :2] - t[:, 2:4], name="out_diff")(h), K.layers.Dense(1, name="out_av")(h),
            K.layers.Dropout(0.3, name="passthrough")(a)]  # at inference: input a itself
    model = K.Model([a, b], outs)
    model.save(path)
    return model


def _keras3(path: str):
    import keras as K

    K.utils.set_random_seed(2)
    a, b = K.Input((3,), name="a"), K.Input((5,), name="b")
    h = K.layers.Dense(16, activation="relu")(K.layers.Concatenate()([a, b]))
    model = K.Model([a, b], [K.layers.Dense(2, name="second")(h), K.layers.Dense(4, name="first")(h)])
    model.save(path)
    return model


@pytest.mark.parametrize("kind", ["keras2-lambda-passthrough", pytest.param("keras3-two-heads", marks=pytest.mark.slow)])
def test_large_path_names_outputs_as_the_frozen_graph_path(tmp_path, kind):
    import json

    import tfopt
    from tests.helpers import counting
    from tfopt._openvino import openvino
    from tfopt.emitters import large

    path = str(tmp_path / ("model.h5" if kind.startswith("keras2") else "model.keras"))
    model = _keras2(path) if kind.startswith("keras2") else _keras3(path)
    rng = np.random.default_rng(0)
    feeds = {"a": rng.normal(size=(2, 3)).astype("float32"), "b": rng.normal(size=(2, 5)).astype("float32")}
    want = model([feeds["a"], feeds["b"]])
    core = openvino().Core()
    for route, threshold in (("graph", None), ("large", THRESHOLD)):
        out = tmp_path / route
        with counting(large, "emit_from_savedmodel") as calls:
            result = tfopt.convert(path, str(out), to=["openvino"], quantize=["fp32"], report_runs=1, unsafe=True,
                                   external_threshold=threshold)
        assert not result.failed, result.errors
        assert bool(calls) == (route == "large")  # the path the threshold chose
        manifest = json.loads((out / "manifest.json").read_text())
        tensors = {s["name"]: s["tensor"] for s in manifest["outputs"]}
        compiled = core.compile_model(str(out / "openvino.fp32" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got = compiled({p: feeds[n] for p in compiled.inputs for n in feeds if {n, f"{n}:0"} & p.get_names()})
        inputs = {name for p in compiled.inputs for name in p.get_names()}
        for name, value in zip(tensors, want):  # the model's output order
            hits = [p for p in compiled.outputs if tensors[name] in p.get_names()]
            assert len(hits) == 1, (route, name, [p.get_names() for p in compiled.outputs])
            assert not inputs & hits[0].get_names(), (route, name)  # a tensor of its own, not an input's
            np.testing.assert_allclose(got[hits[0]], np.asarray(value), rtol=1e-5, atol=1e-5)  # float32 both ways
