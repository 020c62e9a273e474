"""A small conv net (conv-relu x3 + dense) converted with the real converters, once per session.

The model's first conv has a dead output channel (bias -100: ReLU gives 0 on any input), and the
second conv's weights reading that channel are 200: they never change a float result, but they set
the int8 weight scale of every output channel of ``c2``, so the converters' own int8 rounds its real
weights to zero - one outlier layer. ``perturbed`` is the same model with ``c2``'s live weights
perturbed (about 30 % of their scale) and nothing else changed.
"""

from __future__ import annotations

import numpy as np
import pytest

TARGETS = ("tflite", "onnx", "openvino")


def _model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3), name="x")
    h = inputs
    for name in ("c1", "c2", "c3"):
        h = keras.layers.Conv2D(8, 3, activation="relu", name=name, bias_initializer="random_normal")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="d", bias_initializer="random_normal")(
        keras.layers.Flatten()(h)))
    w1, b1 = model.get_layer("c1").get_weights()
    b1[0] = -100.0
    model.get_layer("c1").set_weights([w1, b1])
    w2, b2 = model.get_layer("c2").get_weights()
    w2[:, :, 0, :] = 200.0
    model.get_layer("c2").set_weights([w2, b2])
    return model


def _perturb(model) -> None:
    """c2's live weights (not the outlier ones) plus noise of 30 % of their spread, in place."""
    w2, b2 = model.get_layer("c2").get_weights()
    live = w2[:, :, 1:, :]
    w2[:, :, 1:, :] = live + 0.3 * np.std(live) * np.random.default_rng(1).normal(size=live.shape)
    model.get_layer("c2").set_weights([w2, b2])


@pytest.fixture(scope="session")
def debug_models(tmp_path_factory):
    """``{"model", "data", "fp32": {target: path}, "int8": {...}, "perturbed": {...}}``."""
    from tfopt.conversion.convert import convert

    root = tmp_path_factory.mktemp("debug")
    model = _model()
    model.export(str(root / "sm"), verbose=False)
    _perturb(model)  # the same Keras model, so the same TF node names
    model.export(str(root / "perturbed_sm"), verbose=False)
    np.savez(root / "data.npz", x=np.random.default_rng(2).normal(size=(32, 12, 12, 3)).astype(np.float32))
    data = str(root / "data.npz")
    convert(str(root / "sm"), str(root / "out"), to=list(TARGETS), quantize=["fp32", "int8"], calibration=data,
            quantizer="native")
    convert(str(root / "perturbed_sm"), str(root / "perturbed"), to=list(TARGETS), quantize=["fp32"])

    def paths(outdir: str, precision: str) -> dict[str, str]:
        return {"tflite": str(root / outdir / f"model.{precision}.tflite"),
                "onnx": str(root / outdir / f"model.{precision}.onnx"),
                "openvino": str(root / outdir / f"openvino.{precision}")}

    return {"model": str(root / "sm"), "data": data, "fp32": paths("out", "fp32"), "int8": paths("out", "int8"),
            "perturbed": paths("perturbed", "fp32")}


@pytest.fixture(scope="session")
def portable(debug_models):
    """The TF graph the converters read (frozen and optimized as `tfopt convert` does)."""
    from tfopt.conversion.pipeline import run_optimize
    from tfopt.options import FreezeOptions, LoadOptions, OptimizeOptions

    model, *_ = run_optimize(debug_models["model"], LoadOptions(), FreezeOptions(verify=False), OptimizeOptions())
    return model
