"""Lookup tables filled by a SavedModel's init op are frozen as constants, exactly.

A TF1 SavedModel (``saved_model.Builder`` with ``main_op=tables_initializer()``, as every Estimator export
with a vocabulary or label table writes) reads ``HashTableV2`` tables in its signature. Freezing it used
to stop at Grappler ("Init node .../LookupTableImportV2 doesn't exist in graph" -> "Failed to import
metagraph"). Generated here: 1-3 tables int64 -> float with a default value (keys that miss), read in
the signature's path and inside a ``tf.cond`` branch, beside a variable; a string -> int64 table. The
frozen graph is checked by value against numbers computed from the tables and weights in numpy.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES, CLASSES = 3, 4


def _tables(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``n`` tables (keys, values, default): keys a strict subset of the class ids, so some ids miss."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        keys = np.sort(rng.choice(CLASSES + 2, CLASSES - 1, replace=False)).astype(np.int64)
        out.append((keys, rng.uniform(-5, 5, len(keys)).astype(np.float32), float(rng.integers(-9, -1))))
    return out


def _lookup(keys, values, default, ids):
    where = {int(k): float(v) for k, v in zip(keys, values)}
    return np.array([where.get(int(i), default) for i in ids.ravel()], np.float32).reshape(ids.shape)


def _tf1_savedmodel(directory: str, n: int, in_cond: bool, seed: int):
    """The SavedModel and ``expect(x) -> {name: array}`` computed in numpy."""
    import tensorflow as tf

    v1 = tf.compat.v1
    weights = np.random.default_rng(seed).standard_normal((FEATURES, CLASSES)).astype(np.float32)
    tables = _tables(n, seed)
    path = os.path.join(directory, "sm")
    with tf.Graph().as_default(), v1.Session() as session:
        x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
        logits = tf.matmul(x, v1.get_variable("w", initializer=tf.constant(weights)))
        ids = tf.argmax(logits, axis=1)
        outputs = {"logits": logits}
        for i, (keys, values, default) in enumerate(tables):
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), default, name=f"t{i}")
            if in_cond and i == 0:  # the branch not taken reads the table at other ids
                score = v1.cond(tf.reduce_sum(x) > 0, lambda t=table: t.lookup(ids),
                                lambda t=table: 2.0 * t.lookup(ids + 1))
            else:
                score = table.lookup(ids)
            outputs[f"score{i}"] = score + tf.reduce_max(logits, axis=1)
            if i == n - 1:  # LookupTableSizeV2: the constant n, broadcast to the batch
                outputs["size"] = table.size() + tf.zeros_like(ids)
        session.run([v1.global_variables_initializer(), v1.tables_initializer()])
        builder = v1.saved_model.Builder(path)
        signature = v1.saved_model.predict_signature_def({"x": x}, outputs)
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature},
                                             main_op=v1.tables_initializer())
        builder.save()

    def expect(xv: np.ndarray) -> dict[str, np.ndarray]:
        lg = xv @ weights
        got = {"logits": lg}
        idv = lg.argmax(axis=1)
        for i, (keys, values, default) in enumerate(tables):
            if in_cond and i == 0:
                score = _lookup(keys, values, default, idv) if xv.sum() > 0 \
                    else 2.0 * _lookup(keys, values, default, idv + 1)
            else:
                score = _lookup(keys, values, default, idv)
            got[f"score{i}"] = score + lg.max(axis=1)
        got["size"] = np.full(len(xv), len(tables[-1][0]), np.int64)
        return got
    expect.weights = weights  # type: ignore[attr-defined]
    return path, expect


def _inputs(seed: int, positive: bool, weights: np.ndarray) -> np.ndarray:
    """16 rows whose argmax spans the classes (and the misses), each row's sum of the sign wanted (a
    target may run a batch row by row: the cond's predicate must not change); each row's top two logits
    at least 0.05 apart, so a target's last-bit rounding cannot flip the id it looks up."""
    x = np.random.default_rng(seed).standard_normal((256, FEATURES)).astype(np.float32) * 2
    x = x + (3.0 if positive else -3.0)
    top2 = np.sort(x @ weights, axis=1)[:, -2:]
    sign = x.sum(axis=1) > 0 if positive else x.sum(axis=1) < 0
    return x[(top2[:, 1] - top2[:, 0] > 0.05) & sign][:16]


def _check(got, expected, where):
    assert set(got) == set(expected), where
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, atol=1e-5, rtol=0, err_msg=f"{where}: '{name}'")


# the fast lane keeps one table on the signature's path and three in a tf.cond; the rest are slow
CASES = [pytest.param(n, in_cond, n, id=f"{n}tables-{'cond' if in_cond else 'path'}",
                      marks=() if (n, in_cond) in ((1, False), (3, True)) else pytest.mark.slow)
         for n in (1, 2, 3) for in_cond in (False, True)]


