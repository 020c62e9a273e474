"""inline_calls: the function calls TensorFlow's own freezing leaves (a jit_compile function, as
Keras 3's ConvNeXt depthwise conv) are inlined, so every target and pass sees plain ops."""

from __future__ import annotations

import numpy as np

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
