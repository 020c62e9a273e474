"""Inputs behind a ``tf.data`` iterator: a frozen GraphDef whose inputs are ``PlaceholderWithDefault``
tensors fed from ``IteratorGetNext`` (``from_string_handle``, one-shot and initializable iterators;
one input of rank 5, or two of ranks 4 and 2). tfopt takes the ``PlaceholderWithDefault`` tensors
as the inputs, automatically and with ``--inputs``, cuts the iterator, and every target verifies."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb, ops
from tfopt.loaders.pipeline_inputs import is_pipeline_op
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.targets import target

SHAPES = {"one-rank5": {"img": [None, 6, 6, 6, 1]}, "two-rank4-rank2": {"image": [None, 8, 8, 2], "meta": [None, 3]}}
ITERATORS = ("string-handle", "one-shot", "initializable")
ATOL = 1e-4  # float32 conv + dense over a few hundred terms, any runtime


def _builder(shapes: dict[str, list], iterator: str):
    def build(t):
        v1 = t.compat.v1
        rng = np.random.default_rng(0)
        data = tuple(np.zeros([4, *s[1:]], np.float32) for s in shapes.values())
        ds = t.data.Dataset.from_tensor_slices(data).batch(2)
        if iterator == "string-handle":
            handle = v1.placeholder(t.string, [], name="Placeholder")
            it = v1.data.Iterator.from_string_handle(handle, v1.data.get_output_types(ds),
                                                     v1.data.get_output_shapes(ds))
        elif iterator == "one-shot":
            it = v1.data.make_one_shot_iterator(ds)
        else:
            it = v1.data.make_initializable_iterator(ds)
        batch = it.get_next()
        feats = []
        for (name, shape), tensor in zip(shapes.items(), batch):
            x = v1.placeholder_with_default(tensor, shape, name=name)
            if len(shape) == 5:
                w = rng.normal(size=[3, 3, 3, shape[-1], 4]).astype(np.float32)
                feats.append(t.reduce_mean(t.nn.relu(t.nn.conv3d(x, w, [1] * 5, "SAME")), axis=[1, 2, 3]))
            elif len(shape) == 4:
                w = rng.normal(size=[3, 3, shape[-1], 4]).astype(np.float32)
                feats.append(t.reduce_mean(t.nn.relu(t.nn.conv2d(x, w, 1, "SAME")), axis=[1, 2]))
            else:
                feats.append(t.matmul(x, rng.normal(size=[shape[-1], 4]).astype(np.float32)))
        t.identity(t.add_n(feats) if len(feats) > 1 else feats[0], name="out")
    return build


CASES = {f"{s}-{i}": (SHAPES[s], i) for s, i in itertools.product(SHAPES, ITERATORS)}


@pytest.fixture(params=list(CASES))
def iterator_pb(request, tmp_path):
    shapes, iterator = CASES[request.param]
    return graph_pb(tmp_path / "frozen.pb", _builder(shapes, iterator)), shapes


def _feeds(shapes, batch=2):
    rng = np.random.default_rng(1)
    return {n: rng.normal(size=[batch, *s[1:]]).astype(np.float32) for n, s in shapes.items()}


@pytest.mark.parametrize("with_inputs", [False, True], ids=["automatic", "--inputs"])
def test_placeholder_with_default_is_the_input_and_the_iterator_is_cut(iterator_pb, with_inputs):
    path, shapes = iterator_pb
    assert [s.name for s in tfopt.load(path).inputs] == list(shapes)
    assert [i["name"] for i in tfopt.inspect(path)["inputs"]] == list(shapes)
    options = {"inputs": {n: None for n in shapes}} if with_inputs else {}
    frozen, _ = tfopt.freeze(path, atol=0, rtol=0, **options)
    assert [(s.name, s.shape) for s in frozen.inputs] == [(n, tuple(s)) for n, s in shapes.items()]
    assert not any(is_pipeline_op(op) for op in ops(frozen))
    assert "PlaceholderWithDefault" not in ops(frozen)
    feeds = _feeds(shapes)
    np.testing.assert_array_equal(GraphRunner(frozen)(feeds)["out"], GraphRunner(tfopt.load(path))(feeds)["out"])


@pytest.mark.parametrize("case", ["one-rank5-string-handle", "two-rank4-rank2-initializable"])
def test_converts_and_verifies_in_every_target(case, tmp_path):
    shapes, iterator = CASES[case]
    path = graph_pb(tmp_path / "frozen.pb", _builder(shapes, iterator))
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(path, str(tmp_path / "out"), to=targets)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    frozen, _ = tfopt.freeze(path)
    feeds = _feeds(shapes, batch=3)
    expected = GraphRunner(tfopt.load(path))(feeds)["out"]
    for artifact in result.artifacts:
        runner = target(artifact.format).call("runner", os.path.join(result.outdir, artifact.path), frozen, 1)
        got = runner(feeds)["out"]
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=ATOL, err_msg=artifact.format)


# --- a graph that reads the iterator directly: its elements are the inputs, in every format ------------
# Generated: 1-3 components (float and int ids), a single tensor, a tuple or a dict (keys not in sorted
# order), the batch unknown or fixed, three iterator kinds; saved as a frozen .pb, a TF1 SavedModel whose
# signature takes no input (a training graph's export) and a TF1 checkpoint. The expected outputs come from
# the original graph in a TF1 session, fed at the iterator's outputs.

ELEMENT = {"f4": ("float32", [4]), "img": ("float32", [3, 3, 2]), "ids": ("int32", [5]), "f6": ("float32", [6])}
DIRECT = {  # name: (components, structure, batch fixed, iterator)
    "1-single-open-oneshot": (["f4"], "single", False, "one-shot"),
    "2-dict-open-initializable": (["img", "f4"], "dict", False, "initializable"),
    "2-tuple-fixed-oneshot": (["f6", "ids"], "tuple", True, "one-shot"),
    "3-dict-fixed-stringhandle": (["ids", "f6", "img"], "dict", True, "string-handle"),
    "3-tuple-open-initializable": (["img", "ids", "f4"], "tuple", False, "initializable"),
}
FORMATS = ("frozen-pb", "tf1-savedmodel", "tf1-checkpoint")
DIRECT_ATOL = 1e-5  # float32 matmuls over a few dozen terms: TensorFlow against itself after freezing
BATCH = 2  # the fixed batch (and the batch fed when it is open: 3)


def _direct_graph(t, components, structure, fixed, iterator, rng):
    """The original graph: each component into a variable-weighted [batch, 4] term, their sum ``out``."""
    v1 = t.compat.v1
    data = {}
    for name in components:
        dtype, shape = ELEMENT[name]
        data[name] = (rng.integers(0, 7, size=[6, *shape]) if dtype == "int32" else rng.normal(size=[6, *shape])
                      ).astype(dtype)
    element = (data[components[0]] if structure == "single" else tuple(data.values()) if structure == "tuple"
               else data)
    ds = t.data.Dataset.from_tensor_slices(element).batch(BATCH, drop_remainder=fixed)
    if iterator == "string-handle":
        handle = v1.placeholder(t.string, [], name="handle")
        it = v1.data.Iterator.from_string_handle(handle, v1.data.get_output_types(ds), v1.data.get_output_shapes(ds))
    else:
        it = v1.data.make_one_shot_iterator(ds) if iterator == "one-shot" else v1.data.make_initializable_iterator(ds)
    got = it.get_next()
    tensors = [got] if structure == "single" else list(got) if structure == "tuple" else [got[n] for n in components]
    terms = []
    for name, x in zip(components, tensors):
        if x.dtype == t.int32:
            table = v1.get_variable(f"emb_{name}", [7, 4])
            terms.append(t.reduce_sum(t.gather(table, x), axis=1))
        else:
            flat = t.reshape(x, [-1, int(np.prod(ELEMENT[name][1]))])
            terms.append(t.matmul(flat, v1.get_variable(f"w_{name}", [flat.shape[-1], 4])))
    out = t.identity(t.tanh(t.add_n(terms) if len(terms) > 1 else terms[0]), name="out")
    return tensors, out


def _save_direct(case, root):
    """``case`` saved in every format, the feeds (keyed by the inputs tfopt names) and the original's outputs."""
    from tfopt._tf import tf

    t, v1 = tf(), tf().compat.v1
    components, structure, fixed, iterator = DIRECT[case]
    rng = np.random.default_rng(len(case))
    graph = t.Graph()
    with graph.as_default():
        tensors, out = _direct_graph(t, components, structure, fixed, iterator, rng)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            feeds = {}
            for name, x in zip(components, tensors):
                dtype, shape = ELEMENT[name]
                size = [BATCH if fixed else 3, *shape]
                feeds[f"{x.op.name}/output_{x.value_index}"] = (
                    rng.integers(0, 7, size=size) if dtype == "int32" else rng.normal(size=size)).astype(dtype)
            expected = sess.run(out, {x: feeds[f"{x.op.name}/output_{x.value_index}"] for x in tensors})
            v1.train.Saver().save(sess, str(root / "ckpt" / "model"))
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["out"])
            (root / "frozen.pb").write_bytes(frozen.SerializeToString())
            builder = v1.saved_model.Builder(str(root / "savedmodel"))
            # no input (a training graph's export); a string handle must be one (TensorFlow's own rule)
            handle = {"handle": v1.saved_model.utils.build_tensor_info(graph.get_tensor_by_name("handle:0"))
                      } if iterator == "string-handle" else {}
            signature = v1.saved_model.signature_def_utils.build_signature_def(
                inputs=handle, outputs={"out": v1.saved_model.utils.build_tensor_info(out)},
                method_name="tensorflow/serving/predict")
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    paths = {"frozen-pb": str(root / "frozen.pb"), "tf1-savedmodel": str(root / "savedmodel"),
             "tf1-checkpoint": str(root / "ckpt" / "model")}
    specs = [(f"{x.op.name}/output_{x.value_index}", ELEMENT[n][0], (BATCH if fixed else None, *ELEMENT[n][1]))
             for n, x in zip(components, tensors)]
    return paths, feeds, expected, specs


