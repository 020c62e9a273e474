"""Inputs behind a ``tf.data`` iterator: a frozen GraphDef whose inputs are ``PlaceholderWithDefault``
tensors fed from ``IteratorGetNext`` (``from_string_handle``, one-shot and initializable iterators;
one input of rank 5, or two of ranks 4 and 2). tfopt takes the ``PlaceholderWithDefault`` tensors
as the inputs, automatically and with ``--inputs``, cuts the iterator, and every target verifies."""

from __future__ import annotations

import itertools
import os

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
