"""The original model refusing inputs tfopt runs it on after verification chose them.

Freezing verifies on the first rows of given data, or on made-up inputs at the batch the search
found (2, else 1). Two later runs of the original go further: every artifact is verified one sample
at a time (batch 1: :meth:`tfopt.verification.verify_inputs.VerifyInputs.with_batch`), and the report
runs every sample of given data. A model that takes batch 2 but not batch 1 (a ``tf.squeeze`` without
its axis before a ``MatMul``), or a sample past the first rows that the model refuses (an id outside
an embedding table), made TensorFlow's own exception (``InvalidArgumentError``) come through. Here
it is a typed error naming the inputs, the sample, TensorFlow's node and message, and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tfopt.errors import MadeUpInputsError, OptionError, TfoptError
from tfopt.verification.feed_shapes import feed_shapes


def failure(exc: BaseException) -> str:
    """``InvalidArgumentError at node 'Gather': indices[0,2] = 13 is not in [0, 10)``."""
    from tfopt.verification.tf_errors import tf_error_summary

    return f"{type(exc).__name__} at {tf_error_summary(exc)}"


def run_original(run: Callable[[Mapping[str, Any]], Any], feeds: Mapping[str, Any], inputs_at: Any) -> Any:
    """``run(feeds)``, the original on one of the input sets every artifact is verified at
    (``inputs_at``, a :class:`~tfopt.verification.verify_inputs.VerifyInputs`).

    Raises:
        MadeUpInputsError: made-up inputs at batch 1 that the original does not run on (it ran on
            freezing's batch).
        OptionError: given data it does not run on (the option named).
    """
    try:
        return run(feeds)
    except TfoptError:  # the time bound, a kernel refusal...: already typed
        raise
    except Exception as exc:
        at = f"{inputs_at.describe()} ({inputs_at.source} inputs)"
        if inputs_at.source == "made up":
            raise MadeUpInputsError(
                f"the original model does not run at {at}, where every artifact is verified (one sample at a "
                f"time, as runtimes are called), although freezing verified it on its own batch: {failure(exc)}. "
                "Export the model so that it runs on one sample (a tf.squeeze with its axis, not every axis of "
                "size 1)") from exc
        raise OptionError(f"--{inputs_at.source}: the original model does not run on these inputs ({at}): "
                          f"{failure(exc)}") from exc


def sample_refused(exc: BaseException, feeds: Mapping[str, Any], sample: str, rows: str, given: str) -> TfoptError:
    """The report's original failing on one sample (``sample``: which, ``rows``: its rows; ``given``:
    the option and file of given data, "" for made-up inputs)."""
    where = f"{sample} ({rows}; {feed_shapes(feeds)})"
    if given:
        return OptionError(f"{given}: the original model does not run on {where}: {failure(exc)}. The report runs "
                           "every sample of the data through the original (verification checked the first ones): "
                           "correct or remove that sample, or give only inputs the model accepts")
    return MadeUpInputsError(f"the report's made-up inputs: the original model does not run on {where}, although "
                             f"it ran on the verification's: {failure(exc)}. Give real inputs with --eval-data")
