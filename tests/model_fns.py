"""Model-building functions for TF2 object-checkpoint tests (``--model-fn tests.model_fns:NAME``)."""

from __future__ import annotations

from tfopt._tf import tf


def digits_cnn():
    from tfopt.examples import keras_cnn

    return keras_cnn(seed=1)  # different initial weights: only a real restore can match


def wrong_cnn():
    import keras

    inputs = keras.Input((8, 8, 1), name="images")
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))


class Scaler(tf().Module):
    def __init__(self):
        super().__init__()
        self.w = tf().Variable(tf().zeros([4, 3]), name="w")

    @tf().function(input_signature=[tf().TensorSpec([None, 4], tf().float32, name="x")])
    def __call__(self, x):
        return {"y": tf().matmul(x, self.w)}


def scaler():
    return Scaler()


def digits_calibration():
    """A calibration generator (``--calibration tests.model_fns:digits_calibration``)."""
    from tfopt.examples import digits

    x_train = digits()[0]
    for start in range(0, 64, 16):
        yield {"images": x_train[start:start + 16]}


def balanced_accuracy(predictions, labels):
    """A custom report metric (``--metric tests.model_fns:balanced_accuracy``): mean per-class recall."""
    import numpy as np

    hits = predictions.argmax(-1) == labels
    return float(np.mean([hits[labels == c].mean() for c in np.unique(labels)]))
