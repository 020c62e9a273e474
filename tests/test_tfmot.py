"""TFMOT models (Keras 2 / tf-keras): QAT to real int8 without calibration, pruning stripped on load."""

from __future__ import annotations

import os

import numpy as np

from tfopt.conversion.convert import convert
from tfopt.conversion.manifest import manifest_model
from tfopt.demos import examples
from tfopt.runtimes import runner_for


def _cnn():
    import tf_keras

    inputs = tf_keras.Input((8, 8, 1), name="images")
    h = tf_keras.layers.Conv2D(8, 3, padding="same")(inputs)  # Conv -> BN -> ReLU: the order QAT folds
    h = tf_keras.layers.ReLU()(tf_keras.layers.BatchNormalization()(h))
    h = tf_keras.layers.Flatten()(tf_keras.layers.MaxPooling2D()(h))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(10, activation="softmax", name="probs")(h))


def _accuracy(out, artifact, x, y):
    runner = runner_for(artifact.format, os.path.join(out, artifact.path), manifest_model(out))
    probs = np.concatenate([next(iter(runner({"images": x[i:i + 1]}).values())) for i in range(len(x))])
    return float(np.mean(probs.argmax(-1) == y))


def test_qat_model_converts_to_int8_without_calibration(tmp_path, tfmot):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = examples.digits()
    model = tfmot.quantization.keras.quantize_model(_cnn())
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    path = str(tmp_path / "qat.h5")
    model.save(path)
    qat_accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test))

    out = str(tmp_path / "out")
    result = convert(path, out, to=["tflite", "onnx", "openvino"], quantize=["int8"])  # no --calibration
    tflite = next(a for a in result.artifacts if a.format == "tflite")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.path.join(out, tflite.path))
    assert any(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())  # real int8 inside
    for artifact in result.artifacts:
        assert _accuracy(out, artifact, x_test, y_test) >= qat_accuracy - 0.015, artifact.format


def test_pruned_model_is_stripped_and_compresses(tmp_path, tfmot):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    x_train, y_train, x_test, _ = examples.digits()
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(_cnn(), pruning_schedule=schedule)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    path = str(tmp_path / "pruned.h5")
    pruned.save(path)  # with its pruning wrappers, as training scripts leave it
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)

    out = str(tmp_path / "out")
    result = convert(path, out, to=["tflite", "onnx"])
    dense = {w.name: w.numpy() for w in stripped.weights if "kernel" in w.name}
    assert all(np.mean(v == 0) >= 0.5 for v in dense.values())  # the model really is sparse
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), manifest_model(out))
        got = next(iter(runner({"images": x_test[:4]}).values()))
        np.testing.assert_allclose(got, stripped.predict(x_test[:4], verbose=0), atol=1e-5)
        assert artifact.gzip_bytes < 0.8 * artifact.bytes  # zeros only shrink once compressed
    import json

    with open(os.path.join(out, "manifest.json")) as f:
        assert all("gzip_bytes" in a for a in json.load(f)["artifacts"])


def test_clustered_model_is_stripped_to_its_centroids(tmp_path, tfmot):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    x_train, y_train, x_test, _ = examples.digits()
    init = tfmot.clustering.keras.CentroidInitialization.LINEAR
    clustered = tfmot.clustering.keras.cluster_weights(_cnn(), number_of_clusters=8, cluster_centroids_init=init)
    clustered.compile("adam", "sparse_categorical_crossentropy")
    clustered.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "clustered.h5")
    clustered.save(path)
    stripped = tfmot.clustering.keras.strip_clustering(clustered)

    out = str(tmp_path / "out")
    result = convert(path, out, to=["tflite"])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.path.join(out, result.artifacts[0].path))
    interpreter.allocate_tensors()
    weights = []
    for d in interpreter.get_tensor_details():
        if d["dtype"] == np.float32 and len(d["shape"]) >= 2 and np.prod(d["shape"]) >= 72:
            try:
                weights.append(interpreter.get_tensor(d["index"]))
            except ValueError:  # activations hold no data before invoke(); weights are constants
                continue
    # 8 centroids per output channel (TFLite's axis 0): folding BatchNorm scales each channel by its own
    # factor, exactly as TFLite's converter does, so a conv kernel holds 8 values per channel, not per tensor.
    assert weights and all(len(np.unique(row)) <= 8 for w in weights for row in w.reshape(w.shape[0], -1))
    runner = runner_for("tflite", os.path.join(out, result.artifacts[0].path), manifest_model(out))
    np.testing.assert_allclose(next(iter(runner({"images": x_test[:4]}).values())),
                               stripped.predict(x_test[:4], verbose=0), atol=1e-5)
