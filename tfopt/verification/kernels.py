"""A model whose graph TensorFlow cannot run on this device as configured, whatever the inputs.

TensorFlow's CPU kernels refuse some op configurations outright: channels-first convolutions
(``data_format="channels_first"``, built for a GPU: Conv1D/2D/3D, their transposes, depthwise and
separable ones take channels-last only, unless oneDNN runs them: it does channels-first too) and grouped 3-D
convolutions (``Conv3D(groups > 1)``, with or without oneDNN). A
Keras model may still answer when called (Keras 3 takes another path eagerly), while the graph it
exports holds the refused op. No made-up size or value changes that, and freezing did not cause
it: the error says so, names the node and the way out, instead of blaming the inputs or a stage.
"""

from __future__ import annotations

import re

from tfopt.errors import VerificationError

# TensorFlow's words for each refusal -> why, and what to do. UnimplementedError is the generic class.
_REFUSALS = (
    (re.compile(r"only supports (the )?N\w*HWC|only supported for NHWC|NHWC tensor format|only supports NDHWC"),
     "TensorFlow's CPU kernels of convolutions take channels-last data only: the model was built with "
     "data_format='channels_first' (for a GPU). Rebuild it with data_format='channels_last' and the same weights "
     "(a convolution kernel's layout does not depend on the data format), or convert where TensorFlow has a GPU"),
    # Eigen's kernel, and oneDNN's (TF_ENABLE_ONEDNN_OPTS=1, the default on AVX-512 CPUs), in their words
    (re.compile(r"Number of channels in filter \(\d+\) must match|input and filter must have the same depth"),
     "TensorFlow's CPU Conv3D has no grouped convolution (groups > 1): split the layer into `groups` Conv3D layers "
     "on slices of the channels and concatenate them (the same weights, sliced), or convert where TensorFlow has a GPU"),
)
_UNIMPLEMENTED = "No input size or value changes that: run tfopt where TensorFlow has that kernel"


def kernel_refusal(exc: BaseException | None, *, subject: str = "the original model") -> VerificationError | None:
    """A :class:`VerificationError` naming the node whose kernel TensorFlow lacks and the way out,
    or ``None`` when ``exc`` may depend on the inputs. ``subject``: what failed to run."""
    from tfopt.verification.tf_errors import tf_error_summary

    if exc is None:
        return None
    summary = tf_error_summary(exc)
    why = next((fix for pattern, fix in _REFUSALS if pattern.search(summary)), None)
    if why is None and type(exc).__name__ != "UnimplementedError":
        return None
    return VerificationError(
        f"verifying: {subject} cannot run in this TensorFlow ({type(exc).__name__}: {summary}), whatever the "
        f"inputs, so it cannot be checked against the original. {why or _UNIMPLEMENTED}")
