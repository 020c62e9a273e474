"""Which outputs tfopt picks in graphs without a signature (frozen GraphDefs, TF1 checkpoints).

Generated tf.compat.v1 graphs of several depths and widths: a float softmax beside an argmax/bool
prediction derived from the same logits (the float head is chosen, the decision listed); a softmax
that feeds only an accuracy metric against a labels placeholder, with and without a loss and an
optimizer (the softmax is the output); several heads (all chosen, every decision listed).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES = 5


def _logits(t, x, depth, classes, rng, scope):
    """A small MLP in constants (a frozen graph) or variables (a checkpoint): ``depth`` hidden layers."""
    h = x
    width = FEATURES
    for i in range(depth + 1):
        out = classes if i == depth else 4 + i
        w = rng.standard_normal((width, out)).astype(np.float32)
        h = t.matmul(h, t.constant(w) if scope is None else t.compat.v1.get_variable(
            f"{scope}/w{i}", initializer=w))
        if i < depth:
            h = t.nn.relu(h)
        width = out
    return h


DECISIONS = {
    "argmax": lambda t, logits: t.argmax(logits, 1, name="pred"),
    "argmax-int32": lambda t, logits: t.cast(t.argmax(logits, 1), t.int32, name="pred"),
    "bool-threshold": lambda t, logits: t.greater(logits, 0.0, name="pred"),
}
SHAPES = [(0, 2), (1, 3), (2, 7)]  # (hidden layers, classes)


def _frozen_pb(path, decision, depth, classes):
    t = tf()
    rng = np.random.default_rng(depth * 10 + classes)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="x")
        logits = _logits(t, x, depth, classes, rng, None)
        t.nn.softmax(logits, name="prob")
        DECISIONS[decision](t, logits)
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return str(path)


@pytest.mark.parametrize(("depth", "classes"), SHAPES, ids=[f"depth{d}-classes{c}" for d, c in SHAPES])
@pytest.mark.parametrize("decision", list(DECISIONS))
def test_float_head_chosen_over_the_decision_derived_from_it(tmp_path, decision, depth, classes, caplog):
    path = _frozen_pb(tmp_path / "model.pb", decision, depth, classes)
    with caplog.at_level("WARNING", logger="tfopt"):
        model = tfopt.load(path)
    assert [s.name for s in model.outputs] == ["prob"] and model.outputs[0].dtype == "float32"
    assert list(model.provenance["output_alternatives"]) == ["pred"]
    assert "pred" in caplog.text and "--outputs" in caplog.text
    info = tfopt.inspect(path)
    assert info["outputs"] == [{"name": "prob"}] and list(info["output_alternatives"]) == ["pred"]
    assert "not chosen" in info["output_reasons"]["pred"]
    # the user can still ask for the decision, and gets its own dtype
    asked = tfopt.load(path, outputs=["pred"])
    assert asked.outputs[0].dtype == {"argmax": "int64", "argmax-int32": "int32", "bool-threshold": "bool"}[decision]


LABELS = {"one-hot": "float", "sparse": "int"}


def _metric_checkpoint(directory, *, labels, with_loss, depth, classes):
    """A TF 1.x tutorial graph: the prediction feeds only ``accuracy`` (and ``logits`` the loss)."""
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(classes)
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, FEATURES])  # "Placeholder", as TF 1.x tutorials leave it
        logits = _logits(t, x, depth, classes, rng, "net")
        prediction = t.nn.softmax(logits)
        if labels == "one-hot":
            y = v1.placeholder(t.float32, [None, classes])
            truth = t.argmax(y, 1)
            loss = t.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
        else:
            y = v1.placeholder(t.int64, [None])
            truth = y
            loss = t.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        if with_loss:
            v1.train.GradientDescentOptimizer(0.1).minimize(t.reduce_mean(loss))
        correct = t.equal(t.argmax(prediction, 1), truth)
        t.reduce_mean(t.cast(correct, t.float32))
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            prefix = v1.train.Saver().save(sess, os.path.join(directory, "model.ckpt"))
            probe = np.random.default_rng(1).standard_normal((3, FEATURES)).astype(np.float32)
            expected = sess.run(prediction, {x: probe})
    return prefix, prediction.op.name, x.op.name, probe, expected


METRIC_CASES = [(labels, with_loss, depth, classes) for labels in LABELS for with_loss in (True, False)
                for depth, classes in SHAPES[:2]]


@pytest.mark.parametrize(("labels", "with_loss", "depth", "classes"), METRIC_CASES,
                         ids=[f"{lab}-{'loss' if loss else 'noloss'}-depth{d}-classes{c}" for lab, loss, d, c in METRIC_CASES])
def test_prediction_that_feeds_only_a_metric_is_the_output(tmp_path, labels, with_loss, depth, classes):
    prefix, prediction, x, probe, expected = _metric_checkpoint(
        str(tmp_path), labels=labels, with_loss=with_loss, depth=depth, classes=classes)
    model = tfopt.load(prefix)
    assert [s.name for s in model.outputs] == [prediction]
    assert [s.name for s in model.inputs] == [x]  # the labels are not an input
    info = tfopt.inspect(prefix)
    assert info["outputs"] == [{"name": prediction}]
    assert "metric" in info["output_reasons"][prediction]
    if (labels, with_loss, depth) == ("one-hot", True, 1):  # one end-to-end freeze, by value
        frozen, _ = tfopt.freeze(prefix)
        np.testing.assert_allclose(GraphRunner(frozen)({x: probe})[prediction], expected, atol=1e-6, rtol=0)


HEADS = [(2, 3), (3, 11)]  # (heads, seed)


@pytest.mark.parametrize(("heads", "seed"), HEADS, ids=[f"{h}heads-seed{s}" for h, s in HEADS])
def test_several_heads_all_chosen_their_decisions_listed(tmp_path, heads, seed):
    t = tf()
    rng = np.random.default_rng(seed)
    names = [f"head_{c}" for c in rng.permutation(list("abcde"))[:heads]]
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="x")
        for i, name in enumerate(names):
            logits = _logits(t, x, i % 2, 2 + i, rng, None)
            t.nn.sigmoid(logits, name=name)
            t.argmax(logits, 1, name=f"{name}_class")
    path = str(tmp_path / "heads.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    model = tfopt.load(path)
    assert sorted(s.name for s in model.outputs) == sorted(names)
    assert sorted(model.provenance["output_alternatives"]) == sorted(f"{n}_class" for n in names)
    info = tfopt.inspect(path)
    assert sorted(o["name"] for o in info["outputs"]) == sorted(names)
    assert sorted(info["output_alternatives"]) == sorted(f"{n}_class" for n in names)


def test_a_comparison_of_two_computed_inputs_is_the_models_output_not_a_metric(tmp_path):
    """``Equal(argmax(f(a)), argmax(g(b)))`` reduced to a score compares two computed tensors:
    neither side is plainly labels, so nothing is taken for a metric and both inputs stay."""
    t = tf()
    rng = np.random.default_rng(0)
    graph = t.Graph()
    with graph.as_default():
        a = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="a")
        b = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="b")
        same = t.equal(t.argmax(_logits(t, a, 1, 3, rng, None), 1), t.argmax(_logits(t, b, 0, 3, rng, None), 1))
        t.reduce_mean(t.cast(same, t.float32), name="agreement")
    path = str(tmp_path / "pair.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    model = tfopt.load(path)
    assert [s.name for s in model.outputs] == ["agreement"]
    assert sorted(s.name for s in model.inputs) == ["a", "b"]


METRIC_KINDS = {
    "tf.metrics.accuracy": lambda t, prob, y: t.compat.v1.metrics.accuracy(labels=y, predictions=t.argmax(prob, 1)),
    "in_top_k-mean": lambda t, prob, y: t.reduce_mean(t.cast(t.compat.v1.nn.in_top_k(prob, t.cast(y, t.int32), 2),
                                                             t.float32)),
    "tf.metrics.mean_squared_error": lambda t, prob, y: t.compat.v1.metrics.mean_squared_error(
        labels=t.one_hot(y, 3), predictions=prob),
}


@pytest.mark.parametrize("kind", list(METRIC_KINDS))
def test_prediction_read_only_by_a_streaming_or_top_k_metric_is_the_output(kind):
    """tf.metrics keep their state in local variables updated by AssignAdd; their scope is a metric."""
    from tfopt.loaders.output_choice import choose_outputs
    from tfopt.loaders.training_nodes import explain_outputs

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES])
        prob = t.nn.softmax(_logits(t, x, 1, 3, np.random.default_rng(0), "net"))
        y = t.compat.v1.placeholder(t.int64, [None])
        METRIC_KINDS[kind](t, prob, y)
    graph_def = graph.as_graph_def()
    reasons = explain_outputs(graph_def)
    assert list(reasons) == [prob.op.name] and "metric" in reasons[prob.op.name]
    assert choose_outputs(graph_def, reasons).chosen == [prob.op.name]


ONLY_DECISIONS = {
    "greater-const": lambda t, prob, other: t.greater(prob, 0.5, name="pred"),
    # deepbrain's form: the threshold is shaped like a second pipeline tensor, its values constant
    "greater-shaped-threshold": lambda t, prob, other: t.greater(prob, t.ones_like(other) * 0.5, name="pred"),
    "argmax": lambda t, prob, other: t.argmax(prob, -1, name="pred"),
    "round-cast": lambda t, prob, other: t.cast(t.round(prob), t.int32, name="pred"),
}


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("decision", list(ONLY_DECISIONS))
def test_float_tensor_read_only_by_its_decision_is_chosen(tmp_path, decision, width):
    """``pred = prob > 0.5`` (or argmax, or a rounded cast) is the only sink: ``prob`` is converted
    and ``pred`` listed; a second input that only shapes the threshold is not needed any more."""
    t = tf()
    rng = np.random.default_rng(width)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="x")
        other = t.compat.v1.placeholder(t.float32, [None, width], name="mask_like")
        prob = t.sigmoid(_logits(t, x, 1, width, rng, None), name="prob")
        ONLY_DECISIONS[decision](t, prob, other)
    path = str(tmp_path / "model.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    model = tfopt.load(path)
    assert [s.name for s in model.outputs] == ["prob"] and model.outputs[0].dtype == "float32"
    assert list(model.provenance["output_alternatives"]) == ["pred"]
    assert [s.name for s in model.inputs] == ["x"]
    frozen, _ = tfopt.freeze(path)
    probe = np.random.default_rng(2).standard_normal((3, FEATURES)).astype(np.float32)
    with t.compat.v1.Session(graph=graph) as sess:
        expected = sess.run("prob:0", {"x:0": probe})
    np.testing.assert_allclose(GraphRunner(frozen)({"x": probe})["prob"], expected, rtol=1e-6, atol=1e-6)


BOOKKEEPING_SINKS = {
    "rnn-min-max": lambda t, lengths, x: [t.reduce_min(lengths), t.reduce_max(lengths)],
    "total-length": lambda t, lengths, x: [t.cast(t.reduce_sum(lengths), t.int64)],
    "both-directions": lambda t, lengths, x: [t.reduce_min(lengths, name=f"{d}/Min") for d in ("fw", "bw")]
    + [t.reduce_max(lengths, name=f"{d}/Max") for d in ("fw", "bw")],
}


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("kind", list(BOOKKEEPING_SINKS))
def test_sinks_computed_from_the_inputs_alone_are_not_heads(tmp_path, kind, heads):
    """TF1 ``dynamic_rnn`` leaves ``Min``/``Max`` of the lengths unused: int sinks that no float op of
    the model feeds are listed, not converted, however many there are."""
    t = tf()
    rng = np.random.default_rng(heads)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="x")
        lengths = t.compat.v1.placeholder(t.int32, [None], name="lengths")
        names = [f"head{i}" for i in range(heads)]
        for i, name in enumerate(names):
            t.sigmoid(_logits(t, x, i, 2 + i, rng, None), name=name)
        sinks = [s.op.name for s in BOOKKEEPING_SINKS[kind](t, lengths, x)]
    path = str(tmp_path / "model.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    model = tfopt.load(path)
    assert sorted(s.name for s in model.outputs) == names
    assert set(sinks) <= set(model.provenance["output_alternatives"])
    assert [s.name for s in model.inputs] == ["x"]


INPUT_FREE = {  # a second model copy's variable read, as deepnlp's POS checkpoint leaves one
    "sink-read": lambda t, v, loss: t.identity(v, name="lr_value"),
    "loss-scale": lambda t, v, loss: loss * v,
    "unsaved-sink-read": lambda t, v, loss: t.identity(v, name="lr_value"),
}


@pytest.mark.parametrize("depth", [0, 1])
@pytest.mark.parametrize("kind", list(INPUT_FREE))
def test_a_candidate_that_reads_no_input_is_not_a_head(tmp_path, kind, depth):
    """A variable read that is a sink or feeds only the loss computes nothing from the inputs: it is
    listed, not converted (and a variable the checkpoint does not hold then needs no value)."""
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(depth)
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, FEATURES])
        logits = _logits(t, x, depth, 3, rng, "net")
        prediction = t.nn.softmax(logits)
        y = v1.placeholder(t.int64, [None])
        loss = t.reduce_mean(t.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        lr = v1.Variable(0.1, name="copy_1/lr")
        loss = INPUT_FREE[kind](t, lr, loss) if kind == "loss-scale" else loss
        v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        if kind != "loss-scale":
            INPUT_FREE[kind](t, lr, loss)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            saved = [v for v in v1.global_variables() if not (kind.startswith("unsaved") and v is lr)]
            prefix = v1.train.Saver(saved).save(sess, str(tmp_path / "model.ckpt"))
    model = tfopt.load(prefix)
    assert [s.name for s in model.outputs] == [prediction.op.name]
    assert [s.name for s in model.inputs] == [x.op.name]
    if kind != "loss-scale":  # (a read feeding the loss's arithmetic is no candidate to begin with)
        assert any("no input" in why for why in model.provenance["output_alternatives"].values())


def _towers_checkpoint(directory, *, towers, feed, mirrored, scopes, seed):
    """A TF1 multi-device training graph: ``towers`` copies of one model (scopes named ``scopes``), each on
    its slice of the batch (``tf.split`` of placeholders, or one ``tf.data`` iterator's element per copy),
    all reading one set of resource variables (or per-copy *mirrored* variables initialized from the
    first copy's initial values, as ``MirroredStrategy`` builds them), each leaving weight-free sinks
    (a zero state's shape, the lengths' min), ``ArgMax`` of its float head and a loss averaged over the
    copies. Returns (the float head of the first copy, a batch x, the Session's value of that head at x, the prefix)."""
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    graph = t.Graph()
    batch = 2 * towers
    xs = rng.standard_normal((batch, FEATURES)).astype(np.float32)
    ys = rng.integers(0, 3, batch)
    with graph.as_default():
        if feed == "iterator":
            data = t.data.Dataset.from_tensor_slices((xs, np.full(batch, 4, np.int32), ys)).batch(2).repeat()
            elements = [v1.data.make_one_shot_iterator(data).get_next() for _ in range(towers)]
        else:
            x = v1.placeholder(t.float32, [None, FEATURES], name="x")
            lengths = v1.placeholder(t.int32, [None], name="lengths")
            y = v1.placeholder(t.int64, [None], name="y")
            elements = list(zip(t.split(x, towers), t.split(lengths, towers), t.split(y, towers)))
        w0 = rng.standard_normal((FEATURES, 3)).astype(np.float32)
        losses, heads, primaries = [], [], []
        for k, (xk, lk, yk) in enumerate(elements):
            with t.name_scope(scopes[k]) if k else contextlib.nullcontext():
                if k == 0 or not mirrored:
                    with v1.variable_scope("net", reuse=k > 0):
                        w = v1.get_variable("w", initializer=w0, use_resource=True)
                        b = v1.get_variable("b", [3], initializer=v1.zeros_initializer(), use_resource=True)
                    primaries = [w, b]
                else:  # a mirrored copy: its own variables, initialized from the first copy's initial values
                    w, b = (v1.Variable(t.identity(p.initial_value), name=f"{p.op.name}/replica_{k}",
                                        use_resource=True) for p in primaries)
                logits = t.nn.elu(t.matmul(xk, w) + b)
                heads.append(logits)
                t.argmax(logits, 1)
                t.expand_dims(t.shape(xk)[0], 0)  # a zero state's batch size: reads no weight
                t.reduce_min(lk)  # dynamic_rnn's min length
                losses.append(v1.losses.sparse_softmax_cross_entropy(yk, logits))
        loss = t.add_n(losses) / towers
        v1.train.AdamOptimizer(0.01).minimize(loss)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            feed_dict = {} if feed == "iterator" else {"x:0": xs}
            expected = sess.run(heads[0], feed_dict) if feed == "placeholder" else None
            prefix = v1.train.Saver().save(sess, os.path.join(directory, "model.ckpt"))
    return heads[0].op.name, xs, expected, prefix


TOWERS = [(1, "placeholder", False), (2, "placeholder", False), (3, "placeholder", True), (2, "iterator", False),
          (3, "iterator", True)]


@pytest.mark.parametrize(("towers", "feed", "mirrored"), TOWERS,
                         ids=[f"{n}towers-{f}{'-mirrored' if m else ''}" for n, f, m in TOWERS])
def test_a_multi_device_training_graph_has_one_head(tmp_path, towers, feed, mirrored):
    """Weight-free sinks are no heads, every copy of the model folds into the first (found by structure:
    the copies' scopes are random names), and the float head is chosen over its ArgMax and its loss."""
    rng = np.random.default_rng(towers * 7 + len(feed))
    scopes = [None] + [f"{''.join(rng.choice(list('abcxyz'), 4))}{k}" for k in range(1, towers)]
    head, x, expected, prefix = _towers_checkpoint(str(tmp_path), towers=towers, feed=feed, mirrored=mirrored,
                                                   scopes=scopes, seed=towers)
    model = tfopt.load(prefix)
    assert [s.name for s in model.outputs] == [head]
    why = model.provenance["output_alternatives"]
    assert sum("replica of" in w for w in why.values()) == towers - 1, why  # each copy's ArgMax
    assert any("reads no variable" in w or "inputs alone" in w for w in why.values())
    if feed == "iterator":  # the first copy's element is the input (loaders.pipeline_inputs.cut_pipeline_sources)
        inputs = [(s.name.endswith("/output_0"), s.dtype, s.shape) for s in model.inputs]
        assert inputs == [(True, "float32", (None, FEATURES))]
        assert next(iter(model.provenance["inputs_from_pipeline"].values())).endswith(":0")
    else:
        assert [s.name for s in model.inputs] == ["x"]
        frozen, report = tfopt.freeze(prefix)  # the made-up batch is a multiple of the towers (verification.split_ties)
        assert report.verified_at.shapes()["x"][0] % towers == 0
        np.testing.assert_allclose(GraphRunner(frozen)({"x": x})[head], expected, rtol=1e-6, atol=1e-6)


def test_siamese_heads_over_shared_weights_are_two_heads(tmp_path):
    """Two inputs through one set of weights are two heads (not replicas: their inputs differ)."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        outs = []
        for name in ("left", "right"):
            x = v1.placeholder(t.float32, [None, FEATURES], name=name)
            with v1.variable_scope("net", reuse=name == "right"):
                w = v1.get_variable("w", [FEATURES, 3], use_resource=True)
            outs.append(t.nn.softmax(t.matmul(x, w), name=f"{name}_prob").op.name)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    assert sorted(s.name for s in tfopt.load(prefix).outputs) == sorted(outs)


@pytest.mark.parametrize("heads", [9, 12])
def test_too_many_heads_lists_each_with_the_outputs_that_picks_it(tmp_path, heads):
    """Past MAX_HEADS the choice is left to the user: every remaining head is listed with its --outputs."""
    from tfopt.errors import GraphError

    t = tf()
    rng = np.random.default_rng(heads)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, FEATURES], name="x")
        for i in range(heads):
            t.sigmoid(_logits(t, x, i % 3, 2 + i, rng, None), name=f"head{i}")
    path = str(tmp_path / "model.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    with pytest.raises(GraphError) as err:
        tfopt.load(path)
    listed = [line.split()[1] for line in str(err.value).splitlines() if line.strip().startswith("--outputs ")]
    assert listed == [f"head{i}" for i in range(heads)]
