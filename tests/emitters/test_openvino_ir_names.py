"""OpenVINO IR whose auto-named layers do not depend on the process: OpenVINO numbers them from a
process-wide counter, inside ``Loop``/``If`` bodies too (tfopt.emitters.openvino._canonical_names)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.graphdef.test_function_names import _frozen
from tfopt.emitters.openvino import emit_openvino
from tfopt.loaders import load
from tfopt.runtimes.openvino import OpenVINORunner

ATOL = 1e-5  # float32 through the same ops


def test_a_looping_model_writes_the_same_ir_whatever_the_process_converted_before(tmp_path):
    """The same model converted twice in one process (OpenVINO's counter moved on in between): byte-identical
    IR. Before, the layers of the loop and branch bodies kept the counter's numbers (``If_6114`` after other
    conversions, ``If_52`` in a fresh process)."""
    graph_def, io = _frozen(0.5)
    (tmp_path / "m.pb").write_bytes(graph_def.SerializeToString())
    model = load(str(tmp_path / "m.pb"))
    paths = [emit_openvino(model, str(tmp_path / f"ov{i}")) for i in range(2)]
    first, again = (Path(p).read_bytes() for p in paths)
    assert b'type="Loop"' in first and b'type="If"' in first
    assert first == again
    names = re.findall(rb'<layer id="\d+" name="([^"]+)"', first)
    assert len(names) == len(set(names))  # renumbered across the bodies: still unique
    got = OpenVINORunner(paths[0], model.inputs, model.outputs)({"x": io["x"]})["y"]
    np.testing.assert_allclose(got, io["y"], atol=ATOL)
