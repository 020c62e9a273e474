"""The op sweep (tfopt.coverage.op_sweep): its machinery on a few cases in the fast lane, the whole
sweep in the slow lane (``python scripts/op_sweep.py`` writes the same table).

Every swept cell is ``ok`` within the fp32 bound or a typed error; never an internal error. The typed
cells are converter limitations tfopt explains (the op and the target named, with the way out).
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.coverage.op_cases import CASES
from tfopt.coverage.op_sweep import (
    FP32_BOUND,
    classify,
    convert_cells,
    counts,
    save_case,
    sweep_case,
    to_markdown,
    weight_values,
    within_bound,
)
from tfopt.errors import ConversionError, VerificationError
from tfopt.verification.verify import reference_runner

FEW = ["l2_normalize", "tf1_placeholder_default_cond"]


@pytest.mark.parametrize("name", FEW)
def test_every_saved_format_loads_and_answers_as_its_graph(tmp_path, name):
    case = CASES[name]
    paths = save_case(case, str(tmp_path))
    assert set(paths) == set(case.formats)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    want = x * weight_values(case)[0] if name != "tf1_placeholder_default_cond" else None
    for fmt, path in paths.items():
        model = tfopt.load(path)
        assert [s.name for s in model.inputs] == ["x"], (fmt, model.inputs)
        got = np.asarray(next(iter(reference_runner(model)({"x": x}).values())))
        if name == "l2_normalize":
            np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)
        assert got.shape[0] == 3 and np.all(np.isfinite(got))


def test_cells_say_ok_or_whose_error(tmp_path):
    cells = convert_cells(save_case(CASES["l2_normalize"], str(tmp_path))["savedmodel"], str(tmp_path / "out"),
                          ("tflite",))
    assert cells["tflite"]["status"] == "ok" and cells["tflite"]["max_abs_err"] <= FP32_BOUND
    assert classify(ConversionError("x"))["status"] == "typed"
    assert classify(VerificationError("x"))["status"] == "mismatch"
    assert classify(KeyError("output_0"))["status"] == "internal"


def test_a_broken_case_is_a_build_row_not_a_tfopt_cell():
    from tfopt.coverage.op_cases import In, OpCase

    broken = OpCase("broken", "test", (In("x", (None, 4)),), lambda t, x, w: w[0])  # no weight declared
    rows = sweep_case(broken, formats=["frozen"], targets=("onnx",))
    assert [r["status"] for r in rows] == ["build"] and counts(rows) == {"build": 1}
    assert "broken/frozen/onnx" in to_markdown(rows)


# Cells the sweep left open (issue 24), each the proof of its fix: verified within the fp32 bound.
FORMERLY_OPEN = [
    ("ctc_greedy_decoder", "savedmodel", "onnx"),  # the report's per-sample outputs differ in length
    ("crop_and_resize", "frozen", "onnx"),  # tf2onnx extrapolates a box edge on the border (0.54 off)
    ("local_response_normalization", "frozen", "openvino"),  # OpenVINO's LRN kernel (2.8e-4 off)
    ("ragged_to_dense", "savedmodel", "onnx"),  # made-up row lengths that did not add up (MadeUpInputsError)
    ("ragged_to_dense", "frozen", "onnx"),  # the same, blamed on tf2onnx's ScatterND
    ("ragged_nested_rowids", "savedmodel", "onnx"),  # nested value row ids not followed (MadeUpInputsError)
    ("ragged_nested_rowids", "frozen", "onnx"),  # the same; then tf2onnx refused the mixed partitions
    ("ragged_map_fn", "savedmodel", "onnx"),  # splits [None] made up as [0] at batch 1 (MadeUpInputsError)
    ("ragged_map_fn", "frozen", "onnx"),  # the same from a TF1 graph
]


@pytest.mark.parametrize(("name", "fmt", "target"), FORMERLY_OPEN)
def test_formerly_open_cell_is_verified(tmp_path, name, fmt, target):
    cells = convert_cells(save_case(CASES[name], str(tmp_path))[fmt], str(tmp_path / "out"), (target,))
    assert cells[target]["status"] == "ok", cells
    assert cells[target]["max_abs_err"] <= FP32_BOUND


@pytest.mark.slow
@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize("name", list(CASES))
def test_sweep(tmp_path, name):
    tf()
    rows = sweep_case(CASES[name])
    internal = [r for r in rows if r["status"] in ("internal", "build")]
    assert not internal, internal
    assert all(within_bound(r) for r in rows), [r for r in rows if not within_bound(r)]
