"""The TFLite lowering inside function bodies (tfopt.emitters.tflite_lower_bodies): ``tf.while_loop``,
``tf.cond``, a loop inside a branch, ``tf.switch_case`` and a function called from two nodes, their
bodies holding ops TFLite has no builtin for. Each model is a TF2 ``tf.function`` saved and frozen by
tfopt (``tfopt.optimize``: the portable graph the TFLite emitter reads, control flow kept as
``StatelessWhile``/``StatelessIf`` bodies in the library), converted to TFLite and run in LiteRT
against the original function in TensorFlow.

Tolerance: the lowered math's own, 64 float32 ulps relative (tflite_lower_math's tests), non-finite
values identical; pools: max exact, average within its sum's rounding (k·2⁻²³·max|x|). The loop
bodies keep each output element one application of the op: ``acc = max(acc, op(x·sⁱ))`` with ``s`` a
power of two (exact), so the bound holds after any number of iterations. Without the lowering in
bodies every conversion here fails ("TFLite builtins lack Asinh ...").
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.emitters.tflite_graphs import REL, assert_close
from tests.helpers import graph_model
from tfopt.emitters import tflite_lower_math, tflite_lower_pool  # noqa: F401  (they fill the registry)
from tfopt.emitters.tflite import emit_tflite
from tfopt.emitters.tflite_lower import lower_for_builtins
from tfopt.emitters.tflite_lowering import registry
from tfopt.runtimes.tensorflow import GraphRunner, concrete_function
from tfopt.runtimes.tflite import open_runner

# domain -> (how x is drawn, the power of two s each loop step scales it by)
DOMAINS = {"real": (lambda rng, n: rng.standard_normal(n) * 4, 0.5),
           "unit": (lambda rng, n: rng.uniform(-0.999, 0.999, n), 0.5),
           "above-1": (lambda rng, n: rng.uniform(1.0, 30.0, n), 2.0)}
OPS = {"Asinh": "real", "Atan": "real", "Sinh": "real", "Expm1": "real", "Asin": "unit", "Acos": "unit",
       "Atanh": "unit", "Acosh": "above-1", "Cosh": "above-1", "Log1p": "above-1"}
CASES = [  # (control flow, ops in its bodies, shape of x without the batch)
    ("while", ("Asinh", "Atan", "Expm1"), (5,)),
    ("while", ("Asin", "Atanh"), (2, 3)),
    ("cond", ("Sinh", "Acos"), (4,)),
    ("loop-in-cond", ("Acosh", "Cosh", "Log1p"), (3, 2)),
]


def _ops(t, names, x):
    return {name: getattr(t.raw_ops, name)(x=x) for name in names}


def _module(kind: str, names: tuple[str, ...], shape: tuple[int, ...]):
    """``serve(x, k)``: the ops of ``names`` inside a loop of ``k`` (clipped to 0..4) steps, a cond on
    ``k > 1``, or a loop inside the cond's true branch; one output per op."""
    import tensorflow as tf

    scale = DOMAINS[OPS[names[0]]][1]

    def loop(x, k):
        def body(i, *accs):
            values = _ops(tf, names, x * tf.pow(scale, tf.cast(i, tf.float32)))
            return (i + 1, *(tf.maximum(acc, values[name]) for acc, name in zip(accs, names)))

        start = tf.fill(tf.shape(x), -np.inf)
        _, *accs = tf.while_loop(lambda i, *_: i < tf.clip_by_value(k, 0, 4), body,
                                 [tf.constant(0), *(start for _ in names)])
        return dict(zip(names, accs))

    def scaled(x):
        return _ops(tf, names, x * scale)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="x"),
                                      tf.TensorSpec([], tf.int32, name="k")])
        def serve(self, x, k):
            if kind == "while":
                return loop(x, k)
            if kind == "cond":
                return tf.cond(k > 1, lambda: _ops(tf, names, x), lambda: scaled(x))
            return tf.cond(k > 1, lambda: loop(x, k), lambda: scaled(x))

    return Module()


def _frozen(module, path):
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    portable, _, _, _ = tfopt.optimize(str(path))  # verified on made-up inputs inside the ops' domains
    return portable


def _reachable_bodies(model):
    from tfopt.passes.prune_dead import called_functions

    used = called_functions(model.graph_def)
    return [f for f in model.graph_def.library.function if f.signature.name in used]


def _lowerable(model) -> list[str]:
    return [n.op for f in _reachable_bodies(model) for n in f.node_def if registry.get(n.op)]


@pytest.mark.parametrize("kind,names,shape", CASES, ids=lambda c: c if isinstance(c, str) else
                         "-".join(map(str, c)).lower())
def test_ops_in_loop_and_cond_bodies_convert_and_match_tensorflow(kind, names, shape, tmp_path):
    module = _module(kind, names, shape)
    portable = _frozen(module, tmp_path / "sm")
    assert sorted(set(_lowerable(portable))) == sorted(names)  # frozen, they are in bodies, not in the main graph
    assert not any(registry.get(n.op) for n in portable.graph_def.node)
    loops_in_bodies = [n for f in _reachable_bodies(portable) for n in f.node_def if n.op.endswith("While")]
    assert bool(loops_in_bodies) == (kind == "loop-in-cond")
    lowered = lower_for_builtins(portable)
    assert not lowered.skips and not _lowerable(lowered.model)
    concrete_function(portable)  # the unlowered bodies registered in this process under their own names
    runner = open_runner(emit_tflite(portable, str(tmp_path / "m.tflite")), portable)
    draw = DOMAINS[OPS[names[0]]][0]
    rng = np.random.default_rng(len(kind) + sum(shape))
    try:
        for k in (1, 2, 4):  # both branches; 1 to 4 loop iterations
            x = draw(rng, 3 * int(np.prod(shape))).reshape(3, *shape).astype(np.float32)
            out = runner({"x": x, "k": np.array(k, np.int32)})
            ref = {name: v.numpy() for name, v in module.serve(x, k).items()}
            for name in names:
                assert_close(out[name], ref[name], REL)
    finally:
        runner.close()