@pytest.fixture(scope="module", params=list(DIRECT))
def direct_case(request, tmp_path_factory):
    return _save_direct(request.param, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_iterator_read_directly_is_cut_into_inputs_in_every_format(direct_case, fmt):
    paths, feeds, expected, specs = direct_case
    model = tfopt.load(paths[fmt])
    assert sorted((s.name, s.dtype, s.shape) for s in model.inputs) == sorted(specs)
    assert set(model.provenance["inputs_from_pipeline"]) == {name for name, _, _ in specs}
    frozen, _ = tfopt.freeze(paths[fmt])
    assert not any(is_pipeline_op(op) for op in ops(frozen))
    got = GraphRunner(frozen)(feeds)
    out = next(s.name for s in frozen.outputs)
    np.testing.assert_allclose(got[out], expected, atol=DIRECT_ATOL, rtol=DIRECT_ATOL)


@pytest.mark.parametrize("fmt", [*FORMATS[:2], pytest.param(FORMATS[2], marks=pytest.mark.slow)])
def test_an_iterator_read_directly_converts_and_verifies_in_every_target(tmp_path, fmt):
    paths, feeds, expected, _ = _save_direct("2-dict-open-initializable", tmp_path)
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(paths[fmt], str(tmp_path / "out"), to=targets)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    frozen, _ = tfopt.freeze(paths[fmt])
    out = frozen.outputs[0].name
    for artifact in result.artifacts:
        runner = target(artifact.format).call("runner", os.path.join(result.outdir, artifact.path), frozen, 1)
        np.testing.assert_allclose(runner(feeds)[out], expected, atol=ATOL, rtol=ATOL, err_msg=artifact.format)


def test_an_original_that_cannot_be_fed_at_the_iterator_is_refused_by_name(tmp_path):
    """A reference that is a plain function (a TF2 ``tf.function``: nothing to prune) cannot verify the cut."""
    from tfopt.errors import GraphError
    from tfopt.loaders.pipeline_inputs import cut_model

    paths, _, _, _ = _save_direct("1-single-open-oneshot", tmp_path)
    model = tfopt.load(paths["frozen-pb"])
    assert cut_model(model) is model  # nothing left to cut: the same model
    raw = type(model.graph_def)()
    raw.ParseFromString(Path(paths["frozen-pb"]).read_bytes())
    with pytest.raises(GraphError, match=r"IteratorGetNext:0 from a tf\.data iterator inside its function"):
        cut_model(model.replace(graph_def=raw, reference=lambda feeds: {}))


# --- a PlaceholderWithDefault whose default the model itself computes from its input ---------------------
# TensorFlow's retrain.py keeps its bottleneck as PlaceholderWithDefault(base_network(input)) so training can
# feed cached bottlenecks; at inference the user feeds the image (nudity, nudityradar). The input is the
# Placeholder the base network reads, not the bottleneck: the network before it stays in the model.

IN_GRAPH = {"image": [None, 8, 8, 3], "vector": [None, 6]}


def _in_graph_default(shape: list):
    def build(t):
        v1 = t.compat.v1
        rng = np.random.default_rng(2)
        x = v1.placeholder(t.float32, shape, name="input")
        if len(shape) == 4:
            w = rng.normal(size=[3, 3, shape[-1], 5]).astype(np.float32)
            base = t.reduce_mean(t.nn.relu(t.nn.conv2d(x, w, 1, "SAME")), axis=[1, 2])
        else:
            base = t.nn.relu(t.matmul(x, rng.normal(size=[shape[-1], 5]).astype(np.float32)))
        bottleneck = v1.placeholder_with_default(base, [None, 5], name="input_1/BottleneckInputPlaceholder")
        logits = t.matmul(bottleneck, rng.normal(size=[5, 2]).astype(np.float32))
        t.nn.softmax(logits, name="final_result")
    return build


@pytest.mark.parametrize("kind", list(IN_GRAPH))
def test_a_default_computed_from_the_input_keeps_the_network_before_it(kind, tmp_path):
    shape = IN_GRAPH[kind]
    path = graph_pb(tmp_path / "retrained.pb", _in_graph_default(shape))
    assert [s.name for s in tfopt.load(path).inputs] == ["input"]
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"])
    frozen, _ = tfopt.freeze(path)
    assert [(s.name, s.shape) for s in frozen.inputs] == [("input", tuple(shape))]
    feeds = {"input": np.random.default_rng(3).normal(size=[3, *shape[1:]]).astype(np.float32)}
    expected = GraphRunner(tfopt.load(path))(feeds)["final_result"]
    assert len(result.artifacts) == 3
    for artifact in result.artifacts:
        runner = target(artifact.format).call("runner", os.path.join(result.outdir, artifact.path), frozen, 1)
        np.testing.assert_allclose(runner(feeds)["final_result"], expected, atol=ATOL, rtol=ATOL,
                                   err_msg=artifact.format)


def test_the_bottleneck_is_still_an_input_when_named(tmp_path):
    path = graph_pb(tmp_path / "retrained.pb", _in_graph_default(IN_GRAPH["vector"]))
    name = "input_1/BottleneckInputPlaceholder"
    frozen, _ = tfopt.freeze(path, inputs={name: None})
    assert [(s.name, s.shape) for s in frozen.inputs] == [(name, (None, 5))]
    assert "Conv2D" not in ops(frozen) and "PlaceholderWithDefault" not in ops(frozen)
    feeds = {name: np.random.default_rng(4).normal(size=[3, 5]).astype(np.float32)}
    np.testing.assert_allclose(GraphRunner(frozen)(feeds)["final_result"],
                               GraphRunner(tfopt.load(path))(feeds)["final_result"], atol=ATOL, rtol=ATOL)
