"""The tfopt debug command tfopt convert suggests after a failed artifact."""

from __future__ import annotations

import pytest

from tfopt.debug.hints import debug_command, with_debug_hint
from tfopt.errors import ConversionError, OptionError, VerificationError


def test_a_mismatch_suggests_compare_with_the_same_build():
    exc = VerificationError("verifying onnx int8 ...: output 'probs' differs")
    hinted = with_debug_hint(exc, "/models/my model.h5", "onnx", "int8", "calib.npz")
    assert isinstance(hinted, VerificationError) and str(hinted).startswith(str(exc))
    assert str(hinted).endswith("to find where it first differs: tfopt debug compare '/models/my model.h5' "
                                "--to onnx --quantize int8 --calibration calib.npz -o debug-onnx-int8")


def test_a_converter_failure_suggests_reduce():
    command = debug_command(ConversionError("tf2onnx: no handler for Foo"), "m.pb", "onnx", "fp32", "calib.npz")
    assert command == "tfopt debug reduce m.pb --target onnx --precision fp32 -o reduce-onnx-fp32"


@pytest.mark.parametrize("exc, source", [(OptionError("bad"), "m.pb"), (ConversionError("x"), None)],
                         ids=["not-a-conversion-error", "no-model-path"])
def test_no_hint(exc, source):
    assert with_debug_hint(exc, source, "tflite", "fp32") is exc
