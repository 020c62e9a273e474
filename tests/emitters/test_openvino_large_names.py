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


MERGED = {  # the internal names a frontend leaves on the model's input and output ports (scopes sorting
    # before and after the model's names, as on the frozen-graph path: Tensordot's transpose, a collapsed Reshape)
    "on-the-input": ({"A/model/dense/Tensordot/transpose:0"}, set()),
    "on-the-output": (set(), {"zz/dense/Reshape:0", "A/dense/Reshape_1:0"}),
    "on-both": ({"zz/Tensordot/transpose:0"}, {"A/model/Reshape:0"}),
}


@pytest.mark.parametrize("through", [False, True], ids=["alone", "beside-a-pass-through"])
@pytest.mark.parametrize(("internal_in", "internal_out"), MERGED.values(), ids=MERGED.keys())
def test_signature_ports_keep_the_model_names_only(internal_in, internal_out, through):
    """The large path's :func:`name_signature_ports` leaves each port the model's names only, as
    ``model_names_only`` does on the frozen-graph path (``get_any_name()`` is the one that sorts first)."""
    from tfopt._openvino import openvino
    from tfopt.emitters.openvino_outputs import name_signature_ports

    ov = openvino()
    x = ov.opset13.parameter([-1, 5], np.float32)
    x.output(0).get_tensor().set_names({"grammemes", *internal_in} | ({"passed"} if through else set()))
    w = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    y = ov.opset13.matmul(x, ov.opset13.constant(w), False, False)
    y.output(0).get_tensor().set_names({"out", *internal_out})
    results = [ov.opset13.result(y)] + ([ov.opset13.result(x)] if through else [])
    ir = ov.Model(results, [x])
    outputs = [("out", "out:0")] + ([("passed", "passed:0")] if through else [])
    name_signature_ports(ir, [("grammemes", "grammemes:0")], outputs)
    own = {"grammemes", "grammemes:0", "out", "out:0", "passed", "passed:0"}
    named = {p.get_any_name(): p.get_names() for p in (*ir.inputs, *ir.outputs)}
    assert sorted(named) == sorted(["grammemes", "out"] + (["passed"] if through else [])), named
    assert all(names <= own for names in named.values()), named
    compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feed = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    got = compiled({compiled.inputs[0]: feed})
    by_name = {name: got[port] for port in compiled.outputs for name in port.get_names()}
    np.testing.assert_allclose(by_name["out:0"], feed @ w, rtol=1e-6, atol=1e-6)  # float32 both ways
    if through:
        np.testing.assert_array_equal(by_name["passed:0"], feed)
