"""The calibration batches a converter's own quantizer steps through, and the run of the graph on them that comes
first: made once per conversion, shared by every target that calibrates with its converter.

``--quantizer native`` int8, int16x8, an int8 target tfopt's engine leaves to its converter: TFLite's calibrator,
ONNX Runtime's and NNCF's step through the calibration samples in process, where no bound reaches. The samples are
cut into the whole batches the graph takes (:func:`tfopt.verification.data_batches.sample_batches`: towers, a fixed
batch; a graph that splits its batch is probed for it), and where an input reaches a loop of the graph
(:func:`tfopt.verification.deadline.loop_inputs`: any other graph ends, and pays nothing) the graph runs every batch
in TensorFlow first, held to ``--verify-timeout``. Both depend on the graph, the samples and the bound only, one of
each per conversion: the second target that calibrates gets the same batches and the same outcome without a second
pass over the data (:attr:`CalibrationBatches.runs` counts the passes). A run past the bound fails every target that
needs it, each alone and each named in its own error (:func:`calibration_stage`).
"""

from __future__ import annotations

from typing import Any

from tfopt.errors import VerificationTimeoutError
from tfopt.graph import Model


class CalibrationBatches:
    """``samples`` (calibration samples, batch 1) as the batches ``portable`` takes, for every converter that
    calibrates in a conversion (:class:`tfopt.conversion.stages.Prepared` holds one); each run of the graph is held to
    ``timeout`` (``--verify-timeout``, :mod:`tfopt.verification.deadline`). ``runs``: the passes of the graph over
    the batches before a converter calibrates (0 or 1)."""

    def __init__(self, portable: Model, samples: Any, timeout: float | None):
        self.portable, self.samples, self.timeout = portable, samples, timeout
        self.runs = 0
        self._batches: list[dict[str, Any]] | None = None
        self._ends = False  # the graph ended on every batch within the bound, or no input reaches a loop
        self._stopped: Any = None  # the runner a run outlived the bound in (it names the error in each stage)

    def __call__(self, target: str, precision: str, *, calibrates: bool) -> Any:
        """The batches for ``target``'s ``precision`` (None or empty stays so); ``calibrates``: its converter steps
        through them in process (the graph has run them within the bound first).

        Raises:
            VerificationTimeoutError: a run did not end within the bound (now, or for an earlier target); names this
                target's calibration, the model, the option.
        """
        if not self.samples:
            return self.samples
        from tfopt.runtimes.bounded_stage import within
        from tfopt.verification.deadline import verify_timeout

        with verify_timeout(self.timeout), within(calibration_stage(self.portable, target, precision)):
            batches = self._run(calibrates=calibrates) if self._stopped is None else None
            if batches is None:  # in this target's stage, whichever target's run outlived the bound
                raise self._stopped.stopped_here()
        return [dict(batch) for batch in batches]  # a converter may change its feeds: its own dicts

    def _run(self, *, calibrates: bool) -> list[dict[str, Any]] | None:
        """The batches (the probe of a graph that splits its batch), after, when ``calibrates``, the graph ran every
        batch (once a conversion); None: a run outlived the bound (its runner kept in ``_stopped``)."""
        from tfopt.verification.data_batches import sample_batches
        from tfopt.verification.deadline import loop_inputs
        from tfopt.verification.verify import reference_runner

        opened: list[Any] = []  # the graph the converter calibrates, opened on its first run (a plain graph: never)

        def run(feeds: Any) -> Any:
            if not opened:
                opened.append(reference_runner(self.portable.replace(reference=None)))
            return opened[0](feeds)

        try:
            if self._batches is None:  # probed: a probe past the bound is taken as a refusal by the search
                batches = sample_batches(self.samples, run, self.portable.inputs, self.portable.graph_def)
                if opened and opened[0].stopped is not None:
                    self._stopped = opened[0]
                    return None
                self._batches = batches
            if calibrates and not self._ends:
                if loop_inputs(self.portable.graph_def, self.portable.inputs):
                    for batch in self._batches:
                        run(batch)
                    self.runs += 1
                self._ends = True
        except VerificationTimeoutError:
            if not opened or opened[0].stopped is None:  # not a run of the graph here
                raise
            self._stopped = opened[0]
            return None
        finally:
            for runner in opened:
                runner.close()
        return self._batches


def calibration_stage(portable: Model, target: str, precision: str) -> Any:
    """The runs of :class:`CalibrationBatches` as a bounded stage (:mod:`tfopt.runtimes.bounded_stage`): a timeout
    names the converter's calibration (its target fails alone, in ``converting``), not verification."""
    from tfopt.runtimes.bounded_stage import Stage

    return Stage(f"the {precision} calibration of {target} (its converter's own quantizer)",
                 model=portable.provenance.get("path") or "",  # the probe runs made-up values: every way to inputs
                 skip="build int8 with tfopt's engine (--quantizer tfopt), whose runs are bounded" if precision == "int8"
                 else f"leave {precision} out of --quantize")
