"""The conditioning probe keeps the element budget of every made-up run of the original (issue 24, set 15:
pyliverlesionseg). When an artifact misses the bound on made-up inputs, the original's self-disagreement is
measured on :data:`PROBE_BATCH` rows; a 3-D U-Net over 180x172x86 voxels then ran on 8 x 2.66 M voxels, took
14-20 GB, and the OS killed tfopt (exit -9, nothing written). Generated graphs (the chaotic map of
``test_conditioning``, whose batch changes its rounding) with rows of a few elements up to over half the
budget: the original (TensorFlow, watched as it runs) never gets more than the budget per input, and the
verdict of :func:`on_made_up` is still reached: verified at a smaller scale, within the fp32 bound. The default
run lowers the budget (a module constant) to 4 Ki elements, so the same rows are cheap; the ``slow`` cases keep
the real 4 Mi."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.verification.test_conditioning import _map
from tfopt import _tf
from tfopt.verification.conditioning import PROBE_BATCH, on_made_up
from tfopt.verification.saturation import NORMAL
from tfopt.verification.tolerances import ARTIFACT
from tfopt.verification.verify_inputs import VerifyInputs

SMALL = 1 << 12
CASES = {  # (budget, elements per row): the probe may take min(8, budget // row) rows
    "8-rows-fit": (SMALL, 6),
    "3-rows-fit": (SMALL, SMALL // 3),
    "2-rows-fit": pytest.param((SMALL, SMALL // 2), marks=pytest.mark.slow),  # the budget's cut, as 3-rows-fit
    "3-rows-fit-real-budget": pytest.param((_tf.ELEMENT_BUDGET, _tf.ELEMENT_BUDGET // 3), marks=pytest.mark.slow),
}


def _chaotic(path: str, width: int) -> str:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        _map(tf, tf.compat.v1.placeholder(tf.float32, [None, width], name="x"), 1.5)  # chaotic at standard normal
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_probe_keeps_the_element_budget_and_still_finds_a_stable_scale(tmp_path, monkeypatch, case):
    from tfopt.runtimes import runner_for
    from tfopt.verification.self_disagreement import scaled_gap
    from tfopt.verification.verify import reference_runner

    budget, width = case
    monkeypatch.setattr(_tf, "ELEMENT_BUDGET", budget)
    path = _chaotic(str(tmp_path / "m.pb"), width)
    (artifact,) = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], verify=False).artifacts
    model = tfopt.load(path)
    original, runner = reference_runner(model), runner_for("onnx", str(tmp_path / "out" / artifact.path), model)
    seen: list[int] = []

    def watched(feeds):
        seen.append(max(np.size(v) for v in feeds.values()))
        return original(feeds)

    feeds = {"x": np.random.default_rng(0).standard_normal((2, width)).astype(np.float32)}
    error = scaled_gap(runner(feeds), original(feeds))
    found = on_made_up(model, VerifyInputs(feeds, "made up", values=NORMAL), runner, max(error, ARTIFACT["fp32"] * 2),
                       ARTIFACT["fp32"], original=watched)
    runner.close()
    assert seen and max(seen) <= budget, seen
    assert max(seen) // width == min(PROBE_BATCH, budget // width)  # as many rows as fit, at most 8
    assert found is not None and found.rung != NORMAL and found.error <= ARTIFACT["fp32"]
