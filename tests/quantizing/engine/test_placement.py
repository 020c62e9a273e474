"""Ranges around fused composites: one on a GELU/Swish/HardSwish/LayerNorm's output (and LayerNorm's
mean), none inside, so TFLite fuses GELU and HardSwish into int8 ops and every target runs what the
fake-quant graph computes.

The model: five branches from one input, each a Dense, a composite, a Dense head and an output:
``tf.nn.gelu`` exact and tanh-approximate, Keras ``silu`` and ``hard_silu``, ``LayerNormalization``.
(Not one Dense for all: TFLite, even in float, cannot convert an exact and a tanh GELU of one tensor,
its CSE merges their ``0.5·x`` and neither matches its GELU pattern.)
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from tfopt.graph import node_map, tensor_node
from tfopt.quantizing.engine.placement import activation_tensors, composites

KINDS = {"gelu": "GELU", "gelu_tanh": "GELU (tanh)", "swish": "Swish", "hard_swish": "HardSwish",
         "layer_norm": "LayerNorm"}
# TFLite int8 output vs the fake-quant TF graph, max error in steps of the output's int8 grid. Where
# TFLite fuses (GELU, HARD_SWISH) or runs the inside in float (LayerNorm) it computes the graph's
# arithmetic (measured: 0 steps). Swish is LOGISTIC + MUL in int8, and TFLite gives LOGISTIC its fixed
# output scale 1/256 whatever the graph says: a rounding the fake-quant graph does not model
# (measured: 1 step, 8.6e-3 relative). LayerNorm without its mean's range: 3 steps (TFLite rounds the
# mean to its input's coarser step).
STEPS = {"gelu": 1.0, "gelu_tanh": 1.0, "hard_swish": 1.0, "layer_norm": 1.0, "swish": 2.0}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import keras

    import tfopt
    from tfopt._tf import tf

    t = tf()
    keras.utils.set_random_seed(0)
    x = keras.Input((8,), name="x")
    branches = {"gelu": keras.layers.Lambda(lambda v: t.nn.gelu(v, approximate=False), name="gelu"),
                "gelu_tanh": keras.layers.Lambda(lambda v: t.nn.gelu(v, approximate=True), name="gelu_tanh"),
                "swish": keras.layers.Activation("silu", name="swish"),
                "hard_swish": keras.layers.Activation("hard_silu", name="hard_swish"),
                "layer_norm": keras.layers.LayerNormalization(name="layer_norm")}
    outputs = {name: keras.layers.Dense(4, name=f"{name}_head")(layer(keras.layers.Dense(16, name=f"{name}_dense")(x)))
               for name, layer in branches.items()}
    path = str(tmp_path_factory.mktemp("composites") / "sm")
    keras.Model(x, outputs).export(path, verbose=False)
    portable, _, _, _ = tfopt.optimize(path)
    return portable


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return rng.normal(size=(256, 8)).astype(np.float32), rng.normal(size=(256, 8)).astype(np.float32)


def _run(model, x, tensors=None):
    from tfopt.graph import TensorSpec
    from tfopt.runtimes.tensorflow import GraphRunner

    if tensors is not None:
        model = model.replace(outputs=[TensorSpec(t, t, "float32", None) for t in tensors])
    return GraphRunner(model)({"x": x})


@pytest.fixture(scope="module")
def ranges(model, samples):
    """min/max of every activation over the calibration samples."""
    values = _run(model, samples[0], activation_tensors(model))
    return {t: (float(v.min()), float(v.max())) for t, v in values.items()}


@pytest.fixture(scope="module")
def fq_model(model, ranges):
    from tfopt.quantizing.engine.fake_quant import insert_fake_quant

    return insert_fake_quant(model, ranges)


@pytest.fixture(scope="module")
def tflite(fq_model, tmp_path_factory):
    """The fake-quant graph through TFLite's QAT path. -> (outdir, path)"""
    import tfopt

    out = str(tmp_path_factory.mktemp("tflite") / "out")
    result = tfopt.convert(fq_model, out, to=["tflite"], quantize=["int8"], verify=False)
    return out, os.path.join(out, result.artifacts[0].path)


