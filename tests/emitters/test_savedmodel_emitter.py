from __future__ import annotations

import os

import numpy as np

import tfopt
from tests.conftest import saver_predict
from tfopt._tf import tf


def test_serving_savedmodel_same_names_and_numbers(tf1_ckpt, tmp_path, digits_test):
    frozen, _ = tfopt.freeze(tf1_ckpt.directory)
    path = tfopt.save(frozen, str(tmp_path / "serving"))
    loaded = tf().saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["images"]
    assert list(fn.structured_outputs) == ["probs"]
    x, _ = digits_test
    got = fn(images=tf().constant(x))["probs"].numpy()
    np.testing.assert_allclose(got, saver_predict(tf1_ckpt, x), atol=1e-5)
    assert not os.listdir(os.path.join(path, "variables")) or all(  # no weights outside the graph
        os.path.getsize(os.path.join(path, "variables", f)) < 1024 for f in os.listdir(os.path.join(path, "variables")))
    # and it loads back into tfopt as a model of its own
    again, _ = tfopt.freeze(path)
    assert [s.name for s in again.inputs] == ["images"]


def test_pb_is_deterministic(tf1_ckpt, tmp_path):
    a = tfopt.save(tfopt.freeze(tf1_ckpt.prefix)[0], str(tmp_path / "a.pb"))
    b = tfopt.save(tfopt.freeze(tf1_ckpt.prefix)[0], str(tmp_path / "b.pb"))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    assert sorted(os.listdir(tmp_path)) == ["a.pb", "b.pb"]  # no temporaries left behind
