"""The original model fails whatever the inputs: TensorFlow has no kernel on this device for one
of its ops as configured. The common case is a model built for a GPU with
``data_format="channels_first"``: TensorFlow's CPU kernels of Conv1D/2D/3D, their transposes and
depthwise/separable convolutions take channels-last only (``NCHW``/``NCDHW`` -> ``Unimplemented``
or "only supports NHWC"). No made-up size or value changes that, so the error says so and names
the node, instead of blaming the inputs.
"""

from __future__ import annotations

import re

from tfopt.errors import VerificationError

# TensorFlow's words for "this op, as configured, has no kernel here" (errors_impl.UnimplementedError
# is the class; layout refusals of the CPU convolution kernels come as InvalidArgumentError).
_LAYOUT = re.compile(r"only supports (the )?N\w*HWC|only supported for NHWC|supports the NHWC tensor format|"
                     r"only supports NDHWC|NHWC tensor format")


def kernel_refusal(exc: BaseException | None) -> VerificationError | None:
    """A :class:`VerificationError` naming the node whose kernel TensorFlow lacks (and the way out
    for a channels-first model), or ``None`` when ``exc`` may depend on the inputs."""
    from tfopt.verification.shapes import tf_error_summary

    if exc is None:
        return None
    summary = tf_error_summary(exc)
    layout = bool(_LAYOUT.search(summary))
    if not layout and type(exc).__name__ != "UnimplementedError":
        return None
    why = (" TensorFlow's CPU kernels of convolutions take channels-last data only: the model was built with "
           "data_format='channels_first' (for a GPU). Rebuild it with data_format='channels_last' and the same "
           "weights (a convolution kernel's layout does not depend on the data format), or convert on a machine "
           "whose TensorFlow has a GPU" if layout else
           " No input size or value changes that: run tfopt where TensorFlow has that kernel")
    return VerificationError(
        f"verifying: the original model cannot run in this TensorFlow ({type(exc).__name__}: {summary}), whatever "
        f"the inputs, so it cannot be the reference the artifacts are checked against.{why}")
