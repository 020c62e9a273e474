"""The pipeline the CLI and the Python API share: load -> freeze -> (later stages) -> emit."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from tfopt.errors import OptionError, stage
from tfopt.graph import Model
from tfopt.options import FreezeOptions, LoadOptions, OptimizeOptions, split
from tfopt.targets import TABLE, EmitJob
from tfopt.terminal.signals import checkpoint
from tfopt.verification.deadline import verify_timeout

if TYPE_CHECKING:
    from tfopt.freezing import FreezeReport
    from tfopt.passes.optimizing import OptimizeReport

SAVE_FORMATS = ("pb", "pbtxt", "savedmodel")
FIT_ROWS = 64  # calibration (else eval) rows the lossy passes fit on (the cluster snap's H, centroids and biases)


def load_kwargs(options: LoadOptions) -> dict[str, Any]:
    """:func:`tfopt.loaders.load`'s keywords from a :class:`LoadOptions` (its fields, unchanged)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def run_freeze(model: Model | str | os.PathLike[str], load: LoadOptions, freeze: FreezeOptions, *, seed: int = 0,
               verify_data: Any = None) -> tuple[Model, FreezeReport]:
    """Load (when given a path) and freeze, with one options object per stage."""
    from tfopt.freezing import freeze as run
    from tfopt.loaders import load as load_model

    if not isinstance(model, Model):
        with stage("loading"):
            model = load_model(model, **load_kwargs(load))
    elif load != LoadOptions():
        changed = [f.name for f in dataclasses.fields(load) if getattr(load, f.name) != getattr(LoadOptions(), f.name)]
        raise OptionError(f"load options {changed} given for an already loaded model")
    with stage("freezing"), verify_timeout(freeze.verify_timeout):
        return run(model, set_values=dict(freeze.set), inputs=dict(freeze.inputs), verify=freeze.verify,
                   atol=freeze.atol, rtol=freeze.rtol, seed=seed, verify_shape=dict(freeze.verify_shape),
                   verify_data=verify_data)


def run_optimize(model: Model | str | os.PathLike[str], load: LoadOptions, freeze: FreezeOptions,
                 optimize: OptimizeOptions, *, seed: int = 0,
                 verify_data: Any = None) -> tuple[Model, Model, FreezeReport, OptimizeReport]:
    """Load (when given a path), freeze and optimize, with one options object per stage.

    Returns ``(portable, runtime, freeze_report, optimize_report)``: ``portable`` is folded but
    unfused (for TFLite/ONNX/OpenVINO), ``runtime`` adds TF-only fusion (for .pb / SavedModel).
    """
    from tfopt.passes.optimizing import optimize as run

    frozen, freeze_report = run_freeze(model, load, freeze, seed=seed, verify_data=verify_data)
    checkpoint()  # a safe point for an interrupt (see tfopt.terminal.signals)
    with stage("optimizing"), verify_timeout(freeze.verify_timeout):
        portable, runtime, report = run(frozen, passes=optimize.passes, skip=optimize.skip,
                                        grappler=optimize.grappler, verify=freeze.verify, atol=optimize.atol,
                                        rtol=optimize.rtol, seed=seed, verified_at=freeze_report.verified_at,
                                        fit_data=calibration_rows(verify_data, frozen))
    return portable, runtime, freeze_report, report


def calibration_rows(verify_data: Any, frozen: Model) -> dict[str, Any] | None:
    """The rows the lossy passes fit on: the first :data:`FIT_ROWS` calibration samples, joined per
    input, else the first :data:`FIT_ROWS` rows of ``--eval-data``, or None with neither (they then
    fit on the rows every stage is verified on). Calibration samples whose shapes differ from the
    first one's (variable lengths) are left out: rows must stack. Rows are taken on each input's
    batch axis (:mod:`tfopt.verification.data_batches`)."""
    import numpy as np

    from tfopt.verification.data_batches import join_samples

    source = getattr(verify_data, "calibration", None)
    samples = source(frozen.inputs) if callable(source) else source
    if not samples:
        return _eval_rows(getattr(verify_data, "eval_data", None), frozen)
    names = [s.name for s in frozen.inputs]
    shapes = [np.shape(samples[0][n]) for n in names]
    same = [x for x in samples if [np.shape(x[n]) for n in names] == shapes][:FIT_ROWS]
    return join_samples(same, frozen.inputs)  # on each input's batch axis


