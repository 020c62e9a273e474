"""The tfopt debug command tfopt convert suggests after a failed artifact."""

from __future__ import annotations

import pytest

from tfopt.errors import ConversionError, IllConditionedError, OptionError, VerificationError, VerificationTimeoutError
from tfopt.report.hints import debug_command, with_debug_hint


def test_a_mismatch_suggests_compare_with_the_same_build():
    exc = VerificationError("verifying onnx int8 ...: output 'probs' differs")
    hinted = with_debug_hint(exc, "/models/my model.h5", "onnx", "int8", "calib.npz")
    assert isinstance(hinted, VerificationError) and str(hinted).startswith(str(exc))
    assert str(hinted).endswith("to find where it first differs: tfopt debug compare '/models/my model.h5' "
                                "--to onnx --quantize int8 --calibration calib.npz -o debug-onnx-int8")


def test_a_converter_failure_suggests_reduce():
    command = debug_command(ConversionError("tf2onnx: no handler for Foo"), "m.pb", "onnx", "fp32", "calib.npz")
    assert command == "tfopt debug reduce m.pb --target onnx --precision fp32 -o reduce-onnx-fp32"


@pytest.mark.parametrize("exc, source", [
    (OptionError("bad"), "m.pb"), (ConversionError("x"), None),
    # debug compare would stop at the same bound (the message already says what to change)
    (VerificationTimeoutError("did not end within 60 s (--verify-timeout)"), "m.pb"),
    (IllConditionedError("disagrees with itself"), "m.pb")],
    ids=["not-a-conversion-error", "no-model-path", "timeout", "ill-conditioned"])
def test_no_hint(exc, source):
    assert with_debug_hint(exc, source, "tflite", "fp32") is exc


@pytest.mark.parametrize("exc, command", [
    (VerificationError("differs"), "compare"), (ConversionError("no handler"), "reduce")], ids=["compare", "reduce"])
def test_the_hint_repeats_the_load_and_freeze_options(exc, command):
    """What made the graph the converter saw: --signature/--outputs (load), --inputs/--set/--verify-shape (freeze)."""
    import shlex

    from tfopt.options import ConvertOptions, FreezeOptions, LoadOptions

    options = ConvertOptions(load=LoadOptions(signature="predict", outputs=["probs", "logits"]),
                             freeze=FreezeOptions(set={"keep_prob": 1.0, "is_training": False},
                                                  inputs={"image": (None, 28, 28), "mask": None},
                                                  verify_shape={"image": (2, 28, 28)}))
    argv = shlex.split(str(with_debug_hint(exc, "m.pb", "onnx", "fp32", options=options)).splitlines()[-1].split(": ")[1])
    assert argv[2] == command
    tail = argv[argv.index("--signature"):argv.index("-o")]
    assert tail == ["--signature", "predict", "--outputs", "probs", "logits", "--inputs", "image:?x28x28", "mask",
                    "--set", "keep_prob=1.0", "is_training=false", "--verify-shape", "image:2x28x28"]


def test_a_loaded_models_recorded_flags_stand_in_for_its_load_options():
    from tfopt.options import ConvertOptions
    from tfopt.report.hints import PROVENANCE_KEY

    hinted = with_debug_hint(ConversionError("x"), "m.pb", "tflite", "fp32", options=ConvertOptions(),
                             provenance={PROVENANCE_KEY: ["--outputs", "y"]})
    assert "--precision fp32 --outputs y -o reduce-tflite-fp32" in str(hinted)
