"""Keras 3 ``TimeDistributed`` over an open time axis converts to TFLite (issue 24, held-out set 13:
netra-transliterate's ``TimeDistributed(Dense)`` after a GRU). Keras 3 traces it as a
``vectorized_map`` whose fallback loop writes a TensorList of unknown element rank, which TFLite
cannot lower (batch open or pinned); tfopt traces it as one call on ``[batch * time, ...]``."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt


def _write(kind: str, path: str) -> None:
    """``kind``'s Keras 3 model saved at ``path``, with an input of another time length than verification's
    made-up ones (``path.x.npy``) and Keras 3's own call on it (``path.y.npy``)."""
    import keras

    rng = np.random.default_rng(0)
    if kind == "dense":  # token ids of open length -> Embedding -> per-step Dense
        inp = keras.Input((None,), name="ids")
        y = keras.layers.TimeDistributed(keras.layers.Dense(5))(keras.layers.Embedding(20, 8)(inp))
        x = rng.integers(1, 20, size=(3, 7)).astype(np.float32)
    elif kind == "gru-masked":  # a masked GRU's sequence (the mask reaches TimeDistributed) -> per-step softmax
        inp = keras.Input((None,), name="ids")
        h = keras.layers.GRU(6, return_sequences=True)(keras.layers.Embedding(20, 8, mask_zero=True)(inp))
        y = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="softmax"))(h)
        x = rng.integers(1, 20, size=(2, 9)).astype(np.float32)
        x[1, 6:] = 0
    else:  # frames of open count, each a (6, 3) signal -> per-frame Conv1D + Flatten
        inp = keras.Input((None, 6, 3), name="frames")
        y = keras.layers.TimeDistributed(keras.layers.Conv1D(4, 3, activation="relu"))(inp)
        y = keras.layers.TimeDistributed(keras.layers.Flatten())(y)
        x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    model = keras.Model(inp, y)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(path)
    np.save(path + ".x.npy", x)
    np.save(path + ".y.npy", np.asarray(model(x)))


KINDS = ("dense", "gru-masked", "conv-frames")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every kind written in this process (Keras 3, as the test process has it): no writer process importing
    TensorFlow again."""
    root = tmp_path_factory.mktemp("time_distributed")
    for kind in KINDS:
        _write(kind, str(root / f"{kind}.keras"))
    return root


def _litert(path: str, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    rows = []
    for row in x:  # one sample per call: a file whose batch was pinned to 1 takes that, an open one too
        interpreter = Interpreter(model_path=path)
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], (1, *row.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], row[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    return np.stack(rows)


@pytest.mark.parametrize("kind", KINDS)
def test_an_open_time_axis_time_distributed_converts_to_tflite_with_keras_numbers(saved, tmp_path, kind):
    path = str(saved / f"{kind}.keras")
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite"])
    written = [a for a in result.artifacts if a.format == "tflite"]
    assert written and not result.failed, result.failed
    x, want = np.load(path + ".x.npy"), np.load(path + ".y.npy")
    # at another time length than verification's made-up inputs, against Keras 3's own call
    np.testing.assert_allclose(_litert(os.path.join(result.outdir, written[0].path), x), want, rtol=1e-5, atol=1e-5)


def test_the_keras_call_is_restored_after_tracing(saved, tmp_path):
    from keras.src.layers.rnn.time_distributed import TimeDistributed

    before = TimeDistributed.call
    tfopt.freeze(str(saved / "dense.keras"))
    assert TimeDistributed.call is before
