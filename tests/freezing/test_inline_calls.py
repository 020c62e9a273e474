"""inline_calls: the function calls TensorFlow's own freezing leaves (a jit_compile function, as
Keras 3's ConvNeXt depthwise conv) are inlined, so every target and pass sees plain ops."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt._tf import tf


def _module_with_jit_call(tmp_path):
    t = tf()

    class WithJit(t.Module):
        def __init__(self):
            super().__init__()
            self.kernel = t.Variable(t.random.stateless_normal([3, 3, 2, 4], seed=[1, 2]), name="kernel")

        @t.function(jit_compile=True)
        def conv(self, x):
            return t.nn.conv2d(x, self.kernel, 1, "SAME")

        @t.function(input_signature=[t.TensorSpec([None, 6, 6, 2], t.float32, name="x")])
        def __call__(self, x):
            return {"y": t.nn.relu(self.conv(x)) * 2.0}

    module = WithJit()
    path = str(tmp_path / "sm")
    t.saved_model.save(module, path, signatures=module.__call__)
    return path


def test_jit_compile_call_is_inlined_and_converts_to_onnx(tmp_path):
    from tfopt import convert, freeze

    path = _module_with_jit_call(tmp_path)
    frozen, report = freeze(path)
    assert not [n.op for n in frozen.graph_def.node if "PartitionedCall" in n.op]
    assert "Conv2D" in {n.op for n in frozen.graph_def.node} and not frozen.graph_def.library.function
    inline = next(p for p in report.passes if p.name == "inline_calls")
    assert inline.removed.get("StatefulPartitionedCall", 0) + inline.removed.get("PartitionedCall", 0) >= 1
    result = convert(path, str(tmp_path / "out"), to=["onnx", "tflite"], report_runs=1)  # verified within 1e-4
    assert all(a["fidelity"]["max_abs_err"] < 1e-4 for a in result.report["artifacts"])
    assert np.isfinite([a["fidelity"]["cosine"] for a in result.report["artifacts"]]).all()


def _frozen_call_with_control_flow(path: str, kind: str, width: int, tag: str) -> dict:
    """A frozen ``.pb`` of a TF1 graph calling a ``tf.function`` (a ``PartitionedCall``) whose body holds
    ``kind`` control flow (an ``If``, a ``While``, or an ``If`` in a ``While``), its functions renamed to
    names this process never registered (as in a process that only loads the ``.pb``). Returns ``x``, ``y``."""
    from tfopt.graphdef.function_names import rename_functions

    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, width], name="x")

        def cond(a):
            return t.cond(t.reduce_sum(a) > 0, lambda: a * 2.0, lambda: a - 1.0)

        def loop(a, step=cond if kind == "while+if" else (lambda a: a * 0.5 + 1.0)):
            return v1.while_loop(lambda i, b: i < 3, lambda i, b: (i + 1, step(b)), [0, a])[1]

        y = t.identity(t.function(cond if kind == "if" else loop)(x), name="y")
        xs = np.random.default_rng(width).normal(size=[3, width]).astype(np.float32)
        with v1.Session(graph=graph) as sess:
            ys = sess.run(y, {x: xs})
        graph_def = graph.as_graph_def()
    assert "PartitionedCall" in {n.op for n in graph_def.node}
    rename_functions(graph_def, {f.signature.name: f"{f.signature.name}_{tag}_unseen" for f in graph_def.library.function})
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    return {"x": xs, "y": ys}


@pytest.mark.parametrize("kind,width", [("if", 4), ("while", 3), ("while+if", 5)])
def test_a_call_whose_body_holds_control_flow_is_inlined(kind, width, tmp_path):
    """The body's ``If``/``While`` names functions of the file's library only: reading the body must find
    them there (it raised ``ValueError: Function ... was not found`` in a fresh process)."""
    from tfopt import freeze
    from tfopt.runtimes.tensorflow import GraphRunner

    path = str(tmp_path / "call.pb")
    ref = _frozen_call_with_control_flow(path, kind, width, f"{kind.replace('+', '_')}{width}")
    frozen, _ = freeze(path, outputs=["y"], atol=1e-6, rtol=1e-6)
    assert not {"PartitionedCall", "StatefulPartitionedCall"} & {n.op for n in frozen.graph_def.node}
    np.testing.assert_allclose(GraphRunner(frozen)({"x": ref["x"]})["y"], ref["y"], atol=1e-6, rtol=1e-6)
