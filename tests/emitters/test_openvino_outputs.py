"""Every artifact carries the model's output names in every target, also for outputs that are, once
frozen, the input itself (``Identity`` chains: Dropout at inference), an ``Identity`` of a constant,
a slice of the input, or a ``cond`` the converter folds to one branch (Keras 2 ``CenterCrop``).
OpenVINO's frontend collapsed, dropped or renamed such outputs (``tfopt.emitters.openvino_outputs``).
Generated graphs mix these kinds (several orders, depths, two outputs on one input) with an ordinary
output; each conversion is verified by tfopt (outputs paired by name, by value within 1e-6) and
each IR output is looked up by its name."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import converted_everywhere, graph_model


def _output(t, kind: str, x, name: str, depth: int):
    if kind == "through":  # x passed through `depth` Identities
        y = x
        for i in range(depth - 1):
            y = t.identity(y, name=f"{name}_pass{i}")
        return t.identity(y, name=name)
    if kind == "const":
        return t.identity(t.constant(np.arange(3 * depth, dtype="float32").reshape(3, depth)), name=name)
    if kind == "full_slice":  # the frontend removes a slice that keeps everything
        return t.identity(x[:, :], name=name)
    if kind == "crop":
        return t.identity(x[:, 1:1 + depth], name=name)
    if kind == "cond_crop":  # CenterCrop's form: the branch chosen on the input's (static) shape
        big = t.reduce_all(t.shape(x)[1:] >= depth)
        return t.identity(t.cond(big, lambda: x[:, :depth], lambda: x * 1.0), name=name)
    return t.nn.relu(x, name=name)


CASES = {
    "through": ["through"],
    "through-deep-beside-relu": ["relu", "through"],
    "two-through-one-input": ["through", "through", "relu"],
    "const-beside-relu": ["const", "relu"],
    "slices": ["full_slice", "crop"],
    "cond-crop": ["cond_crop"],
    "all-kinds": ["crop", "const", "through", "relu", "cond_crop"],
}


@pytest.mark.parametrize("kinds", CASES.values(), ids=CASES.keys())
def test_every_output_keeps_its_name_in_every_target(tmp_path, kinds):
    from tfopt._openvino import openvino

    names = [f"out{i}_{kind}" for i, kind in enumerate(kinds)]

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 6], name="x")
        for i, (kind, name) in enumerate(zip(kinds, names)):
            _output(t, kind, x, name, depth=2 + i % 3)

    model = graph_model(build, {"x": (None, 6)}, names)
    converted_everywhere(model, str(tmp_path / "out"), 1e-6)
    ir = openvino().Core().read_model(str(tmp_path / "out" / "openvino.fp32" / "model.xml"))
    for name in names:  # one port per output, found by its name
        assert len([p for p in ir.outputs if f"{name}:0" in p.get_names()]) == 1, [p.get_names() for p in ir.outputs]


@pytest.mark.parametrize("api", ["keras3", "keras2"])
def test_keras_models_whose_output_is_a_pass_through_convert_everywhere(tmp_path, api):
    """The layer sweep's two cases: Dropout alone (Keras 3 ``.keras``) and CenterCrop (Keras 2 ``.h5``)."""
    import tfopt

    if api == "keras3":
        import keras as K
        x = K.Input((6,), name="x")
        model, path = K.Model(x, K.layers.Dropout(0.5)(K.layers.Dropout(0.2)(x))), tmp_path / "model.keras"
    else:
        import tf_keras as K
        x = K.Input((10, 12, 3), name="x")
        model, path = K.Model(x, K.layers.CenterCrop(6, 8)(x)), tmp_path / "model.h5"
    model.save(str(path))
    result = tfopt.convert(str(path), str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], quantize=["fp32"],
                           report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert all(a["fidelity"]["max_abs_err"] <= 1e-6 for a in result.report["artifacts"])
    assert len(result.report["artifacts"]) == 3
