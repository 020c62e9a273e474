"""Model-building functions for TF2 object-checkpoint tests (``--model-fn tests.model_fns:NAME``)."""

from __future__ import annotations

from tfopt._tf import tf


def digits_cnn():
    from tfopt.demos.examples import keras_cnn

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


class NamedHeads(tf().Module):
    """``x[:, 4] -> {name: x @ W_name}``, the heads in the given (not sorted) order."""

    def __init__(self, heads, seed=0):
        import numpy as np

        super().__init__()
        rng = np.random.default_rng(seed)
        self.heads = {name: tf().Variable(rng.standard_normal((4, width)).astype(np.float32), name=name)
                      for name, width in heads}

    @tf().function(input_signature=[tf().TensorSpec([None, 4], tf().float32, name="x")])
    def __call__(self, x):
        return {name: tf().matmul(x, w) for name, w in self.heads.items()}


ISSUE_HEADS = [("N", 3), ("D", 16), ("S", 5)]  # the Keras 2 model of issue 24 class 1, as a tf.Module


def named_heads():
    return NamedHeads(ISSUE_HEADS)


def digits_calibration():
    """A calibration generator (``--calibration tests.model_fns:digits_calibration``)."""
    from tfopt.demos.examples import digits

    x_train = digits()[0]
    for start in range(0, 64, 16):
        yield {"images": x_train[start:start + 16]}


def balanced_accuracy(predictions, labels):
    """A custom report metric (``--metric tests.model_fns:balanced_accuracy``): mean per-class recall."""
    import numpy as np

    hits = predictions.argmax(-1) == labels
    return float(np.mean([hits[labels == c].mean() for c in np.unique(labels)]))