def _eval_rows(source: Any, frozen: Model) -> dict[str, Any] | None:
    """The first :data:`FIT_ROWS` rows of ``--eval-data`` (a path, or a function of the input specs
    returning its inputs read and checked), or None without it."""
    from tfopt.verification.data_batches import sample_axes, whole_batches
    from tfopt.verification.input_data import npz_arrays

    if not source:
        return None
    if not callable(source):
        return npz_arrays(source, frozen.inputs, option="--eval-data", rows=FIT_ROWS)
    feeds = source(frozen.inputs)
    return whole_batches(feeds, 1, FIT_ROWS, sample_axes(feeds, frozen.inputs))[0]


def freeze_model(model: Model | str | os.PathLike[str], **options: Any) -> tuple[Model, FreezeReport]:
    """:func:`run_freeze` from flat keywords (load and freeze options mixed; ``seed``; see :mod:`tfopt.options`)."""
    seed, verify_data = options.pop("seed", 0), options.pop("verify_data", None)
    load, freeze = split(options, "load", "freeze")
    load.check()  # before the load, not after it
    freeze.check()
    return run_freeze(model, load, freeze, seed=seed, verify_data=verify_data)


def optimize_model(model: Model | str | os.PathLike[str], **options: Any) -> tuple[Model, Model, FreezeReport, OptimizeReport]:
    """:func:`run_optimize` from flat keywords (load, freeze and optimize options mixed; ``opt_atol``/
    ``opt_rtol`` are the optimize check's tolerances; see :mod:`tfopt.options`)."""
    seed, verify_data = options.pop("seed", 0), options.pop("verify_data", None)
    load, freeze, optimize = split(options, "load", "freeze", "optimize")
    for group in (load, freeze, optimize):
        group.check()  # before the load, not after it
    return run_optimize(model, load, freeze, optimize, seed=seed, verify_data=verify_data)


def infer_format(path: str, format: str | None) -> str:
    if format is not None:
        if format not in SAVE_FORMATS:
            raise OptionError(f"--format {format}: choose one of {', '.join(SAVE_FORMATS)}")
        return format
    lower = path.lower()
    if lower.endswith(".pbtxt"):
        return "pbtxt"
    if lower.endswith(".pb"):
        return "pb"
    return "savedmodel"


def output_kind(fmt: str) -> str:
    """``"dir"`` for a format written as a directory (its target record has a marker file), else ``"file"``."""
    record = TABLE.get(fmt)
    return "dir" if record is not None and record.marker else "file"


def save_model(model: Model, path: str, *, format: str | None = None, source: str | None = None,
               overwrite: bool = False) -> str:
    """Emit ``model`` to ``path`` (atomically).

    Refuses (before writing) to overwrite the input model (``source``, else the path ``model`` was
    loaded from) or an existing directory tfopt did not write, unless ``overwrite``; see
    :mod:`tfopt.conversion.output_paths`.
    """
    from tfopt.conversion.output_paths import check_output, model_path

    fmt = infer_format(path, format)
    record = TABLE.get(fmt)  # pb, savedmodel: the targets of those names; pbtxt: text of the same graph
    check_output(path, inputs=[source, model_path(model)], kind=output_kind(fmt), overwrite=overwrite)
    if record is not None:
        written: str = record.call("emit", EmitJob(model, model, path, "fp32"))
        return written
    from tfopt.emitters.frozen_graph import emit_frozen_graph

    return emit_frozen_graph(model, path, text=True)
