"""An OpenVINO IR that holds a loop runs in a child process (:mod:`tfopt.runtimes.child`); the report's
runtime-default column (what a plain ``compile_model(xml, "CPU")`` runs: bf16 on CPUs with bf16) is measured there
too, as for an IR without one (issue 24), and the artifact's file is read for its loop once, not once by
verification and again by the report. Holds on any x86-64 CPU: the default is forced to a bf16 hint through
``build_report``'s public parameter where the CPU itself defaults to f32."""

from __future__ import annotations

import os

import pytest

import tfopt
from tfopt.targets import TABLE

pytestmark = pytest.mark.skipif(not TABLE["openvino"].available(), reason="openvino not installed")
TOL = 1e-5  # the verified f32 row
BF16_TOL = 0.1  # a bf16 run: 8-bit mantissas over a few steps of a contraction, a bound any CPU meets
STEPS = 6


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``v <- v / 2 + x`` for ``STEPS`` steps of a ``tf.while_loop`` (it ends on every input), converted to OpenVINO
    with verification and the report; the loop role's reads of each file counted."""
    from tests.helpers import counting
    from tfopt._tf import tf
    from tfopt.runtimes import openvino

    t = tf()

    class M(t.Module):
        @t.function(input_signature=[t.TensorSpec([None, 5], t.float32, name="x")])
        def serve(self, x):
            _, v = t.while_loop(lambda i, v: i < STEPS, lambda i, v: (i + 1, 0.5 * v + x), [t.constant(0), x])
            return {"y": t.nn.softmax(v)}

    root = tmp_path_factory.mktemp("ov_loop")
    path = str(root / "saved")
    m = M()
    t.saved_model.save(m, path, signatures=m.serve.get_concrete_function())
    out = str(root / "out")
    with counting(openvino, "has_loop") as reads:
        result = tfopt.convert(path, out, to=["openvino"], quantize=["fp32"], verify_timeout=60)
    return path, out, result, reads


def test_the_loop_is_read_once_and_the_ir_runs_in_a_child(converted):
    _, out, result, reads = converted
    (artifact,) = result.artifacts
    xml = os.path.join(out, artifact.path)
    assert TABLE["openvino"].call("loops", xml)  # an IR with a Loop: verification and the report ran it in a child
    # written in a temporary directory, verified and measured there, then moved into place: every path of this file
    assert sum(n for p, n in reads.items() if p.endswith(os.sep + artifact.path)) == 1, dict(reads)


def test_the_runtime_default_is_recorded_for_an_ir_with_a_loop(converted):
    from tfopt.runtimes.openvino import REPRODUCE, cpu_default_precision

    _, _, result, _ = converted
    row = next(a for a in result.report["artifacts"] if a["format"] == "openvino")
    default = row["runtime_default"]
    assert default["cpu_default_precision"] == cpu_default_precision() and default["reproduce"] == REPRODUCE
    if cpu_default_precision() == "f32":  # no second run: the default gives the verified numbers
        assert default["measured"] is False and default["fidelity"] is None
    else:  # a bf16 CPU: measured at its default, in the child, beside the verified row
        assert default["measured"] is True and default["fidelity"]["max_abs_err"] <= BF16_TOL
    assert row["fidelity"]["max_abs_err"] <= TOL


def test_a_forced_bf16_default_is_measured_in_the_child(converted):
    from tfopt.loaders import load
    from tfopt.report.build import build_report

    path, out, _, _ = converted
    report = build_report(out, load(path), runs=1, write_to=None, runtime_default_precision="bf16")
    row = next(a for a in report["artifacts"] if a["format"] == "openvino")
    default = row["runtime_default"]
    assert default["hint"] == "bf16" and default["measured"] is True
    assert default["fidelity"]["max_abs_err"] <= BF16_TOL and row["fidelity"]["max_abs_err"] <= TOL
