"""The samples ``tfopt debug`` runs on: given data (``.npz`` by input name) or made-up inputs at a
shape the model answers (:func:`tfopt.verification.verify.choose_inputs`), split into batch-1 samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt.graph import Model

ROWS = 8  # samples compared (as tfopt.verification.verify.DATA_ROWS)


def debug_inputs(model: Model, data: str | None, option: str = "--inputs") -> tuple[list[dict[str, np.ndarray]],
                                                                                    dict[str, Any]]:
    """``(samples, {"source", "shapes"})``.

    Raises:
        OptionError: ``data`` is missing, not loadable, or its names/shapes do not fit the model's inputs.
        VerificationError: no made-up shape gives the model usable outputs.
        VerificationTimeoutError: the model did not end on made-up inputs within the bound (``--verify-timeout``).
    """
    from tfopt.errors import OptionError

    if data:
        from tfopt.verification.calibration import load_calibration

        try:
            samples = load_calibration(data, model.inputs, samples=ROWS)
        except OptionError as exc:  # the same checks, named by the option the user gave
            raise OptionError(str(exc).replace("--calibration", option, 1)) from None
        source = "given"
    else:
        from tfopt.runtimes.tensorflow import GraphRunner
        from tfopt.verification.verify import choose_inputs, reference_runner

        runner = reference_runner(model, GraphRunner(model))  # each run held to the bound in force (--verify-timeout)
        try:
            chosen = choose_inputs(runner, model.inputs, batch=4, graph_def=model.graph_def)
        finally:
            runner.close()
        from tfopt.verification.shapes import split_samples

        samples = split_samples(model.inputs, chosen.feeds, chosen.ties) if chosen.feeds else [{}]
        source = "made up"
    shapes = {s.name: list(np.shape(samples[0][s.name])) for s in model.inputs}
    return samples, {"source": source, "samples": len(samples), "shapes": shapes}
