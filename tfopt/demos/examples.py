"""Small models trained in seconds on scikit-learn's bundled digits (no download).

They back ``make demo`` and the tests: a TF1 graph written the way TF1 training scripts wrote
them (placeholders, ``tf.cond`` on ``is_training`` around BatchNorm and dropout, Adam, a Saver,
a summary), and a Keras 3 CNN with BatchNormalization and Dropout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt._tf import tf


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: 8x8x1 float32 images in [0, 1], int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - dev extra
        raise ImportError("the examples need scikit-learn: pip install 'tfopt[dev]'") from exc
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return x[:split], y[:split], x[split:], y[split:]


@contextlib.contextmanager
def control_flow_v1() -> Iterator[None]:
    """Build ``tf.cond`` as Switch/Merge, as TF1 did (TF2 builds functional If by default)."""
    t = tf()
    was_v2 = t.compat.v1.control_flow_v2_enabled()
    t.compat.v1.disable_control_flow_v2()
    try:
        yield
    finally:
        if was_v2:
            t.compat.v1.enable_control_flow_v2()


@dataclass
class TF1Checkpoint:
    directory: str
    meta: str
    prefix: str
    input: str = "images"
    output: str = "probs"


def train_tf1_checkpoint(directory: str, *, steps: int = 60, seed: int = 0, resource_variables: bool = False,
                         v1_control_flow: bool = True) -> TF1Checkpoint:
    """Train the TF1-style digits CNN for ``steps`` Adam steps and save it with a Saver."""
    t = tf()
    v1 = t.compat.v1
    x_train, y_train, _, _ = digits(seed)
    os.makedirs(directory, exist_ok=True)
    graph = t.Graph()
    flow = control_flow_v1() if v1_control_flow else contextlib.nullcontext()
    with graph.as_default(), flow:
        v1.set_random_seed(seed)
        images = v1.placeholder(t.float32, [None, 8, 8, 1], name="images")
        labels = v1.placeholder(t.int64, [None], name="labels")
        is_training = v1.placeholder(t.bool, [], name="is_training")

        def var(name: str, shape: list[int], init: Any) -> Any:
            return v1.get_variable(name, shape, initializer=init, use_resource=resource_variables)

        kernel = var("conv1/kernel", [3, 3, 1, 8], v1.glorot_uniform_initializer(seed=seed))
        bias = var("conv1/bias", [8], v1.zeros_initializer())
        h = t.nn.bias_add(t.nn.conv2d(images, kernel, [1, 1, 1, 1], "SAME"), bias)
        gamma = var("bn1/gamma", [8], v1.ones_initializer())
        beta = var("bn1/beta", [8], v1.zeros_initializer())
        moving_mean = v1.get_variable("bn1/moving_mean", [8], initializer=v1.zeros_initializer(),
                                      trainable=False, use_resource=resource_variables)
        moving_var = v1.get_variable("bn1/moving_variance", [8], initializer=v1.ones_initializer(),
                                     trainable=False, use_resource=resource_variables)

        def bn_train() -> Any:
            mean, variance = t.nn.moments(h, [0, 1, 2])
            updates = [v1.assign(moving_mean, 0.9 * moving_mean + 0.1 * mean),
                       v1.assign(moving_var, 0.9 * moving_var + 0.1 * variance)]
            with t.control_dependencies(updates):
                return t.nn.batch_normalization(h, mean, variance, beta, gamma, 1e-3)

        def bn_infer() -> Any:
            return t.nn.batch_normalization(h, moving_mean, moving_var, beta, gamma, 1e-3)

        h = v1.cond(is_training, bn_train, bn_infer, name="bn1/cond")
        h = t.nn.max_pool2d(t.nn.relu(h), 2, 2, "VALID")
        h = v1.cond(is_training, lambda: t.nn.dropout(h, rate=0.3, seed=seed), lambda: h, name="dropout")
        h = t.reshape(h, [-1, 4 * 4 * 8])
        w2 = var("dense/kernel", [4 * 4 * 8, 10], v1.glorot_uniform_initializer(seed=seed + 1))
        b2 = var("dense/bias", [10], v1.zeros_initializer())
        logits = t.nn.bias_add(t.matmul(h, w2), b2, name="logits")
        t.nn.softmax(logits, name="probs")
        with t.name_scope("loss"):
            loss = t.reduce_mean(t.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        v1.summary.scalar("loss", loss)
        global_step = v1.train.get_or_create_global_step()
        train_op = v1.train.AdamOptimizer(1e-2).minimize(loss, global_step=global_step)
        saver = v1.train.Saver()
        rng = np.random.default_rng(seed)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(steps):
                idx = rng.integers(0, len(x_train), 64)
                sess.run(train_op, {images: x_train[idx], labels: y_train[idx], is_training: True})
            prefix = saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=steps)
    return TF1Checkpoint(directory=directory, meta=prefix + ".meta", prefix=prefix)


def keras_cnn(seed: int = 0) -> Any:
    """The Keras 3 digits CNN, untrained: Conv -> BatchNorm -> ReLU -> Pool -> Dropout -> Dense."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train_keras_cnn(*, epochs: int = 3, seed: int = 0) -> Any:
    model = keras_cnn(seed)
    x_train, y_train, _, _ = digits(seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


def keras_mobilenet_like(seed: int = 0, *, max_value: float | None = 6.0) -> Any:
    """A MobileNet-style digits classifier: depthwise-separable blocks, each conv followed by
    BatchNormalization and ReLU6 (``max_value=None``: ReLU), the architecture where per-tensor int8
    weights are known to fail: folding BatchNorm gives each depthwise channel its own weight range."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="images")
    h = _conv_bn_relu6(keras, keras.layers.Conv2D(16, 3, padding="same", use_bias=False), inputs, max_value)
    for filters, stride in ((32, 1), (64, 2), (64, 1)):
        h = _conv_bn_relu6(keras, keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False), h,
                           max_value)
        h = _conv_bn_relu6(keras, keras.layers.Conv2D(filters, 1, use_bias=False), h, max_value)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inputs, outputs, name="digits_mobilenet")


def keras_resnet_like(seed: int = 0) -> Any:
    """A ResNet-style digits classifier: two residual blocks (conv-BN-ReLU-conv-BN + skip, ReLU)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Conv2D(16, 3, padding="same")(inputs)))
    for _ in range(2):
        r = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Conv2D(16, 3, padding="same")(h)))
        r = keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Conv2D(16, 3, padding="same")(r))
        h = keras.layers.ReLU()(keras.layers.Add()([h, r]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inputs, outputs, name="digits_resnet")


def _conv_bn_relu6(keras: Any, layer: Any, x: Any, max_value: float | None = 6.0) -> Any:
    return keras.layers.ReLU(max_value)(keras.layers.BatchNormalization(momentum=0.9)(layer(x)))


def spread_depthwise_channels(model: Any, *, decades: float = 3.0, seed: int = 0) -> Any:
    """Rescale each depthwise BatchNorm's output channel by a factor over ``decades`` decades and
    divide the next 1x1 conv's matching input channel by it: the float function is unchanged
    through a ReLU (``relu(k·x) = k·relu(x)``, k > 0), but the folded depthwise kernel's channel
    ranges now differ as a MobileNet's trained BatchNorms leave them (small γ, large variance).
    Layers are matched by class name, so a tf_keras (Keras 2) model works too (there DepthwiseConv2D
    subclasses Conv2D)."""
    rng = np.random.default_rng(seed)
    layers = model.layers
    for i, layer in enumerate(layers):
        if type(layer).__name__ != "DepthwiseConv2D":
            continue
        bn = layers[i + 1]
        conv = next(x for x in layers[i + 2:] if type(x).__name__ == "Conv2D")
        gamma, beta, mean, var = bn.get_weights()
        k = (10 ** rng.uniform(-decades, 0, gamma.shape[0])).astype(np.float32)
        bn.set_weights([gamma * k, beta * k, mean, var])
        kernel = conv.get_weights()
        kernel[0] = kernel[0] / k.reshape(1, 1, -1, 1)
        conv.set_weights(kernel)
    return model


def train(model: Any, *, epochs: int = 10, seed: int = 0) -> Any:
    """Fit any of these digits models (Adam, batch 64); returns it."""
    x_train, y_train, _, _ = digits(seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model
