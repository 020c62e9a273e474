"""The report measures each artifact's error in the verification's units, whatever the outputs'
magnitude: ``scaled_err = max|got - ref| / (1 + max|ref|)`` is within ``ARTIFACT[precision]``
exactly when the verification's ``atol + rtol * max|ref|`` check holds (issue 24's Prosit: ONNX
3.8e-4 on outputs up to 13.5, float32 rounding that TensorFlow's own float32 shares, failed an
absolute 1e-4 bound)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tfopt
from tfopt.verification.testing import compare
from tfopt.verification.tolerances import ARTIFACT, scaled_error


@pytest.mark.parametrize("seed", range(8))
def test_scaled_error_agrees_with_the_verification_check(seed):
    """Generated outputs of magnitude 1e-3..1e5 with errors around the bound: the check and
    ``scaled_err <= t`` decide the same, for both precisions' bounds."""
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** rng.uniform(-3, 5)
    ref = rng.standard_normal(64) * magnitude
    for t in ARTIFACT.values():
        bound = t * (1 + np.abs(ref).max())
        for factor in (0.5, 0.999, 1.001, 2.0):
            got = ref.copy()
            got[int(rng.integers(64))] += factor * bound * rng.choice([-1, 1])
            ok = compare({"y": ref}, {"y": got}, atol=t, rtol=t)[0].ok
            assert ok == (scaled_error(np.abs(got - ref).max(), np.abs(ref).max()) <= t), (magnitude, t, factor)


def _heads(scales: tuple[float, ...]):
    """A dense chain (depth 6, width 64: long float sums) with one head per output magnitude."""
    import keras

    x = keras.Input((32,), name="x")
    h = x
    for _ in range(6):
        h = keras.layers.Dense(64, activation="tanh")(h)
    outs = [keras.layers.Rescaling(s, name=f"head_{i}")(keras.layers.Dense(8)(h)) for i, s in enumerate(scales)]
    return keras.Model(x, outs)


@pytest.mark.slow  # ~60 s on a shared 2-core machine; the property test above proves the bound
def test_the_report_carries_the_scaled_error_of_every_artifact(tmp_path):
    import json
    import os

    import keras

    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    keras.utils.set_random_seed(0)
    _heads((1.0, 1e2, 1e4)).export(str(tmp_path / "m"), verbose=False)
    tfopt.convert(str(tmp_path / "m"), str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], report_runs=1)
    with open(os.path.join(tmp_path / "out", "report.json")) as f:
        artifacts = json.load(f)["artifacts"]
    assert len(artifacts) == 3
    for art in artifacts:
        fid = art["fidelity"]
        # outputs up to ~1e4: the worst output's error in its own units, never above the verified bound
        assert 0 <= fid["scaled_err"] <= ARTIFACT["fp32"], art
        assert fid["scaled_err"] <= fid["max_abs_err"] + 1e-12


@pytest.mark.parametrize("widths,to", [((16,), ["onnx", "openvino"]), ((24, 8), ["tflite", "onnx", "openvino"])],
                         ids=["two-runtimes", "three-runtimes"])
def test_the_report_opens_one_runtime_at_a_time(tmp_path, monkeypatch, widths, to):
    """Each artifact's runtime is released before the next one opens (a model over 2 GB would
    otherwise be in memory once per runtime): when the report opens a runner, no earlier one lives."""
    import gc
    import weakref

    import keras

    import tfopt.runtimes
    from tfopt.report.build import verify_outdir

    keras.utils.set_random_seed(len(widths))
    x = keras.Input((12,), name="x")
    h = x
    for width in widths:
        h = keras.layers.Dense(width, activation="relu")(h)
    keras.Model(x, keras.layers.Dense(3)(h)).export(str(tmp_path / "m"), verbose=False)
    tfopt.convert(str(tmp_path / "m"), str(tmp_path / "out"), to=to, report_runs=1, verify=False)
    opened: list[weakref.ref] = []
    alive_at_open: list[int] = []
    runner_for = tfopt.runtimes.runner_for

    def watched(*args, **kwargs):
        gc.collect()
        alive_at_open.append(sum(r() is not None for r in opened))
        runner = runner_for(*args, **kwargs)
        opened.append(weakref.ref(runner))
        return runner

    monkeypatch.setattr(tfopt.runtimes, "runner_for", watched)
    report = verify_outdir(str(tmp_path / "out"), str(tmp_path / "m"), runs=1)
    assert alive_at_open == [0] * len(to)
    for row in report["artifacts"]:
        assert row["fidelity"]["scaled_err"] <= ARTIFACT["fp32"], row


def test_outputs_whose_samples_differ_in_size_are_compared_element_by_element():
    """A size the data decides (a CTC decode's longest sequence, per sample): no axis concatenates the
    samples, so each sample's elements follow in order (``ctc_greedy_decoder`` was an internal error);
    an artifact whose samples hold other sizes gets no statistic (NaN), never a crash."""
    import math

    from tfopt.report.measure import _batched, _fidelity, _Samples

    samples = _Samples({"x": np.arange(3, dtype=np.float32).reshape(3, 1)}, {"x": 0}, set())

    def run(feed):
        return {"y": np.full((1, int(feed["x"][0, 0]) + 1), feed["x"][0, 0])}

    got = _batched(run, samples, ["y"])
    np.testing.assert_array_equal(got["y"], [0, 1, 1, 2, 2, 2])
    assert _fidelity(got, got)["max_abs_err"] == 0
    assert math.isnan(_fidelity(got, {"y": np.zeros(5)})["max_abs_err"])