@pytest.mark.parametrize(("n", "in_cond", "seed"), CASES)
def test_tf1_savedmodel_tables_freeze_to_constants(tmp_path, n, in_cond, seed):
    path, expect = _tf1_savedmodel(str(tmp_path), n, in_cond, seed)
    frozen, _ = tfopt.freeze(path)
    ops = {node.op for node in frozen.graph_def.node} | \
        {node.op for f in frozen.graph_def.library.function for node in f.node_def}
    assert not ops & {"HashTableV2", "LookupTableFindV2"}, ops
    run = GraphRunner(frozen)
    for positive in (True, False):
        x = _inputs(seed, positive, expect.weights)
        _check(run({"x": x}), expect(x), f"frozen graph, sum(x) {'>' if positive else '<'} 0")


def _run_artifacts(result, out, feeds):
    """``{(format, precision): outputs}`` of every artifact, run in its own runtime."""
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    model, got = manifest_model(out), {}
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), model)
        try:
            got[(artifact.format, artifact.precision)] = runner(feeds)
        finally:
            runner.close()
    return got


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_every_target_reads_the_constant_tables_by_value(tmp_path, target):
    """Two tables, one inside a ``tf.cond``, and a variable: each target's artifact equals the numbers."""
    path, expect = _tf1_savedmodel(str(tmp_path), 2, True, 7)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=[target])
    assert [a.format for a in result.artifacts] == [target]
    for positive in (True, False):
        x = _inputs(7, positive, expect.weights)
        for where, got in _run_artifacts(result, out, {"x": x}).items():
            _check(got, expect(x), f"{where}, sum(x) {'>' if positive else '<'} 0")


def _string_savedmodel(directory: str, vocabulary: list[str]):
    """words (string) -> ids through a table (a default for unknown words) -> ids and a variable's rows."""
    import tensorflow as tf

    v1 = tf.compat.v1
    rows = np.arange(2 * (len(vocabulary) + 1), dtype=np.float32).reshape(-1, 2)
    path = os.path.join(directory, "sm_strings")
    with tf.Graph().as_default(), v1.Session() as session:
        words = v1.placeholder(tf.string, [None], name="words")
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocabulary), tf.range(1, len(vocabulary) + 1, dtype=tf.int64)), 0)
        ids = table.lookup(words)
        embedded = tf.gather(v1.get_variable("rows", initializer=tf.constant(rows)), ids)
        session.run([v1.global_variables_initializer(), v1.tables_initializer()])
        builder = v1.saved_model.Builder(path)
        signature = v1.saved_model.predict_signature_def({"words": words}, {"ids": ids, "rows": embedded})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature},
                                             main_op=v1.tables_initializer())
        builder.save()

    def expect(feed: np.ndarray) -> dict[str, np.ndarray]:
        ids = np.array([vocabulary.index(w.decode()) + 1 if w.decode() in vocabulary else 0 for w in feed], np.int64)
        return {"ids": ids, "rows": rows[ids]}
    return path, expect


@pytest.mark.parametrize("vocabulary", [["cat"], ["the", "cat", "sat", "on", "mat"]], ids=["1word", "5words"])
def test_string_table_freezes_to_constants(tmp_path, vocabulary):
    path, expect = _string_savedmodel(str(tmp_path), vocabulary)
    frozen, _ = tfopt.freeze(path)
    words = np.array([b"mat", b"cat", b"dog", b"", b"the"], dtype=object)
    _check(GraphRunner(frozen)({"words": words}), expect(words), "frozen graph")


@pytest.mark.parametrize(("target", "named"), [("tflite", None), ("onnx", "Equal '"), ("openvino", "input 'words'")])
def test_string_table_in_each_target_by_value_or_a_typed_error(tmp_path, target, named):
    """TFLite has string EQUAL/GATHER: by value. ONNX (through tf2onnx) and OpenVINO cannot express a string
    comparison: a ConversionError naming the target and the op or input, never "Failed to import metagraph"."""
    from tfopt.errors import ConversionError

    path, expect = _string_savedmodel(str(tmp_path), ["the", "cat", "sat"])
    out = str(tmp_path / "out")
    words = np.array([b"sat", b"cat", b"dog", b"", b"the"], dtype=object)
    if named is None:
        result = tfopt.convert(path, out, to=[target])
        for where, got in _run_artifacts(result, out, {"words": words}).items():
            _check(got, expect(words), str(where))
        return
    with pytest.raises(ConversionError, match=f"{target}: .*{named}"):
        tfopt.convert(path, out, to=[target])