def _branch_ops(model, branch):
    """The non-constant nodes Keras made for the branch's activation layer (its name scope)."""
    scope = re.compile(rf"/{branch}(_\d+)?/")
    return {n.name for n in model.graph_def.node if scope.search(n.name) and n.op != "Const"}


def _composite(model, branch):
    return next(c for c in composites(model)[0] if set(c.nodes) & _branch_ops(model, branch))


def _tflite_ops(path):
    """``[(builtin op, type of its first input)]`` of a .tflite file, in execution order."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        tfl = schema.Model.GetRootAs(f.read(), 0)
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = tfl.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = tfl.OperatorCodes(op.OpcodeIndex())
        out.append((ops[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], types[graph.Tensors(op.Inputs(0)).Type()]))
    return out


@pytest.mark.parametrize("branch", list(KINDS))
def test_each_composite_is_matched_whole(model, branch):
    composite = _composite(model, branch)
    assert composite.kind == KINDS[branch]
    assert set(composite.nodes) == _branch_ops(model, branch)  # every op of the activation, nothing else
    assert re.search(rf"/{branch}_dense(_\d+)?/BiasAdd:0$", composite.input)  # its Dense's output


@pytest.mark.parametrize("branch", list(KINDS))
def test_ranges_sit_on_the_composite_output_only(model, fq_model, branch):
    composite = _composite(model, branch)
    inside = _branch_ops(model, branch)
    # LayerNorm's mean keeps one too: TFLite computes it in int8 from its int8 input anyway (module docstring)
    expected = [composite.nodes[-1]] if branch != "layer_norm" else sorted([composite.ranged[0], composite.nodes[-1]])
    assert sorted(tensor_node(t) for t in activation_tensors(model) if tensor_node(t) in inside) == expected
    read = sorted(tensor_node(n.input[0]) for n in fq_model.graph_def.node
                  if n.op == "FakeQuantWithMinMaxVars" and tensor_node(n.input[0]) in inside)
    assert read == expected


def test_tflite_fuses_gelu_and_hard_swish_into_int8_ops(tflite):
    ops = _tflite_ops(tflite[1])
    assert ops.count(("GELU", "INT8")) == 2 and ops.count(("HARD_SWISH", "INT8")) == 1
    assert not {op for op, _ in ops} & {"TANH", "POW", "RELU6", "CUSTOM"}  # no GELU or HardSwish left in pieces


@pytest.mark.parametrize("branch", list(KINDS))
def test_tflite_int8_computes_what_the_fake_quant_graph_does(branch, tflite, fq_model, ranges, samples):
    from tfopt.conversion.manifest import manifest_model
    from tfopt.quantizing.engine.fake_quant import nudge
    from tfopt.runtimes import runner_for

    x = samples[1]
    expected = _run(fq_model, x)[branch]
    got = runner_for("tflite", tflite[1], manifest_model(tflite[0]))({"x": x})[branch]
    low, high = nudge(*ranges[f"{branch}:0"])
    steps = float(np.max(np.abs(got - expected))) / ((high - low) / 255)
    relative = float(np.sqrt(np.mean(np.square(got - expected))) / np.sqrt(np.mean(np.square(expected))))
    print(f"{branch}: tflite vs fake quant: max {steps:.2f} output steps, relative rms {relative:.2e}")
    assert steps <= STEPS[branch] + 1e-3


def _gated(t, body):
    """x -> Dense -> ``body`` -> out (tf.compat.v1 graph)."""
    x = t.compat.v1.placeholder(t.float32, [None, 4], "x")
    weight = t.constant(np.random.default_rng(0).normal(size=(4, 6)), t.float32, name="W")
    body(t, t.nn.bias_add(t.matmul(x, weight), t.constant([0.1] * 6), name="fc"))


@pytest.mark.parametrize(("body", "kind"), [
    (lambda t, v: 0.5 * v * (1.0 + t.math.erf(v / 1.4142135)), "GELU"),
    (lambda t, v: 0.5 * v * (1.0 + t.tanh(0.7978846 * (v + 0.044715 * v * v * v))), "GELU (tanh)"),
    (lambda t, v: v * t.nn.relu6(v + 3.0) / 6.0, "HardSwish"),
    (lambda t, v: v * t.sigmoid(1.702 * v), "Swish"),
], ids=["erf-form", "tanh-with-x*x*x", "hardswish-divided-after", "swish-with-beta"])
def test_other_spellings_are_matched_whole(body, kind):
    from tests.helpers import graph_model

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 4], "x")
        fc = t.nn.bias_add(t.matmul(x, t.constant(np.ones((4, 6)), t.float32)), t.constant([0.1] * 6), name="fc")
        with t.name_scope("act"):
            y = body(t, fc)
        t.identity(y, name="out")

    model = graph_model(build, {"x": (None, 4)}, ["out"])
    (composite,), _ = composites(model)
    assert composite.kind == kind and composite.input == "fc:0"
    assert set(composite.nodes) == {n.name for n in model.graph_def.node if n.name.startswith("act/") and n.op != "Const"}
    assert [t for t in activation_tensors(model) if t.startswith("act/")] == [f"{composite.nodes[-1]}:0"]


def _leaky_gelu(t, v):
    """A GELU whose inner ``1 + erf`` is also an output: no composite."""
    gate = t.add(1.0, t.math.erf(v / 1.4142135), name="one_plus_erf")
    t.concat([t.multiply(v * gate, 0.5, name="gelu"), gate], -1, name="out")


@pytest.mark.parametrize(("body", "inner"), [
    (_leaky_gelu, ["one_plus_erf", "gelu"]),
    (lambda t, v: t.multiply(v, t.tanh(v, name="tanh"), name="out"), ["tanh"]),  # x·tanh(x): no cube, no GELU
    (lambda t, v: t.sigmoid(v, name="out"), []),  # no gate: a plain activation
], ids=["inner-tensor-read-outside", "tanh-without-cube", "lone-sigmoid"])
def test_no_composite_where_the_pattern_does_not_hold(body, inner):
    from tests.helpers import graph_model

    model = graph_model(lambda t: _gated(t, body), {"x": (None, 4)}, ["out"])
    found, skips = composites(model)
    assert found == []
    # the leak is said (which tensor, read by what); the others are no near miss
    assert skips == ([] if body is not _leaky_gelu else
                     ["GELU at Erf: one_plus_erf is also read by out, so its ops are quantized one by one"])
    tensors = activation_tensors(model)
    assert all(f"{name}:0" in tensors for name in inner)  # their ops keep a range each, as before


@pytest.mark.parametrize("branch", ["gelu", "layer_norm"])
def test_keep_float_on_any_node_keeps_the_whole_composite(model, branch):
    composite = _composite(model, branch)
    kept = activation_tensors(model, keep_float=[composite.nodes[1]])  # an inner node names it
    dropped = set(activation_tensors(model)) - set(kept)
    assert dropped == {f"{n}:0" for n in (*composite.ranged, composite.nodes[-1])}


def test_a_dense_on_a_sequence_gets_its_range_after_the_bias(tmp_path):
    """Keras Dense on 3-D input is MatMul -> Reshape -> BiasAdd (Tensordot); converters fold the bias
    through the reshape into the layer, so its range is the BiasAdd's, and the bias is rounded."""
    import keras

    import tfopt
    from tfopt.quantizing.engine.fake_quant import insert_fake_quant

    keras.utils.set_random_seed(0)
    x = keras.Input((5, 8), name="x")
    keras.Model(x, keras.layers.Dense(3, bias_initializer="ones", name="dense")(x)).export(str(tmp_path / "sm"),
                                                                                          verbose=False)
    portable, _, _, _ = tfopt.optimize(str(tmp_path / "sm"))
    ops = [node_map(portable.graph_def)[tensor_node(t)].op for t in activation_tensors(portable)]
    assert ops == ["Placeholder", "BiasAdd"]  # not the MatMul's output
    fq = insert_fake_quant(portable, dict.fromkeys(activation_tensors(portable), (-2.0, 2.0)))
    assert fq.provenance["fake_quant"]["biases"] == 1


