"""The byte-identity check of the corpus (scripts/corpus_bytes.py): what it hashes, how it compares two
conversions, and that a child imports the checkout's tfopt. The conversions themselves are the script's
own run, not a test's."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from corpus_bytes import artifact_kind, calibration_npz, compare, file_hashes, imported_from, to_markdown


def _write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_file_hashes_every_artifact_but_manifest_and_report(tmp_path):
    _write(tmp_path / "model.fp32.onnx", b"onnx")
    _write(tmp_path / "openvino.fp32" / "model.bin", b"\x00" * 3)
    _write(tmp_path / "manifest.json", b"{\"seconds\": 1.5}")
    _write(tmp_path / "report.json", b"{}")
    hashes = file_hashes(str(tmp_path))
    assert hashes == {"model.fp32.onnx": hashlib.sha256(b"onnx").hexdigest(),
                      "openvino.fp32/model.bin": hashlib.sha256(b"\x00" * 3).hexdigest()}


@pytest.mark.parametrize("n", [1, 3, 7])
def test_compare_verdicts(n):
    names = [f"a{i}.tflite" for i in range(n)]
    before = {"exit": 0, "files": {**{k: "h" + k for k in names}, "gone.onnx": "x", "changed.pb": "1"}}
    after = {"exit": 0, "files": {**{k: "h" + k for k in names}, "new.onnx": "y", "changed.pb": "2"}}
    verdicts = compare(before, after)
    assert {k: verdicts[k] for k in names} == dict.fromkeys(names, "identical")
    assert verdicts["gone.onnx"] == "only before"
    assert verdicts["new.onnx"] == "only after"
    assert verdicts["changed.pb"] == "differs"
    assert "*" not in verdicts
    assert compare(before, before) == dict.fromkeys(sorted(before["files"]), "identical")


def test_compare_failures():
    wrote = {"exit": 0, "files": {"model.pb": "1"}}
    nothing = {"exit": 6, "files": {}}
    assert compare(nothing, nothing) == {"*": "failed both"}
    assert compare(wrote, nothing) == {"*": "failed after", "model.pb": "only before"}
    assert compare(nothing, wrote) == {"*": "failed before", "model.pb": "only after"}
    partial = {"exit": 9, "files": {"model.pb": "1"}}  # one target failed, the others written: compared
    assert compare(partial, wrote) == {"model.pb": "identical"}


def test_markdown_matrix_and_counts():
    hashes = {"b/m/fp32": {"exit": 0, "files": {"model.pb": "1", "model.fp32.onnx": "1"}},
              "a/m/fp32": {"exit": 0, "files": {"model.pb": "1", "model.fp32.onnx": "2"}},
              "b/m/int8": {"exit": 2, "files": {}}, "a/m/int8": {"exit": 2, "files": {}}}
    text = to_markdown(hashes, "b", "a", ["m", "missing"], ["fp32", "int8"])
    lines = text.strip().splitlines()
    assert lines[0] == "| model | variant | exit b → a | model.onnx | model.pb |"
    assert "| m | fp32 | 0 → 0 | differs | identical |" in lines
    assert "| m | int8 | 2 → 2 | failed both | failed both |" in lines
    assert lines[-1] == "1 differs, 1 failed both, 1 identical (artifacts)"


@pytest.mark.parametrize(("rel", "kind"), [("model.int8.onnx", "model.onnx"), ("model.pb", "model.pb"),
                                           ("openvino.fp16/model.bin", "openvino/model.bin"),
                                           ("model.fp32.onnx.data", "model.onnx.data")])
def test_artifact_kind(rel, kind):
    assert artifact_kind(rel) == kind


def test_child_imports_the_checkout(tmp_path):
    """PYTHONPATH=<checkout> wins over the installed (editable) tfopt and the working directory."""
    _write(tmp_path / "tfopt" / "__init__.py", b"")
    assert os.path.realpath(imported_from(str(tmp_path))) == os.path.realpath(tmp_path)


def test_calibration_npz_seeded_and_reused(tmp_path):
    """Both sides calibrate on the same bytes: one file per model, the same arrays for the same manifest."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"inputs": [{"name": "x", "shape": [None, 5, None], "dtype": "float32"},
                                               {"name": "ids", "shape": [None, 3], "dtype": "int32"}]}))
    first = calibration_npz(str(manifest), str(tmp_path / "a.npz"), samples=4)
    second = calibration_npz(str(manifest), str(tmp_path / "b.npz"), samples=4)
    with np.load(first) as a, np.load(second) as b:
        assert a["x"].shape == (4, 5, 8) and a["x"].dtype == np.float32
        assert a["ids"].shape == (4, 3) and a["ids"].dtype == np.int32 and 0 <= a["ids"].min() <= a["ids"].max() < 10
        assert all(np.array_equal(a[k], b[k]) for k in ("x", "ids"))
    before = os.path.getmtime(first)
    assert calibration_npz(str(manifest), first) == first and os.path.getmtime(first) == before
