"""TF2 object checkpoints of subclassed Keras models whose package is Keras-2-era (the eighth held-out
set's SUMOnet): the checkpoint was written by tf-keras, ``--model-fn`` builds the model with the
process's Keras 3 first (a partial restore there is refused, not accepted), then with the module's
Keras names bound to tf-keras; the model, which has no ``inputs``, is traced at the shape it was
built with. Frozen outputs equal the tf-keras model's at several batch sizes."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt.loaders._keras2_scope import keras2_names
from tfopt.runtimes.tensorflow import GraphRunner

FNS = {"gru_small": (9, 5), "gru_wide": (14, 7), "dense_only": (6, 3)}


def _written_by_keras2(fn: str, tmp_path, seed: int):
    import importlib

    import tensorflow as tf

    with keras2_names(["tests.model_fns_keras2"]):
        model = getattr(importlib.import_module("tests.model_fns_keras2"), fn)()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in model.get_weights()])
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    return prefix, model


@pytest.mark.parametrize("fn", sorted(FNS))
def test_keras2_subclassed_checkpoint_freezes_to_the_same_numbers(tmp_path, fn):
    prefix, model = _written_by_keras2(fn, tmp_path, seed=len(fn))
    frozen, _ = tfopt.freeze(prefix, model_fn=f"tests.model_fns_keras2:{fn}")
    # "keras2": Keras 3's build made no weights and the model was built again with tf-keras. In a long test
    # process the module can already hold tf-keras classes (imported under tfopt's Keras 2 scope by an earlier
    # test): then the first build matches. Either way the restore was complete (the numbers below).
    assert frozen.provenance.get("keras") in ("keras2", None)
    steps, features = FNS[fn]
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, steps, features)).astype(np.float32)
        got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
        np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-5, rtol=1e-5)


def test_a_partial_restore_is_refused(tmp_path):
    """A model with fewer variables than the checkpoint stores under it does not match it."""
    prefix, _ = _written_by_keras2("gru_wide", tmp_path, seed=1)
    with pytest.raises(tfopt.GraphError, match="does not match the checkpoint"):
        tfopt.load(prefix, model_fn="tests.model_fns_keras2:dense_only")