def test_a_reshape_that_moves_the_channel_is_no_layer_tail():
    from tests.helpers import graph_model

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 4], "x")
        mm = t.matmul(x, t.constant(np.ones((4, 6)), t.float32), name="mm")
        t.add(t.reshape(mm, [-1, 3, 2]), t.constant([0.5, 0.5]), name="out")  # 6 channels -> [3, 2]

    model = graph_model(build, {"x": (None, 4)}, ["out"])
    assert activation_tensors(model) == ["x:0", "mm:0", "out:0"]  # the layer's own range, then the Add's


@pytest.mark.slow
def test_transformer_block_converts_to_tflite_int8_through_the_engine(tmp_path):
    """The coverage matrix's transformer block (MultiHeadAttention, LayerNorm, Dense with Keras GELU):
    TFLite int8 is the engine's graph (no native fallback) and runs its GELU as an int8 op."""
    import tfopt
    from tfopt.coverage.models import _transformer_block
    from tfopt.verification.testing import random_inputs

    path = _transformer_block(str(tmp_path))
    portable, _, _, _ = tfopt.optimize(path)
    np.savez(tmp_path / "cal.npz", **random_inputs(portable.inputs, batch=32))
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite"], quantize=["int8"],
                           calibration=str(tmp_path / "cal.npz"))
    assert result.engine_fallbacks == {} and result.artifacts[0].quantizer == "tfopt"
    assert ("GELU", "INT8") in _tflite_ops(os.path.join(str(tmp_path / "out"), result.artifacts[0].path))


