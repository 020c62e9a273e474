"""The ONNX artifact of a model with tensors outside its graph (:func:`tfopt.external.emit.emit_large`):
converted from the frozen graph itself, each ``ImmutableConst`` table an ONNX initializer in external
data holding the external file's bytes, and no serving SavedModel (TensorFlow never loads the table)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from tests.external.conftest import THRESHOLD, tf1_checkpoint
from tfopt.conversion.pipeline import freeze_model
from tfopt.external import external_nodes
from tfopt.external.emit import emit_large
from tfopt.runtimes import runner_for
from tfopt.verification.testing import random_inputs

FP32_ATOL = 1e-5  # float32 end to end: only summation order differs


def _external_initializers(path: str) -> dict[str, dict[str, str]]:
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return {t.name: {e.key: e.value for e in t.external_data} for t in graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL}


def _check_onnx_from_frozen_graph(frozen, directory: str, precision: str = "fp32") -> str:
    import onnx

    path = os.path.join(directory, "model.onnx")
    written = emit_large("onnx", SimpleNamespace(portable=frozen, path=path, precision=precision, quantize=None))
    assert written == path
    onnx.checker.check_model(path, full_check=True)
    # the serving SavedModel is for the other targets: the onnx path never writes (or loads) it
    assert not [f for f in os.listdir(frozen.external.directory) if f.startswith("serving-")]
    runner = runner_for("onnx", path, frozen)
    try:
        for seed in (0, 1):
            feeds = random_inputs(frozen.inputs, seed=seed, graph_def=frozen.graph_def)
            expected, got = frozen.reference(feeds), runner(feeds)
            for spec in frozen.outputs:
                np.testing.assert_allclose(got[spec.name], expected[spec.name], atol=FP32_ATOL, rtol=0, err_msg=spec.name)
    finally:
        runner.close()
    return path


def _check_tables_are_the_files(frozen, path: str) -> None:
    initializers = _external_initializers(path)
    with open(path + ".data", "rb") as data:
        for node in external_nodes(frozen.graph_def):
            info = initializers[f"{node.name}:0"]  # the table, in the data file beside the model
            assert info["location"] == os.path.basename(path) + ".data"
            data.seek(int(info["offset"]))
            with open(frozen.external[node.name].path, "rb") as f:
                raw = f.read()
            assert int(info["length"]) == len(raw) and data.read(len(raw)) == raw  # byte-identical


# The second size in the slow lane (a tf2onnx conversion and the tables' check, the same code at another size).
@pytest.mark.parametrize("rows,dim", [(200, 16), pytest.param(700, 24, marks=pytest.mark.slow)])
def test_tf2_tables_become_external_initializers(tmp_path, rows, dim):
    from tests.external.conftest import Table
    from tfopt._tf import tf

    module, model = Table(rows, dim, seed=rows), str(tmp_path / "sm")
    tf().saved_model.save(module, model, signatures={"serving_default": module.serve})
    frozen, _ = freeze_model(model, external_threshold=THRESHOLD)
    assert external_nodes(frozen.graph_def)
    path = _check_onnx_from_frozen_graph(frozen, str(tmp_path))
    _check_tables_are_the_files(frozen, path)


def test_tf1_checkpoint_two_tables(tmp_path):
    """Two external tensors (the table and the kernel, a Gather and a MatMul operand) in one data file."""
    prefix = tf1_checkpoint(str(tmp_path), 500, resource=True)
    frozen, _ = freeze_model(prefix, external_threshold=96)
    assert len(external_nodes(frozen.graph_def)) == 2
    path = _check_onnx_from_frozen_graph(frozen, str(tmp_path))
    _check_tables_are_the_files(frozen, path)
