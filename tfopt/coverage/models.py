"""The coverage models, built in code (``weights=None``: nothing is downloaded) and saved the way
users save them. Each builder writes into a directory and returns the path tfopt loads.

Inputs are kept small (64-96 px) so the whole matrix runs in minutes on two cores; ``fast``
models form the subset that runs in ``make test``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tfopt._tf import tf


@dataclass(frozen=True)
class CoverageModel:
    name: str
    build: Callable[[str], str]  # directory -> model path
    description: str
    fast: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # load options (outputs, inputs, ...)
    dynamic_dim: int = 8  # what a calibration sample uses for an unknown non-batch dimension


def _keras_app(factory: str, size: int) -> Callable[[str], str]:
    def build(directory: str) -> str:
        import keras

        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, factory)(weights=None, input_shape=(size, size, 3), classes=10)
        path = os.path.join(directory, "savedmodel")
        model.export(path, verbose=False)
        return path

    return build


def _export(model: Any, directory: str) -> str:
    path = os.path.join(directory, "savedmodel")
    model.export(path, verbose=False)
    return path


def _text_classifier(directory: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((20,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(1000, 16)(tokens)
    h = keras.layers.LSTM(16, return_sequences=True)(h)
    h = keras.layers.GRU(16)(h)
    return _export(keras.Model(tokens, keras.layers.Dense(2, activation="softmax")(h)), directory)


def _transformer_block(directory: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 32), name="sequence")
    attention = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)(x, x)
    h = keras.layers.LayerNormalization()(x + attention)
    ffn = keras.layers.Dense(32)(keras.layers.Dense(64, activation="gelu")(h))
    h = keras.layers.LayerNormalization()(h + ffn)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    return _export(keras.Model(x, keras.layers.Dense(4, activation="softmax")(pooled)), directory)


def _two_in_two_out(directory: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    a, b = keras.Input((8,), name="features"), keras.Input((4,), name="context")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    score = keras.layers.Dense(1, name="score")(h)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(h)
    return _export(keras.Model([a, b], [score, probs]), directory)


def _dynamic_shapes(directory: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return _export(keras.Model(image, keras.layers.Dense(5, activation="softmax")(h)), directory)


def _while_cond_module(directory: str) -> str:
    t = tf()

    class Loop(t.Module):  # type: ignore[name-defined]
        """``tf.while_loop`` (three tanh layers sharing weights) then ``tf.cond`` on the result."""

        def __init__(self) -> None:
            super().__init__()
            self.w = t.Variable(t.random.stateless_normal([4, 4], seed=[0, 1]) * 0.5, name="w")

        @t.function(input_signature=[t.TensorSpec([None, 4], t.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            _, y = t.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, t.tanh(h @ self.w)), [t.constant(0), x])
            y = t.cond(t.reduce_sum(y) > 0, lambda: y * 2.0, lambda: y - 1.0)
            return {"y": y}

    path = os.path.join(directory, "savedmodel")
    module = Loop()
    t.saved_model.save(module, path, signatures=module.__call__)
    return path


def _string_lookup(directory: str) -> str:
    t = tf()

    class Lookup(t.Module):  # type: ignore[name-defined]
        """String tokens -> ids through a StaticHashTable -> embedding -> mean -> scores."""

        def __init__(self) -> None:
            super().__init__()
            keys = t.constant(["the", "cat", "sat", "on", "mat"])
            initializer = t.lookup.KeyValueTensorInitializer(keys, t.range(5, dtype=t.int64))
            self.table = t.lookup.StaticHashTable(initializer, 5)
            self.embedding = t.Variable(t.random.stateless_normal([6, 8], seed=[0, 2]), name="embedding")
            self.w = t.Variable(t.random.stateless_normal([8, 3], seed=[0, 3]), name="w")

        @t.function(input_signature=[t.TensorSpec([None, 6], t.string, name="words")])
        def __call__(self, words: Any) -> Any:
            vectors = t.gather(self.embedding, self.table.lookup(words))
            return {"scores": t.reduce_mean(vectors, axis=1) @ self.w}

    path = os.path.join(directory, "savedmodel")
    module = Lookup()
    t.saved_model.save(module, path, signatures=module.__call__)
    return path


def _int64_ids(directory: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int64", name="ids")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(ids))
    return _export(keras.Model(ids, keras.layers.Dense(3, activation="softmax")(h)), directory)


def _tf1_batchnorm(directory: str) -> str:
    from tfopt.demos.examples import train_tf1_checkpoint

    return train_tf1_checkpoint(os.path.join(directory, "checkpoint"), steps=5).directory


MODELS: dict[str, CoverageModel] = {m.name: m for m in [
    CoverageModel("MobileNetV2", _keras_app("MobileNetV2", 96), "keras.applications, 96x96"),
    CoverageModel("MobileNetV3Small", _keras_app("MobileNetV3Small", 96), "keras.applications, 96x96"),
    CoverageModel("ResNet50", _keras_app("ResNet50", 64), "keras.applications, 64x64"),
    CoverageModel("EfficientNetB0", _keras_app("EfficientNetB0", 64), "keras.applications, 64x64"),
    CoverageModel("DenseNet121", _keras_app("DenseNet121", 64), "keras.applications, 64x64"),
    CoverageModel("InceptionV3", _keras_app("InceptionV3", 75), "keras.applications, 75x75 (its minimum)"),
    CoverageModel("NASNetMobile", _keras_app("NASNetMobile", 64), "keras.applications, 64x64"),
    CoverageModel("ConvNeXtTiny", _keras_app("ConvNeXtTiny", 64), "keras.applications, 64x64"),
    CoverageModel("text LSTM+GRU", _text_classifier, "Embedding -> LSTM -> GRU -> Dense, int32 tokens", fast=True),
    CoverageModel("transformer block", _transformer_block, "MultiHeadAttention + LayerNormalization + FFN",
                  fast=True),
    CoverageModel("while + cond module", _while_cond_module, "tf.Module: tf.while_loop, then tf.cond", fast=True),
    CoverageModel("two in, two out", _two_in_two_out, "Keras functional, 2 inputs, 2 named outputs", fast=True),
    CoverageModel("dynamic batch + size", _dynamic_shapes, "conv net on (None, None, None, 3) images", fast=True,
                  dynamic_dim=32),
    CoverageModel("TF1 BN is_training", _tf1_batchnorm, "TF1 checkpoint, BatchNorm and dropout behind a "
                  "tf.cond on is_training", fast=True),
    CoverageModel("int64 ids embedding", _int64_ids, "Keras: int64 ids -> Embedding -> mean -> Dense", fast=True),
    CoverageModel("string lookup", _string_lookup, "tf.Module: string input, StaticHashTable, embedding",
                  fast=True),
]}
