"""Every runtime runner pairs an artifact's tensors with the model's specs by name, never by position."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from tfopt.conversion.convert import convert
from tfopt.conversion.manifest import manifest_model
from tfopt.errors import TensorPairingError
from tfopt.runtimes import runner_for
from tfopt.runtimes.base import Runner

ARTIFACTS = {"pb": "model.pb", "tflite": "model.fp32.tflite", "onnx": "model.fp32.onnx",
             "openvino": os.path.join("openvino.fp32", "model.xml")}


@pytest.fixture(scope="module")
def two_outputs(tmp_path_factory):
    """Outputs ``alpha = x - y`` and ``zeta = 2x + y``: the signature sorts them, the graph does not."""
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                      tf.TensorSpec([None, 3], tf.float32, name="y")])
        def __call__(self, x, y):
            return {"zeta": x * 2.0 + y, "alpha": x - y}

    root = tmp_path_factory.mktemp("two_outputs")
    tf.saved_model.save(M(), str(root / "sm"))
    out = str(root / "out")
    convert(str(root / "sm"), out, to=list(ARTIFACTS), quantize=["fp32"])
    return out, manifest_model(out)


FEEDS = {"x": np.array([[1.0, 2.0, 3.0]], np.float32), "y": np.array([[10.0, 20.0, 30.0]], np.float32)}
EXPECTED = {"alpha": FEEDS["x"] - FEEDS["y"], "zeta": 2 * FEEDS["x"] + FEEDS["y"]}


@pytest.mark.parametrize("fmt", list(ARTIFACTS))
def test_runner_pairs_outputs_by_name(two_outputs, fmt):
    out, model = two_outputs
    runner = runner_for(fmt, os.path.join(out, ARTIFACTS[fmt]), model)
    assert isinstance(runner, Runner)
    got = runner(FEEDS)
    runner.close()
    assert set(got) == set(EXPECTED)
    for name, value in EXPECTED.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6)


@pytest.mark.parametrize("fmt", ["pb", "onnx", "openvino"])
def test_specs_in_another_order_still_pair_by_name(two_outputs, fmt):
    out, model = two_outputs
    swapped = model.replace(inputs=model.inputs[::-1], outputs=model.outputs[::-1])
    got = runner_for(fmt, os.path.join(out, ARTIFACTS[fmt]), swapped)(FEEDS)
    for name, value in EXPECTED.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6)


def _renamed(specs, prefix):
    return [dataclasses.replace(s, name=f"{prefix}{s.name}", tensor=f"{prefix}{s.tensor}") for s in specs]


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "openvino"])
def test_unknown_input_names_raise(two_outputs, fmt):
    out, model = two_outputs
    with pytest.raises(TensorPairingError, match=r"cannot pair input 'other_x' by name.*named"):
        runner_for(fmt, os.path.join(out, ARTIFACTS[fmt]), model.replace(inputs=_renamed(model.inputs, "other_")))


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_unknown_output_names_raise(two_outputs, fmt):
    out, model = two_outputs
    with pytest.raises(TensorPairingError, match=r"cannot pair output 'other_alpha' by name.*alpha:0"):
        runner_for(fmt, os.path.join(out, ARTIFACTS[fmt]), model.replace(outputs=_renamed(model.outputs, "other_")))


def test_tflite_without_its_signature_outputs_raises(two_outputs):
    """Three specs for two signature outputs: the signature cannot pair them and no tensor name does."""
    out, model = two_outputs
    extra = model.replace(outputs=[*model.outputs, dataclasses.replace(model.outputs[0], name="gamma", tensor="gamma:0")])
    with pytest.raises(TensorPairingError, match=r"cannot pair output"):
        runner_for("tflite", os.path.join(out, ARTIFACTS["tflite"]), extra)
