"""Unknown spatial dimensions are verified at a realistic size too (issue 24: a pose network verified
at 8x8 only had another error at 368x432): the first of 64, 128, 256 the model answers, recorded."""

from __future__ import annotations

import json
import os

import pytest

import tfopt


def _fcn(levels: int):
    """A U-Net-like fully-convolutional net on (None, None, 3): ``levels`` stride-2 convs down, as many
    upsamplings back, each added to its skip - any size not divisible by 2**levels fails the Add."""
    import keras

    x = keras.Input((None, None, 3), name="image")
    h, skips = x, []
    for i in range(levels):
        skips.append(h)
        h = keras.layers.Conv2D(4 + i, 3, strides=2, padding="same", activation="relu")(h)
    for i in reversed(range(levels)):
        h = keras.layers.Conv2D(skips[i].shape[-1], 3, padding="same")(keras.layers.UpSampling2D()(h))
        h = keras.layers.Add()([h, skips[i]])
    return keras.Model(x, keras.layers.Conv2D(2, 1)(h))


@pytest.mark.parametrize("levels", [2, 4], ids=lambda n: f"stride{2 ** n}")
def test_unknown_height_and_width_are_verified_at_a_realistic_size(levels, tmp_path):
    import keras

    keras.utils.set_random_seed(levels)
    _fcn(levels).export(str(tmp_path / "fcn"), verbose=False)
    _, _, report, opt_report = tfopt.optimize(str(tmp_path / "fcn"))
    at = report.verified_at
    assert at.shapes() == {"image": [2, 8 if levels <= 3 else 16, 8 if levels <= 3 else 16, 3]}
    assert at.realistic is not None and at.realistic.shapes() == {"image": [2, 64, 64, 3]}
    assert at.as_dict()["realistic_shapes"] == {"image": [2, 64, 64, 3]}
    assert "also at image:2x64x64x3 (a realistic size)" in at.summary()
    assert opt_report.verification["portable"]


@pytest.mark.slow  # ~60 s shared; the optimize test above proves the class in TensorFlow
def test_the_realistic_size_is_verified_in_the_runtime_and_recorded(tmp_path):
    import importlib.util

    import keras

    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    keras.utils.set_random_seed(0)
    _fcn(3).export(str(tmp_path / "fcn"), verbose=False)
    out = str(tmp_path / "out")
    result = tfopt.convert(str(tmp_path / "fcn"), out, to=["onnx"], report_runs=1)
    assert result.verified_at.realistic.shapes() == {"image": [1, 64, 64, 3]}
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts)
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["verification"]["realistic_shapes"] == {"image": [1, 64, 64, 3]}
