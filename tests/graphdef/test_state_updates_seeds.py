"""Keras 3 random augmentation layers (RandomFlip, RandomRotation, RandomZoom, RandomContrast) keep
a ``SeedGenerator`` state: read, used as the seed of ``StatelessRandom*`` ops, advanced by an
``AssignVariableOp``. ``model.export`` traces the model with ``training`` unset, which these layers
treat as training: the exported function really augments, differently on every call (measured here
on the SavedModel itself). tfopt then names that cause and the way to save the inference call, not
only "a variable its own call changes"; the same models exported with ``training=False`` convert in
every target (the unread seed update, if any, removed). Alone and in a small CNN, several layers."""

from __future__ import annotations

import numpy as np
import pytest

LAYERS = {
    "flip": [("RandomFlip", {})],
    "rotation": [("RandomRotation", {"factor": 0.2})],
    "zoom+contrast": [("RandomZoom", {"height_factor": 0.2}), ("RandomContrast", {"factor": 0.3})],
}


def _model(layers, cnn: bool):
    import keras

    keras.utils.set_random_seed(len(layers))
    x = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(4, 3, padding="same")(x) if cnn else x
    for name, config in layers:
        y = getattr(keras.layers, name)(**config)(y)
    if cnn:
        y = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(y)))
    return keras.Model(x, y)


# Every layer alone, and in a CNN the two-layer case in the fast lane (flip and rotation in a CNN: slow, each
# a Keras export and a conversion; the layer is found by the same seed-state trail, conv before or not).
@pytest.mark.parametrize("layers,cnn", [
    pytest.param(LAYERS[name], cnn, id=f"{name}-{'in-cnn' if cnn else 'alone'}",
                 marks=pytest.mark.slow if cnn and name != "zoom+contrast" else ())
    for name in LAYERS for cnn in (False, True)])
def test_model_export_of_augmentation_is_named_as_random_with_the_fix(tmp_path, layers, cnn):
    import tensorflow as tf

    import tfopt
    from tfopt.errors import StatefulModelError

    model = _model(layers, cnn)
    model.export(str(tmp_path / "sm"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))  # kept: its function reads its variables
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    draws = [loaded.serve(x).numpy() for _ in range(6)]
    assert any(np.abs(d - draws[0]).max() > 1e-3 for d in draws[1:])  # the export itself is random
    with pytest.raises(StatefulModelError, match=r"outputs are random: layer '[^']*random_\w+[^']*' seeds Stateless"
                                                 r"\w+ .*training=False"):
        tfopt.convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=["tflite"], quantize=["fp32"])


@pytest.mark.parametrize("layers,cnn", [(LAYERS["flip"], False), (LAYERS["zoom+contrast"], True)],
                         ids=["flip-alone", "zoom+contrast-in-cnn"])
def test_the_inference_call_of_augmentation_converts_everywhere(tmp_path, layers, cnn):
    import keras
    import tensorflow as tf

    import tfopt

    model = _model(layers, cnn)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda t: model(t, training=False),
                         input_signature=[tf.TensorSpec((None, 8, 8, 3), tf.float32, name="x")])
    archive.write_out(str(tmp_path / "sm"), verbose=False)
    result = tfopt.convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=["tflite", "onnx", "openvino"],
                           quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert len(result.report["artifacts"]) == 3
    assert all(a["fidelity"]["max_abs_err"] <= 1e-5 for a in result.report["artifacts"])
