"""The alignment (:mod:`tfopt.runtimes.align`) on the real artifacts ``tfopt debug`` opens with
their intermediate tensors kept (the session's debug models, ``tests/debug/conftest.py``)."""

from __future__ import annotations

import pytest

from tfopt.runtimes.align import align, boundaries


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_every_conv_layer_of_a_real_artifact_is_aligned(target, debug_models, portable):
    """Each ReLU (the boundary of conv+bias+relu) and the output of the real fp32 artifacts has a tensor."""
    import os

    from tfopt.debug.intermediates import open_intermediates
    from tfopt.targets import target_of_file

    path = debug_models["fp32"][target]
    record = target_of_file(path)
    opened = open_intermediates(target, os.path.join(path, record.run_file) if os.path.isdir(path) else path, portable)
    chosen = boundaries(align(portable.graph_def, opened.tensors, opened.anchors),
                        {t.key for t in opened.tensors if t.value} - opened.interior)
    relus = [n.name for n in portable.graph_def.node if n.op == "Relu"]
    assert len(relus) == 3 and all(r in chosen for r in relus), sorted(chosen)
    assert portable.outputs[0].node in chosen