def _pools_in_branches(t):
    """A cond whose branches pool in 3-D (max / average) and a max-pool-with-argmax in a branch."""
    x = t.compat.v1.placeholder(t.float32, [None, 4, 6, 6, 2], name="x")
    pred = t.reduce_sum(x) > 0
    pooled = t.cond(pred, lambda: t.nn.max_pool3d(x, 2, 2, "SAME"), lambda: t.nn.avg_pool3d(x, (2, 3, 3), 2, "SAME"))
    flat = t.reshape(pooled, [-1, 3, 3, 4])
    values, argmax = t.cond(pred, lambda: tuple(t.nn.max_pool_with_argmax(flat, 2, 2, "SAME", include_batch_in_index=True)),
                            lambda: (t.nn.max_pool2d(flat, 2, 2, "SAME"), t.zeros([t.shape(flat)[0], 2, 2, 4], t.int64)))
    t.identity(values, name="values")
    t.identity(argmax, name="argmax")


def test_pools_in_branches_convert_exactly(tmp_path):
    from tfopt.graph import TensorSpec

    model = graph_model(_pools_in_branches, {"x": (None, 4, 6, 6, 2)}, ["values", "argmax"])
    model = model.replace(outputs=[model.outputs[0], TensorSpec("argmax", "argmax:0", "int64", None)])
    assert {"MaxPool3D", "AvgPool3D", "MaxPoolWithArgmax"} <= set(_lowerable(model))
    runner = open_runner(emit_tflite(model, str(tmp_path / "m.tflite")), model)
    rng = np.random.default_rng(0)
    try:
        for sign in (1.0, -1.0):  # max (ties included) and argmax; average
            x = (sign * 3 + rng.integers(-2, 2, (2, 4, 6, 6, 2))).astype(np.float32)
            out, ref = runner({"x": x}), GraphRunner(model)({"x": x})
            bound = 0.0 if sign > 0 else 18 * 2.0 ** -23 * np.abs(x).max()
            np.testing.assert_allclose(out["values"], ref["values"], rtol=0, atol=bound)
            np.testing.assert_array_equal(out["argmax"], ref["argmax"])
    finally:
        runner.close()


def _shared_and_case(t):
    """One function called from two nodes (and from a switch_case branch), and a Case whose
    branches hold Asinh / Atan."""
    x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")

    @t.function
    def shared(v):
        return t.math.asinh(v) * 2.0

    k = t.cast(t.reduce_sum(t.abs(x)), t.int32) % 3
    case = t.switch_case(k, [lambda: t.math.atan(x), lambda: shared(x), lambda: t.math.sinh(x)])
    t.identity(shared(x) + shared(x * 0.5) + case, name="y")


def test_a_shared_body_is_lowered_once_and_keeps_its_signature():
    model = graph_model(_shared_and_case, {"x": (None, 3)}, ["y"])
    before = {f.signature.name: f for f in _reachable_bodies(model)}
    result = lower_for_builtins(model)
    assert result.changed and not result.skips and not _lowerable(result.model)
    lowered = result.model.provenance["lowered_for_builtins"]
    assert len(lowered) == len(_lowerable(model))  # each op of each body once, however many callers
    after = {f.signature.name: f for f in _reachable_bodies(result.model)}
    assert sorted(after) == sorted(before)  # names kept: TensorFlow sees them named by content (graphdef.function_names)
    for name, old in before.items():
        new = after[name]
        assert new.signature.input_arg == old.signature.input_arg
        assert new.signature.output_arg == old.signature.output_arg
        assert set(new.ret) == set(old.ret) and dict(new.arg_attr) == dict(old.arg_attr)
    calls = [n for n in result.model.graph_def.node if n.op in ("PartitionedCall", "StatefulPartitionedCall")]
    assert len(calls) >= 2 and len({n.attr["f"].func.name for n in calls}) == 1
    rng = np.random.default_rng(1)
    for scale in (0.2, 1.0, 3.0):
        x = (rng.standard_normal((4, 3)) * scale).astype(np.float32)
        assert_close(GraphRunner(result.model)({"x": x})["y"], GraphRunner(model)({"x": x})["y"], 4 * REL)


def _subgraph_ops(graph):
    """Op types of an ONNX graph and of every Loop/If/Scan body in it, nested ones included."""
    for node in graph.node:
        yield node.op_type, node.name
        for attribute in node.attribute:
            for body in [attribute.g, *attribute.graphs]:
                yield from _subgraph_ops(body)


@pytest.mark.slow  # ~20 s idle, 70 s on a loaded machine: tf2onnx and OpenVINO start, for one model
def test_onnx_and_openvino_keep_the_ops_in_their_bodies(tmp_path):
    import importlib.util

    import tensorflow as tf

    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    import onnx

    module = _module("loop-in-cond", ("Asinh", "Atan"), (5,))
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    result = tfopt.convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=["onnx", "openvino"], report_runs=1)
    assert not result.failed and len(result.artifacts) == 2
    ops = list(_subgraph_ops(onnx.load(str(tmp_path / "out" / "model.fp32.onnx")).graph))
    assert {"Loop", "If", "Asinh", "Atan"} <= {op for op, _ in ops}
    assert not any("lowered" in name for _, name in ops)
    xml = (tmp_path / "out" / "openvino.fp32" / "model.xml").read_text()
    assert 'type="Asinh"' in xml and 'type="Atan"' in xml and "lowered" not in xml
