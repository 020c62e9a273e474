"""A model with tensors outside its graph is released once its outputs are recorded
(:mod:`tfopt.conversion.release`): no converter child runs, and no artifact is verified or
measured, while the loaded original (a SavedModel or Keras model holding the tables) is alive.
The artifacts are still verified and reported against the original's numbers."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from tests.external.conftest import THRESHOLD, Table
from tfopt._tf import tf
from tfopt.conversion import stages
from tfopt.conversion.convert import convert_planned
from tfopt.conversion.stages import plan
from tfopt.loaders import load
from tfopt.verification.tolerances import ARTIFACT


def _savedmodel(directory, rows: int, dim: int) -> str:
    module, path = Table(rows, dim, seed=rows), str(directory / "sm")
    tf().saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _keras(directory, rows: int, dim: int) -> str:
    from tests.external.conftest import recommender

    path = str(directory / "rec.keras")
    recommender(rows, dim, 16).save(path)
    return path


# Each artifact of these models is written by a large-model converter child importing TensorFlow
# (about 5 s each): in the fast lane a SavedModel to two targets and a Keras model to the third, so
# every target is emitted after the release; the second SavedModel size (the same release, the same
# targets) in the slow lane.
@pytest.mark.parametrize("build,rows,dim,to", [
    (_savedmodel, 200, 16, ["tflite", "onnx"]),
    pytest.param(_savedmodel, 700, 24, ["tflite", "openvino"], marks=pytest.mark.slow),
    (_keras, 300, 8, ["openvino"]),
], ids=["savedmodel-200", "savedmodel-700", "keras-300"])
def test_the_original_is_released_before_any_artifact(tmp_path, monkeypatch, build, rows, dim, to):
    source = build(tmp_path, rows, dim)
    model = load(source, external_threshold=THRESHOLD)
    assert model.external is not None and model.keepalive is not None
    original = weakref.ref(model.keepalive)
    alive_at_emission: list[bool] = []
    emit_artifact = stages.emit_artifact

    def watched(*args, **kwargs):
        gc.collect()
        alive_at_emission.append(original() is not None)
        return emit_artifact(*args, **kwargs)

    monkeypatch.setattr(stages, "emit_artifact", watched)
    p = plan(source, str(tmp_path / "out"), to=to, report_runs=1)
    result = convert_planned(model, p.for_loaded_model(), release=True)
    assert alive_at_emission == [False] * len(to)
    assert model.reference is None and model.keepalive is None  # the caller's model too: it held the original
    assert sorted(a.format for a in result.artifacts) == sorted(to) and not result.failed
    for artifact in result.artifacts:  # verified against the original's recorded outputs
        assert artifact.max_abs_err is not None and artifact.max_abs_err <= ARTIFACT["fp32"]
    rows_ = result.report["artifacts"]
    assert len(rows_) == len(to)
    for row in rows_:
        assert row["fidelity"]["scaled_err"] <= ARTIFACT["fp32"]
        assert np.isfinite(result.report["reference"]["latency_ms"]["median"])


def test_a_model_the_caller_keeps_is_not_released(tmp_path):
    """Without ``release`` (the Python API given a loaded model), the caller's model keeps its original."""
    source = _savedmodel(tmp_path, 200, 16)
    model = load(source, external_threshold=THRESHOLD)
    p = plan(source, str(tmp_path / "out"), to=["onnx"], report_runs=1)
    result = convert_planned(model, p.for_loaded_model())
    assert model.reference is not None and model.keepalive is not None
    assert result.artifacts[0].max_abs_err <= ARTIFACT["fp32"]


def test_the_tf2onnx_child_is_not_a_fork_of_a_process_holding_a_large_model(tmp_path):
    """A fork made after the load keeps the loaded tables in the child for the whole run."""
    from tfopt.conversion.convert import may_fork

    source = _savedmodel(tmp_path, 200, 16)
    assert may_fork(source)  # not loaded yet: the fork has no model
    assert may_fork(load(source))  # every weight a constant of the graph: small
    assert not may_fork(load(source, external_threshold=THRESHOLD))


BOUND = 1.5  # seconds: --verify-timeout of the test below
SLACK = 90.0  # loading, freezing, the converter child's start: ~10 s idle (before: the 600 s default bound)
LOOPS = {  # each ends on an all-zero row and never on the others
    "trip-count-from-x": lambda t, x: t.while_loop(lambda i: i < t.reduce_max(t.abs(x)) * 1e30,
                                                   lambda i: [i + 1.0], [t.constant(0.0)])[0],
    "while-any-nonzero": lambda t, x: t.while_loop(lambda i, v: t.reduce_max(t.abs(v)) > 0.0,
                                                   lambda i, v: (i + 1.0, v), [t.constant(0.0), x])[0],
}


@pytest.mark.parametrize("loop", list(LOOPS))
def test_the_recording_of_the_original_is_held_to_verify_timeout(tmp_path, loop):
    """The original's runs of :func:`~tfopt.conversion.release.record_and_release` (a model whose weights are kept
    outside its graph: its outputs recorded before any artifact is written) are held to ``--verify-timeout``, as
    verification's: on eval rows its loop never ends (past the 8 rows freezing verifies on, which end), the
    conversion stops at the bound with the error naming the input and the option; before, the 600 s default."""
    import time

    import tfopt
    from tfopt.errors import VerificationTimeoutError

    t = tf()
    step = LOOPS[loop]

    class Looping(t.Module):
        def __init__(self):
            self.w = t.Variable(np.linspace(-1.0, 1.0, 3 * 512, dtype=np.float32).reshape(3, 512))

        @t.function(input_signature=[t.TensorSpec([None, 3], t.float32, name="x")])
        def serve(self, x):
            return {"y": t.matmul(x, self.w) + 0.5 + step(t, x)}

    module, source = Looping(), str(tmp_path / "sm")
    t.saved_model.save(module, source, signatures={"serving_default": module.serve})
    x = np.zeros((16, 3), np.float32)
    x[8:] = np.random.default_rng(len(loop)).uniform(1.0, 2.0, (8, 3))  # the report's rows: every row is measured
    np.savez(tmp_path / "eval.npz", x=x, labels=np.zeros(16, np.int64))
    start = time.monotonic()
    with pytest.raises(VerificationTimeoutError) as err:
        tfopt.convert(source, str(tmp_path / "out"), to=["onnx"], quantize=["fp32"], external_threshold=THRESHOLD,
                      eval_data=str(tmp_path / "eval.npz"), verify_timeout=BOUND, report_runs=1)
    assert time.monotonic() - start < BOUND + SLACK
    message = " ".join(str(err.value).split())
    assert f"{BOUND:g} s (--verify-timeout)" in message and "'x'" in message, message
    assert not (tmp_path / "out").exists()
