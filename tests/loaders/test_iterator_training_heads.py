"""TF1 training checkpoints (conv or dense network, Adam, softmax cross-entropy) with 1-3 streaming
metrics — ``tf.compat.v1.metrics.accuracy``/``mean`` and per-class means written as TF 1.10 wrote
them (``update_op = Select(count > 0, total / count, 0)`` over ``AssignAdd``s) — whose images and labels
come from placeholders, an initializable or a one-shot ``tf.data`` iterator. With no flag, tfopt
picks the network's logits (never a metric's update, never the loss's plumbing), and every target
holds TensorFlow's numbers at the logits."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import tfopt
from tfopt.loaders.output_choice import head_root
from tfopt.targets import target

SOURCES = ("placeholder", "initializable", "one-shot")
ARCHS = {"conv": [None, 8, 8, 3], "dense": [None, 12]}
CLASSES = 4
ATOL = 1e-4  # float32 conv/dense over a few dozen terms, any runtime
CASES = {f"{a}-{s}-{m}": (a, s, m) for (a, s), m in zip(itertools.product(ARCHS, SOURCES), (1, 3, 2, 2, 1, 3))}


def _metrics(t, truth, pred, count: int) -> None:
    """``count`` streaming metrics: accuracy, a per-class TF 1.10 mean, a ``metrics.mean`` of the hits."""
    v1 = t.compat.v1
    v1.metrics.accuracy(truth, pred, name="acc")
    if count >= 2:
        for scope in ("train_metrics", "test_metrics"):
            for c in range(CLASSES):
                with v1.variable_scope(f"{scope}/class_{c}"):
                    hit = t.cast(t.equal(t.equal(truth, c), t.equal(pred, c)), t.float32)
                    total = v1.get_local_variable("total", [], initializer=v1.zeros_initializer())
                    seen = v1.get_local_variable("count", [], initializer=v1.zeros_initializer())
                    up_total = v1.assign_add(total, t.reduce_sum(hit))
                    up_count = v1.assign_add(seen, t.cast(t.size(hit), t.float32))
                    v1.where(up_count > 0, up_total / up_count, t.zeros_like(up_count), name="update_op")
    if count >= 3:
        v1.metrics.mean(t.cast(t.equal(truth, pred), t.float32), name="mean_hits")


def _save(case: str, root) -> tuple[str, str, np.ndarray, np.ndarray]:
    """The checkpoint prefix, the logits' node, an image batch and TensorFlow's logits for it."""
    from tfopt._tf import tf

    arch, source, metrics = CASES[case]
    t, v1 = tf(), tf().compat.v1
    shape = ARCHS[arch]
    rng = np.random.default_rng(len(case))
    graph = t.Graph()
    with graph.as_default():
        if source == "placeholder":
            x = v1.placeholder(t.float32, shape, name="images")
            y = v1.placeholder(t.float32, [*shape[:-1], CLASSES], name="masks")
        else:
            data = (np.zeros([4, *shape[1:]], np.float32), np.zeros([4, *shape[1:-1], CLASSES], np.float32))
            ds = t.data.Dataset.from_tensor_slices(data).batch(2)
            it = v1.data.make_initializable_iterator(ds) if source == "initializable" else \
                v1.data.make_one_shot_iterator(ds)
            x, y = it.get_next()
        if arch == "conv":
            h = t.nn.relu(t.nn.conv2d(x, v1.get_variable("w1", [3, 3, 3, 6]), 1, "SAME"))
            logits = t.nn.bias_add(t.nn.conv2d(h, v1.get_variable("w2", [1, 1, 6, CLASSES]), 1, "SAME"),
                                   v1.get_variable("b2", [CLASSES]), name="logits")
        else:
            h = t.nn.relu(t.matmul(x, v1.get_variable("w1", [12, 16])))
            logits = t.nn.bias_add(t.matmul(h, v1.get_variable("w2", [16, CLASSES])),
                                   v1.get_variable("b2", [CLASSES]), name="logits")
        flat_logits, flat_y = t.reshape(logits, [-1, CLASSES]), t.reshape(y, [-1, CLASSES])
        loss = t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(labels=flat_y, logits=flat_logits))
        v1.train.AdamOptimizer().minimize(loss)
        _metrics(t, t.argmax(flat_y, 1), t.argmax(flat_logits, 1), metrics)
        with v1.Session(graph=graph) as sess:
            sess.run([v1.global_variables_initializer(), v1.local_variables_initializer()])
            images = rng.normal(size=[2, *shape[1:]]).astype(np.float32)
            expected = sess.run(logits, {x: images})
            prefix = str(root / "ckpt" / "model")
            v1.train.Saver().save(sess, prefix)
    return prefix, "logits", images, expected


@pytest.fixture(scope="module", params=list(CASES))
def saved(request, tmp_path_factory):
    return _save(request.param, tmp_path_factory.mktemp(request.param))


def test_the_logits_are_the_head_and_no_metric_update_is_a_candidate(saved):
    prefix, logits, images, expected = saved
    model = tfopt.load(prefix)
    nodes = {n.name: n for n in model.graph_def.node}
    assert len(model.outputs) == 1, [s.name for s in model.outputs]
    assert head_root(nodes[model.outputs[0].node], nodes) == logits
    assert model.outputs[0].node in (logits, "Reshape")  # the logits or the metric's flat form: never the loss's
    info = tfopt.inspect(prefix)
    assert not [c for c in info["output_candidates"] if "update_op" in c or "metrics" in c or c.startswith("acc")]
    assert len(model.inputs) == 1 and tuple(model.inputs[0].shape or ())[1:] == tuple(images.shape[1:])
    frozen, _ = tfopt.freeze(prefix)
    from tfopt.runtimes.tensorflow import GraphRunner

    got = GraphRunner(frozen)({model.inputs[0].name: images})[frozen.outputs[0].name]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["conv-initializable-3", "dense-one-shot-3"])
def test_converts_and_verifies_in_every_target_without_flags(case, tmp_path):
    prefix, _, images, expected = _save(case, tmp_path)
    targets = ["tflite", "onnx", "openvino", "savedmodel"]  # the SavedModel's argument: the element's name as TF allows
    result = tfopt.convert(prefix, str(tmp_path / "out"), to=targets)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    frozen, _ = tfopt.freeze(prefix)
    (spec,), (out,) = frozen.inputs, frozen.outputs
    for artifact in result.artifacts:
        runner = target(artifact.format).call("runner", os.path.join(result.outdir, artifact.path), frozen, 1)
        got = runner({spec.name: images})[out.name]
        np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=ATOL, rtol=ATOL, err_msg=artifact.format)
