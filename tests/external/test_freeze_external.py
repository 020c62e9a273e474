"""Freezing keeps tensors over ``--external-threshold`` outside the GraphDef, for every format, and
the frozen model computes what the original does (TensorFlow runs both)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.external.conftest import THRESHOLD, tf1_checkpoint
from tfopt.conversion.pipeline import freeze_model, optimize_model
from tfopt.external import EXTERNAL_OP, external_nodes
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.testing import compare, random_inputs
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL


def check_frozen(frozen, *, seeds=(0, 1)) -> None:
    """Every tensor over the threshold is an ImmutableConst whose file holds it; no Const is that
    large; the frozen graph equals the original on several inputs."""
    graph = frozen.graph_def
    outside = external_nodes(graph)
    assert outside, "no tensor was kept outside the graph"
    assert all(n.name in frozen.external for n in outside)
    big_consts = [n.name for n in graph.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_content) >= THRESHOLD]
    assert not big_consts
    assert graph.ByteSize() < sum(frozen.external[n.name].nbytes for n in outside)
    runner = GraphRunner(frozen)
    for seed in seeds:
        feeds = random_inputs(frozen.inputs, seed=seed, graph_def=graph)
        diffs = compare(frozen.reference(feeds), runner(feeds), atol=FREEZE_ATOL, rtol=FREEZE_RTOL)
        assert diffs and all(d.ok for d in diffs), diffs


def test_keras_embedding_dense(keras_file):
    frozen, _ = freeze_model(keras_file, external_threshold=THRESHOLD)
    check_frozen(frozen)
    assert any(frozen.external[n].shape[0] in (300, 600, 1000) for n in frozen.external)  # the table itself


def test_tf2_savedmodel(tf2_savedmodel):
    frozen, _ = freeze_model(tf2_savedmodel, external_threshold=THRESHOLD)
    check_frozen(frozen)
    assert "GatherV2" in {n.op for n in frozen.graph_def.node}  # the ResourceGather reads the file


def test_keras3_export(tmp_path):
    from tests.external.conftest import recommender

    path = str(tmp_path / "exported")
    recommender(400, 16, 8).export(path, verbose=False)
    frozen, _ = freeze_model(path, external_threshold=THRESHOLD)
    check_frozen(frozen)


@pytest.mark.parametrize("resource", [False, True], ids=["ref-variables", "resource-variables"])
@pytest.mark.parametrize("rows", [150, 900])
def test_tf1_checkpoint(tmp_path, rows, resource):
    prefix = tf1_checkpoint(str(tmp_path), rows, resource=resource)
    frozen, _ = freeze_model(prefix + ".meta", outputs=["probs"], external_threshold=THRESHOLD)
    check_frozen(frozen)
    assert [frozen.external[n].shape for n in frozen.external] == [(rows, 12)]  # the 144-byte kernel stays a Const


def test_default_threshold_keeps_small_models_as_they_were(tf2_savedmodel):
    frozen, _ = freeze_model(tf2_savedmodel)
    assert frozen.external is None and not external_nodes(frozen.graph_def)


def test_optimize_skips_folds_into_external_weights(tmp_path):
    """BatchNorm after a conv whose kernel is outside: the fold is declined with the reason, the
    rest optimizes, and both graphs equal the original."""
    import keras

    x = keras.Input((10, 10, 3), name="img")
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(48, 3)(x))
    y = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(y)))
    path = str(tmp_path / "cnn.keras")
    keras.Model(x, y).save(path)
    portable, runtime, _, report = optimize_model(path, external_threshold=THRESHOLD)
    reasons = [s.reason for p in report.passes for s in p.skips]
    assert any("not constant" in r and EXTERNAL_OP in r for r in reasons), reasons
    for model in (portable, runtime):
        check_frozen(model)


@pytest.mark.parametrize("trained", [0.5, -2.0])
def test_tf2_object_checkpoint(tmp_path, trained):
    """The checkpoint's values (not the model_fn's initial ones) end up in the external file."""
    from tests.external.conftest import table_module
    from tfopt._tf import tf

    module = table_module()
    module.table.assign(module.table * trained)
    prefix = tf().train.Checkpoint(model=module).save(str(tmp_path / "ckpt"))
    frozen, _ = freeze_model(prefix, model_fn="tests.external.conftest:table_module",
                             signature="serve", external_threshold=THRESHOLD)
    check_frozen(frozen)
    (name,) = [n for n in frozen.external if frozen.external[n].shape == (500, 16)]
    np.testing.assert_array_equal(frozen.external[name].read(), module.table.numpy())
