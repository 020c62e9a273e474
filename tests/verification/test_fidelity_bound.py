"""The report's samples are held to the verification bound: an artifact wrong only on samples the
verification step did not run is not written (tfopt.verification.fidelity_bound)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb

SCALE = 1e6  # beyond float16 (65504): ONNX Runtime's float16 converter clamps the constant to 65504


def _graph(out: str, width: int):
    """``out = relu(x - 3) * 1e6`` beside ``other = x + 1``: the fp16 ONNX artifact (its constant
    clamped to 65504) is exact on samples whose ``x <= 3`` and 15x off on the others."""

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, width], name="x")
        t.identity(t.nn.relu(x - 3.0) * SCALE, name=out)
        t.identity(x + 1.0, name="other")

    return build


# one size in the fast lane (the mixed-precision test below proves the same class once more)
@pytest.mark.parametrize("out, width, rows, bad_row", [("score", 3, 12, 8),
                                                        pytest.param("b_head", 5, 20, 17, marks=pytest.mark.slow),
                                                        pytest.param("z", 1, 9, 8, marks=pytest.mark.slow)])
def test_artifact_wrong_only_on_report_samples_is_not_written(tmp_path, out, width, rows, bad_row):
    rng = np.random.default_rng(width)
    x = rng.uniform(-1.0, 1.0, (rows, width)).astype(np.float32)  # relu(x - 3) = 0: the same in fp16
    x[bad_row, width - 1] = 4.0  # only this row reaches the clamped constant
    np.savez(tmp_path / "eval.npz", x=x, labels=x)  # float labels of the first output (regression)
    pb = graph_pb(tmp_path / "m.pb", _graph(out, width))
    outdir = str(tmp_path / "out")
    # the verification step runs the first rows only (data_batches.DATA_ROWS); the report runs all of them
    with pytest.raises(tfopt.VerificationError, match=rf"onnx fp16.*output '{out}'.*max abs err 9\.3\de\+05, bound 0\.01") as exc:
        tfopt.convert(pb, outdir, to=["onnx"], quantize=["fp16"], outputs=[out, "other"],
                      eval_data=str(tmp_path / "eval.npz"))
    assert exc.value.exit_code == tfopt.VerificationError("").exit_code
    assert "nothing was written" in str(exc.value)
    assert not os.path.exists(outdir)


def test_the_other_precision_is_kept_and_the_failure_recorded(tmp_path):
    x = np.full((10, 2), 0.5, np.float32)
    x[9] = 4.0  # the last row only: relu(4 - 3) * 1e6
    np.savez(tmp_path / "eval.npz", x=x, labels=x)
    pb = graph_pb(tmp_path / "m.pb", _graph("y", 2))
    outdir = str(tmp_path / "out")
    result = tfopt.convert(pb, outdir, to=["onnx"], quantize=["fp32", "fp16"], outputs=["y", "other"],
                           eval_data=str(tmp_path / "eval.npz"))
    assert [(a.format, a.precision) for a in result.artifacts] == [("onnx", "fp32")]
    assert [(f.format, f.precision, f.stage) for f in result.failed] == [("onnx", "fp16", "verifying")]
    assert "output 'y'" in result.failed[0].reason
    assert not os.path.exists(os.path.join(outdir, "onnx.fp16")) and not any(
        "fp16" in name for name in os.listdir(outdir) if name.endswith(".onnx"))
    rows = result.report["artifacts"]
    assert [(r["format"], r["precision"]) for r in rows] == [("onnx", "fp32")]
    assert rows[0]["fidelity"]["scaled_err"] <= 1e-4  # the kept artifact holds the bound on every report sample
    assert [f["precision"] for f in result.report["failed"]] == ["fp16"]


@pytest.mark.parametrize("width, rows, bad_row", [(3, 10, 6), pytest.param(2, 12, 11, marks=pytest.mark.slow)])
def test_standalone_verify_holds_the_report_samples_to_the_bound(tmp_path, width, rows, bad_row):
    """``tfopt verify OUT --reference MODEL`` applies the bound ``tfopt convert`` applies: the fp16 artifact,
    right at sample 0 and 15x off at ``bad_row``, fails (exit 7) and the report records it in ``failed``."""
    import json

    from tfopt.report.build import verify_outdir

    x = np.full((rows, width), 0.25, np.float32)
    x[bad_row, 0] = 4.0  # relu(4 - 3) * 1e6: the clamped fp16 constant gives 65504
    np.savez(tmp_path / "eval.npz", x=x, labels=x)
    pb = graph_pb(tmp_path / "m.pb", _graph("y", width))
    outdir = str(tmp_path / "out")
    # verified and measured on made-up inputs (standard normal, below 3 here): the artifact holds there
    tfopt.convert(pb, outdir, to=["onnx"], quantize=["fp16"], outputs=["y", "other"])
    with pytest.raises(tfopt.VerificationError, match=r"onnx fp16.*output 'y'.*bound 0\.01") as exc:
        verify_outdir(outdir, pb, eval_data=str(tmp_path / "eval.npz"), outputs=["y", "other"])
    assert exc.value.exit_code == tfopt.VerificationError("").exit_code
    with open(os.path.join(outdir, "report.json")) as f:
        report = json.load(f)
    assert [(f["format"], f["precision"], f["stage"]) for f in report["failed"]] == [("onnx", "fp16", "verifying")]
    assert all("beyond_bound" not in row for row in report["artifacts"])
    from tfopt.report.build import verify_artifact  # one file, its precision read from its name: the same bound

    onnx = next(os.path.join(outdir, n) for n in os.listdir(outdir) if n.endswith(".onnx"))
    with pytest.raises(tfopt.VerificationError, match=r"onnx fp16.*output 'y'"):
        verify_artifact(onnx, pb, eval_data=str(tmp_path / "eval.npz"), outputs=["y", "other"])
    x[bad_row, 0] = 0.25  # the same data without the bad row: verify passes
    np.savez(tmp_path / "fine.npz", x=x, labels=x)
    assert verify_outdir(outdir, pb, eval_data=str(tmp_path / "fine.npz"), outputs=["y", "other"])["failed"] == []
