"""The LiteRT runner allocates at the fed shapes: a fully convolutional model whose VALID
convolutions have no output at the file's default (1 for each open dimension) still runs."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.emitters.tflite import emit_tflite
from tfopt.runtimes.tflite import TFLiteRunner


@pytest.mark.parametrize(("depth", "kernel", "sizes"), [(1, 3, (5, 9)), (3, 3, (7, 16)), (2, 5, (9, 12))])
def test_valid_conv_stack_runs_at_the_fed_size(tmp_path, depth, kernel, sizes):
    import keras

    from tfopt.freezing import freeze
    from tfopt.loaders import load

    keras.utils.set_random_seed(depth * kernel)
    inputs = keras.Input((None, None, 3), name="img")
    h = inputs
    for _ in range(depth):
        h = keras.layers.Conv2D(4, kernel, padding="valid", activation="relu")(h)
    model = keras.Model(inputs, h)
    model.save(str(tmp_path / "fcn.keras"))
    frozen, _ = freeze(load(str(tmp_path / "fcn.keras")), verify=False)
    runner = TFLiteRunner(emit_tflite(frozen, str(tmp_path / "fcn.tflite")), frozen.inputs, frozen.outputs)
    rng = np.random.default_rng(depth)
    for size in sizes:  # every size leaves an output: size - depth * (kernel - 1) >= 1
        x = rng.normal(size=(1, size, size + 1, 3)).astype(np.float32)
        got = runner({"img": x})[frozen.outputs[0].name]
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5, rtol=0)  # float32 convolutions of <= 75 terms