def _gate_net(t):
    """conv(a) -> relu6, and a hard-sigmoid gate relu6(conv(b) + 3) / 6 (Keras' ``hard_sigmoid``), their
    product, then a 1x1 conv: a squeeze-and-excite style gating."""
    rng = np.random.default_rng(4)
    x = t.compat.v1.placeholder(t.float32, (None, 6, 6, 3), name="x")
    a = t.nn.relu6(t.nn.conv2d(x, rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"), name="a")
    b = t.nn.conv2d(x, rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32), 1, "SAME", name="b")
    gate = t.math.truediv(t.nn.relu6(b + 3.0), 6.0, name="gate")
    t.nn.conv2d(a * gate, rng.normal(0, 1, (1, 1, 4, 2)).astype(np.float32), 1, "SAME", name="out")


def test_a_division_by_a_constant_gets_its_range_so_tflite_runs_it_in_int8(tmp_path):
    """A RealDiv by a constant is a requantizing op (TFLite runs it as an int8 MUL by the reciprocal, as its
    own int8 does): with no range on it, it and the product after it ran in float between a DEQUANTIZE and a
    QUANTIZE. The int8 model computes the float one within 2 % of its output's span (mean absolute error;
    measured: 0.2 %)."""
    from tests.helpers import engine_tflite, graph_model
    from tfopt.quantizing.engine.quantize import Recipe

    model = graph_model(_gate_net, {"x": (None, 6, 6, 3)}, ["out"])
    assert "gate:0" in activation_tensors(model)
    samples = {"x": np.random.default_rng(5).normal(0, 1, (32, 6, 6, 3)).astype(np.float32)}
    ops, got, want = engine_tflite(model, samples, Recipe.parse("minmax"), str(tmp_path / "m.tflite"))
    assert [op for op, _ in ops].count("MUL") == 2 and all(kind == "int8" for op, kind in ops if op == "MUL"), ops
    assert "DEQUANTIZE" not in [op for op, _ in ops[:-1]], ops  # (the last: the float output)
    assert np.mean(np.abs(got - want)) <= 0.02 * np.ptp(want)
