"""The coverage matrix's fast subset (the full matrix is `python scripts/coverage.py`, a documented
lane): every cell converts and verifies, or fails with a typed error that says why."""

from __future__ import annotations

import os

import pytest

from tfopt.coverage.matrix import CELLS, run_matrix, to_markdown
from tfopt.coverage.models import MODELS

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file

FAST = [name for name, model in MODELS.items() if model.fast]
# The cells that cannot work, and the words their error must contain (the limitation and the way out).
EXPECTED_FAILURES = {
    # its StaticHashTable is made constant (tfopt.graphdef.tables): TFLite has string EQUAL, the others do not
    ("string lookup", "onnx/fp32"): ("ConversionError", "compares strings"),
    **{("string lookup", f"openvino/{p}"): ("ConversionError", "no string tensors") for p in ("fp32", "int8")},
}


@pytest.fixture(scope="module")
def rows():
    return run_matrix(FAST, runs=2)


def test_fast_subset_covers_the_small_models():
    assert {"text LSTM+GRU", "transformer block", "while + cond module", "two in, two out", "dynamic batch + size",
            "TF1 BN is_training", "int64 ids embedding", "string lookup"} <= set(FAST)


def test_every_cell_converts_or_says_why(rows):
    for row in rows:
        for key, cell in row["cells"].items():
            expected = EXPECTED_FAILURES.get((row["model"], key))
            if expected is None:
                assert cell["ok"], (row["model"], key, cell)
                if key.endswith("/fp32"):  # fp32 is verified in its runtime: within 1e-4 of the original
                    assert cell["max_abs_err"] <= 1e-4, (row["model"], key, cell)
                assert cell["bytes"] > 0 and cell["latency_ms"] > 0
            else:
                kind, words = expected
                assert not cell["ok"] and cell["error"] == kind and words in cell["message"], (row["model"], key, cell)


def test_markdown_lists_every_failure_with_its_reason(rows):
    text = to_markdown(rows)
    failures = sum(not c["ok"] for r in rows for c in r["cells"].values())
    assert text.count("✗ [") == failures and f"{len(rows) * len(CELLS) - failures} of {len(rows) * len(CELLS)}" in text
    assert "instead of the strings" in text  # (--allow-tf-ops: tests/conversion/test_convert.py's Erfc)


def test_script_writes_the_matrix_between_readme_markers(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "coverage_script", os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "coverage.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{script.BEGIN}\nold table\n{script.END}\noutro\n")
    script.write_markdown(str(readme), "| new | table |\n")
    assert readme.read_text() == f"intro\n{script.BEGIN}\n| new | table |\n{script.END}\noutro\n"


@pytest.mark.parametrize(("inputs", "tflite", "onnx", "openvino"), [
    (None, [-1, -1, -1, 3], [None, None, None, 3], "[?,?,?,3]"),
    ({"image": (None, 32, 32, 3)}, [-1, 32, 32, 3], [None, 32, 32, 3], "[?,32,32,3]"),
    pytest.param({"image": (1, 32, 32, 3)}, [1, 32, 32, 3], [1, 32, 32, 3], "[1,32,32,3]",
                 marks=pytest.mark.slow),  # --inputs fixing dimensions: batch-dynamic, which keeps one open
], ids=["dynamic", "batch-dynamic", "fixed"])
def test_dynamic_dimensions_kept_or_fixed_with_inputs(inputs, tflite, onnx, openvino, tmp_path):
    """A dynamic batch (and size) stays dynamic in every target; `--inputs NAME:SHAPE` fixes it."""
    import onnx as onnx_lib
    import openvino as ov
    from ai_edge_litert.interpreter import Interpreter

    from tfopt import convert

    path = MODELS["dynamic batch + size"].build(str(tmp_path))
    out = str(tmp_path / "out")
    convert(path, out, to=["tflite", "onnx", "openvino"], report_runs=1, **({"inputs": inputs} if inputs else {}))
    assert list(Interpreter(os.path.join(out, "model.fp32.tflite")).get_input_details()[0]["shape_signature"]) == tflite
    dims = onnx_lib.load(os.path.join(out, "model.fp32.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value if d.HasField("dim_value") else None for d in dims] == onnx
    assert str(ov.Core().read_model(os.path.join(out, "openvino.fp32", "model.xml")).inputs[0].partial_shape) == openvino
