"""Verification shares the original's outputs: every artifact of one conversion is verified on the
same inputs against the same original, so the original runs once per input set, not once per
artifact. Numbers: each artifact's recorded error is its own, against the original (fp32 1e-5,
fp16 1e-2 on a 2-layer graph)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_pb
from tfopt.conversion import stages as convert_stages
from tfopt.conversion.parts import ConvertResult

CASES = [(("tflite", "pb"), ("fp32",), 5), (("openvino", "tflite"), ("fp32", "fp16"), 9), (("pb", "openvino", "tflite"), ("fp32",), 3)]


def _model(tmp_path, width: int) -> str:
    weights = np.random.default_rng(width).normal(scale=0.5, size=(width, width + 2)).astype(np.float32)

    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
        tf.identity(tf.nn.relu(tf.matmul(x, tf.constant(weights))) * 0.5, name="y")

    return graph_pb(tmp_path / f"m{width}.pb", build)


@pytest.mark.parametrize(("targets", "precisions", "width"), CASES,
                         ids=["+".join(t) + "-" + "+".join(p) + f"-{w}" for t, p, w in CASES])
def test_original_runs_once_per_input_set_whatever_the_artifacts(tmp_path, targets, precisions, width):
    source = _model(tmp_path, width)
    p = convert_stages.plan(source, str(tmp_path / "out"), to=list(targets), quantize=list(precisions))
    prepared = convert_stages.prepare(source, p, lambda _event: None)
    result = ConvertResult(outdir=str(tmp_path / "out"))
    (tmp_path / "tmp").mkdir()
    for index, (target, precision) in enumerate(p.pairs):
        convert_stages.emit_artifact(p, prepared, result, str(tmp_path / "tmp"), target, precision,
                                     lambda _event: None, last=index == len(p.pairs) - 1)
    assert not result.failed and len(result.artifacts) == len(p.pairs) >= 2
    sets = prepared.verified_at.sets()
    assert prepared.reference_outputs.runs == len(sets)
    for artifact in result.artifacts:  # each measured against the original's own outputs
        assert artifact.max_abs_err is not None
        assert artifact.max_abs_err <= (1e-5 if artifact.precision == "fp32" else 1e-2), artifact
        assert artifact.max_abs_err > 0 or artifact.precision == "fp32"
    from tfopt.runtimes.tensorflow import GraphRunner

    for inputs_at in sets:  # what was shared is what the original computes
        want = GraphRunner(prepared.portable)(inputs_at.feeds)
        got = prepared.reference_outputs(inputs_at)
        np.testing.assert_allclose(got["y"], want["y"], rtol=0, atol=0)
    assert prepared.reference_outputs.runs == len(sets)
