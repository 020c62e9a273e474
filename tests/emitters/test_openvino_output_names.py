"""OpenVINO's TensorFlow frontend replaces some output ops and drops their names: a loop's stacked
``TensorListStack`` (a time-major Keras 2 RNN with ``return_sequences``) became an output named
``.../while:3``, which no runner could pair with the model's output. The emitter now gives every
such output its name back (an ``Identity`` the frontend keeps), so each output is verified by name,
by value: recurrent layers of several kinds and sizes, alone or beside a plain output."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("rnn,steps,units,plain_head", [
    ("LSTM", 4, 3, False),
    ("GRU", 6, 5, True),
    pytest.param("SimpleRNN", 3, 2, True, marks=pytest.mark.slow),  # the GRU's case with another cell
], ids=["lstm", "gru-beside-dense", "simplernn-beside-dense"])
def test_every_loop_output_keeps_its_name_in_openvino(tmp_path, rnn, steps, units, plain_head):
    import tf_keras as K

    import tfopt
    from tfopt._openvino import openvino

    K.utils.set_random_seed(steps)
    x = K.Input((2, 3), name="x")  # time-major: [batch=?, ...] is read as [time, batch, features]
    outputs = [getattr(K.layers, rnn)(units, time_major=True, return_sequences=True, name="sequence")(x)]
    if plain_head:
        outputs.insert(0, K.layers.Dense(4, name="head")(K.layers.Flatten()(x)))
    model = K.Model(x, outputs)
    path = str(tmp_path / "model.h5")
    model.save(path)
    result = tfopt.convert(path, str(tmp_path / "out"), to=["openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, result.errors
    compiled = openvino().Core().compile_model(str(tmp_path / "out" / "openvino.fp32" / "model.xml"), "CPU",
                                               {"INFERENCE_PRECISION_HINT": "f32"})
    feed = np.random.default_rng(0).normal(size=(steps, 2, 3)).astype("float32")
    got = compiled({compiled.inputs[0]: feed})
    want = model(feed)
    want = dict(zip(model.output_names, want if isinstance(want, list) else [want]))
    for name, value in want.items():  # every output found by its name, equal by value
        port = [p for p in compiled.outputs if {name, f"{name}:0"} & p.get_names()]
        assert len(port) == 1, (name, [p.get_names() for p in compiled.outputs])
        np.testing.assert_allclose(got[port[0]], np.asarray(value), rtol=1e-5, atol=1e-5)
