from __future__ import annotations

import json
import os

import numpy as np
import pytest

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


def test_the_serving_savedmodel_is_the_same_bytes_written_again_in_the_same_process(tmp_path):
    """TensorFlow numbers traced functions from a process-wide counter (``__inference_serve_601``): the same
    model written twice in one process gave two ``saved_model.pb`` (and fingerprints). Renumbered, the bytes
    are equal, and the directory still loads and serves the model's numbers (a loop holding a cond:
    library functions the serving function calls)."""
    from tests.graphdef.test_function_names import _frozen
    from tfopt.emitters.savedmodel import emit_savedmodel
    from tfopt.loaders import load

    graph_def, io = _frozen(0.5)
    (tmp_path / "m.pb").write_bytes(graph_def.SerializeToString())
    model = load(str(tmp_path / "m.pb"))
    written = [emit_savedmodel(model, str(tmp_path / f"sm{i}")) for i in range(2)]
    for name in ("saved_model.pb", "fingerprint.pb"):
        first, again = ((tmp_path / w / name).read_bytes() for w in written)
        assert first == again, name
    served = tf().saved_model.load(written[1]).signatures["serving_default"]
    np.testing.assert_allclose(served(x=tf().constant(io["x"]))["y"].numpy(), io["y"], atol=1e-5)


INPUT_NAMES = [["IteratorGetNext/output_0"], ["input/x", "input/lengths_1"], ["0x", "images"]]


@pytest.mark.parametrize("names", INPUT_NAMES, ids=["iterator-element", "scoped-pair", "digit-first"])
def test_inputs_named_outside_python_rules_are_carried_and_verified(names, tmp_path):
    """Inputs whose names a signature argument cannot hold (an iterator's element cut into an input,
    a scoped placeholder, a leading digit): the SavedModel writes TensorFlow's argument name, records
    it in tfopt.json, the artifact verifies (its runner pairs by that name) and gives TF's numbers."""
    from tests.helpers import graph_pb
    from tfopt.external.serving import serving_arg_name
    from tfopt.targets import target

    rng = np.random.default_rng(len(names[0]))
    weights = [rng.normal(size=[3, 2]).astype(np.float32) for _ in names]

    def build(t):
        xs = [t.compat.v1.placeholder(t.float32, [None, 3], name=n) for n in names]
        t.identity(t.add_n([t.matmul(x, w) for x, w in zip(xs, weights)]), name="head/out")

    pb = graph_pb(tmp_path / "frozen.pb", build)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["savedmodel"])
    (artifact,) = result.artifacts
    assert artifact.max_abs_err is not None and artifact.max_abs_err <= 1e-6
    path = os.path.join(result.outdir, artifact.path)
    feeds = {n: rng.normal(size=[2, 3]).astype(np.float32) for n in names}
    expected = sum(feeds[n] @ w for n, w in zip(names, weights))
    with open(os.path.join(path, "assets.extra", "tfopt.json")) as f:
        recorded = json.load(f).get("inputs", {})
    assert recorded == {n: serving_arg_name(n) for n in names if serving_arg_name(n) != n}
    fn = tf().saved_model.load(path).signatures["serving_default"]
    got = fn(**{serving_arg_name(n): tf().constant(v) for n, v in feeds.items()})["head/out"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    frozen = tfopt.load(pb)
    runner = target("savedmodel").call("runner", path, frozen, 1)
    np.testing.assert_allclose(runner(feeds)["head/out"], expected, atol=1e-5, rtol=1e-5)
