"""Small generated models whose weights cross a few-KB threshold, so the large-model code paths run
(the real 2 GB model is the slow lane's, in tests/emitters)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from tfopt._tf import tf

THRESHOLD = 4096  # bytes: every table/kernel below is over it, every bias under it


def recommender(vocab: int, dim: int, hidden: int, *, keras2: bool = False):
    """Embedding + Dense: inputs ``ids`` int32[?, 8] and ``feats`` float32[?, 16], one sigmoid output
    (``keras2``: built with tf_keras, which is what an ``.h5`` file holds)."""
    if keras2:
        import tf_keras as keras
    else:
        import keras

    ids = keras.Input((8,), dtype="int32", name="ids")
    feats = keras.Input((16,), name="feats")
    e = keras.layers.Flatten()(keras.layers.Embedding(vocab, dim)(ids))
    x = keras.layers.Dense(hidden, activation="relu")(keras.layers.Concatenate()([e, feats]))
    return keras.Model([ids, feats], keras.layers.Dense(1, activation="sigmoid")(x))


@pytest.fixture(params=[((300, 8, 16), "keras"), ((1000, 32, 64), "keras"), ((600, 16, 8), "h5")],
                ids=["vocab300", "vocab1000", "keras2-h5-vocab600"])
def keras_file(request, tmp_path):
    sizes, suffix = request.param
    path = str(tmp_path / f"rec.{suffix}")
    with warnings.catch_warnings():  # tf_keras: "HDF5 ... is considered legacy": that is the format under test
        warnings.simplefilter("ignore", UserWarning)
        recommender(*sizes, keras2=suffix == "h5").save(path)
    return path


class Table(tf().Module):
    """A TF2 module: a table looked up by ids, a projection matrix, a small bias."""

    def __init__(self, rows: int, dim: int, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.table = tf().Variable(rng.standard_normal((rows, dim)).astype("float32"), name="table")
        self.proj = tf().Variable(rng.standard_normal((dim, 4)).astype("float32"), name="proj")
        self.bias = tf().Variable(np.zeros(4, "float32"), name="bias")

    @tf().function(input_signature=[tf().TensorSpec([None, 5], tf().int32, name="ids")])
    def serve(self, ids):
        pooled = tf().reduce_mean(tf().gather(self.table, ids), axis=1)
        return {"scores": tf().matmul(pooled, self.proj) + self.bias}


@pytest.fixture(params=[(200, 16), (700, 24)], ids=["rows200", "rows700"])
def tf2_savedmodel(request, tmp_path):
    module = Table(*request.param, seed=len(request.param))
    path = str(tmp_path / "sm")
    tf().saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def tf1_checkpoint(directory: str, rows: int, *, resource: bool) -> str:
    """A TF1 graph (``ids`` -> embedding lookup -> dense -> ``probs``) saved by a Saver; returns the prefix."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        ids = v1.placeholder(t.int32, [None, 6], name="ids")
        rng = np.random.default_rng(rows)
        table = v1.get_variable("table", initializer=rng.standard_normal((rows, 12)).astype("float32"),
                                use_resource=resource)
        kernel = v1.get_variable("kernel", initializer=rng.standard_normal((12, 3)).astype("float32"),
                                 use_resource=resource)
        pooled = t.reduce_sum(t.nn.embedding_lookup(table, ids), axis=1)
        t.nn.softmax(t.matmul(pooled, kernel), name="probs")
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            return saver.save(session, os.path.join(directory, "model"))


def table_module() -> Table:
    """``--model-fn tests.external.conftest:table_module`` for the TF2 object-checkpoint test."""
    return Table(500, 16, seed=9)
