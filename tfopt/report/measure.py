"""Measure each artifact against the original model on the same inputs.

Per artifact and output: max/mean absolute error, relative error ``max|a−r| / max|r|``, the error
in the verification's units ``max|a−r| / (1 + max|r|)`` (``scaled_err``: within the fp32 bound when
<= ``tfopt.verification.tolerances.ARTIFACT["fp32"]``, whatever the outputs' magnitude), cosine
similarity of the flattened outputs, and top-1 agreement (same argmax on the last axis). With
labels: top-1/top-5 accuracy (integer labels; the class rule of :mod:`tfopt.verification.classes`,
one-score binary classifiers included) or MAE/RMSE (float labels), and the drop from the
original in points. Latency: median and p90 over ``runs`` timed calls after 3 warm-up calls,
batch 1, with the thread count stated.

A runtime whose default precision a deployer may get instead of the verified one (OpenVINO's CPU
plugin runs f32 IRs in bf16 on CPUs with bf16) has its runner offer ``at_runtime_default``: the row
then carries ``runtime_default``, the fidelity at that precision beside the verified one, or why
it equals the verified one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import numpy as np

from tfopt.errors import (
    ModelFormatError,
    OptionError,
    TensorPairingError,
    TfoptError,
    VerificationTimeoutError,
    one_line,
)
from tfopt.graph import Model
from tfopt.runtimes.base import latency as _latency
from tfopt.verification.classes import threshold, top1, top5
from tfopt.verification.data_batches import Batches
from tfopt.verification.deadline import artifact_bound
from tfopt.verification.nonfinite import worst


def measure(outdir: str, reference: Callable[[Mapping[str, Any]], dict[str, Any]] | None, model: Model, artifacts: list[dict[str, Any]],
            *, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None, runs: int = 20,
            threads: int | None = None, progress: Callable[[Any], None] | None = None,
            metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
            converted_here: bool = False, batch_axes: Mapping[str, int | None] | None = None, sample_rows: int = 1,
            runtime_default_precision: str | None = None, recorded: RecordedReference | None = None,
            bounds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Build the report dict (see the README's report schema). ``metric(predictions, labels)``
    replaces the built-in accuracy: a score, higher is better; the drop is reference - artifact.
    ``converted_here``: the artifacts were just converted from ``model`` (see :func:`_run_artifact`).
    ``batch_axes``: input name -> the axis holding its samples (default 0; None: fed whole), as a
    time-major RNN's ``[time, batch, features]`` holds them on axis 1; ``sample_rows`` rows there are
    one sample (a batch that a graph splits into N towers: N).
    ``runtime_default_precision``: the precision hint of the runtime-default run (None: the
    runtime's own default, as a deployer gets it; see the module docstring).
    ``recorded``: the original's outputs and latency on these inputs, measured earlier
    (:func:`record_reference`; ``reference`` is then not called). Each artifact's runtime is closed
    before the next one opens: one model's weights in memory at a time. ``bounds``: artifact path ->
    the verification bound, held over every sample here: a row beyond it carries
    :data:`tfopt.verification.fidelity_bound.KEY` (:func:`~tfopt.verification.fidelity_bound.beyond_bound`)."""
    from tfopt.terminal.progress import Step

    threads = threads or os.cpu_count() or 1
    from tfopt.verification.testing import unranked_outputs

    per_sample = recorded.sample_rows if recorded is not None else sample_rows
    samples = _Samples(inputs, batch_axes or {}, unranked_outputs(model.outputs), per_sample,
                       recorded.padded if recorded is not None else 0)
    if recorded is None:
        if reference is None:
            raise ValueError("measure: neither the original model (reference) nor its recorded outputs")
        recorded = record_reference(reference, model, inputs, batch_axes, runs, sample_rows=per_sample)
    expected, reference_latency = recorded.expected, recorded.latency_ms
    first = model.outputs[0].name
    cut = threshold(expected[first])  # one decision boundary for the original and every artifact
    ref_accuracy = _accuracy(expected[first], labels, metric, cut) if labels is not None else None
    rows, timed_out = [], []
    seconds = artifact_bound(reference_latency["median"] / 1e3)  # each call of an artifact (tfopt.verification.deadline)
    for index, artifact in enumerate(artifacts):
        if progress is not None:
            progress(Step("measuring artifacts", index + 1, len(artifacts)))
        runner = None
        try:
            got, runner = _run_artifact(artifact, outdir, model, samples, threads, converted_here=converted_here,
                                        seconds=seconds)
            latency = runner.latency(samples.sample(0), runs) if hasattr(runner, "latency") else \
                _latency(_single_call(getattr(runner, "unbounded", runner), samples), runs)  # sample 0 ended in the bound
        except VerificationTimeoutError as exc:  # it alone fails (no row: no numbers); the others are measured
            timed_out.append({k: artifact[k] for k in ("format", "precision", "path")} | {"reason": str(exc)})
            if runner is not None:
                runner.close()
            continue
        fidelity = _fidelity(expected, got)
        accuracy = _accuracy(got[first], labels, metric, cut) if labels is not None else None
        rows.append({
            "format": artifact["format"], "precision": artifact["precision"], "path": artifact["path"],
            "bytes": artifact["bytes"], "gzip_bytes": artifact.get("gzip_bytes"), "fidelity": fidelity,
            "accuracy": accuracy, "accuracy_drop": _drop(ref_accuracy, accuracy),
            "latency_ms": {**latency, "threads": threads},
        })
        if (bound := (bounds or {}).get(artifact["path"])) is not None:
            from tfopt.verification.fidelity_bound import KEY, beyond_bound

            if (bad := beyond_bound(expected, got, bound, samples.unranked)) is not None:
                rows[-1][KEY] = bad
        runner.close()  # before any other runtime opens (a model over 2 GB is in memory once at a time)
        if hasattr(runner, "at_runtime_default"):
            rows[-1]["runtime_default"] = _at_runtime_default(runner, expected, samples, runtime_default_precision)
        del runner, got
    return {"reference": {"latency_ms": {**reference_latency, "threads": "tensorflow default"},
                          "accuracy": ref_accuracy},
            "samples": samples.count, "batch_rows": per_sample, "batching": recorded.batching or None, "artifacts": rows,
            **({"timed_out": timed_out} if timed_out else {})}


@dataclass
class RecordedReference:
    """The original model's part of a report, measured on its inputs before the artifacts exist:
    what :func:`measure` compares every artifact with (a model over 2 GB is released after it,
    see :mod:`tfopt.conversion.release`)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    batch_axes: Mapping[str, int | None] | None
    expected: dict[str, np.ndarray]  # output name -> the original's outputs, samples concatenated
    latency_ms: dict[str, Any]
    sample_rows: int = 1  # rows of one sample (a batch split into N towers: N)
    padded: int = 0  # rows that complete given data's last batch (its first rows again): their outputs dropped
    batching: str = ""  # how given data was batched (tfopt.verification.data_batches.describe)
    untimed: bool = False  # recorded before the artifacts were built (converters busy): latency_ms is {} until
    # the report times the original (timed_again)

    def timed_again(self, reference: Callable[[Mapping[str, Any]], dict[str, Any]], runs: int) -> RecordedReference:
        """The same outputs, the original's latency measured now (``reference``: the original)."""
        samples = _Samples(self.inputs, self.batch_axes or {}, set(), self.sample_rows, self.padded)
        timed = getattr(reference, "unbounded", reference)
        return replace(self, latency_ms=_latency(_single_call(timed, samples), runs), untimed=False)


def record_reference(reference: Callable[[Mapping[str, Any]], dict[str, Any]], model: Model,
                     inputs: dict[str, np.ndarray], batch_axes: Mapping[str, int | None] | None, runs: int,
                     labels: np.ndarray | None = None, sample_rows: int = 1, padded: int = 0,
                     batching: str = "", given: str = "", timed: bool = True) -> RecordedReference:
    """The original's outputs on ``inputs`` (one sample at a time, as every artifact runs) and its latency.
    ``padded``: the last sample's last rows complete a batch (:mod:`tfopt.verification.data_batches`);
    their outputs are dropped, here and for every artifact. ``given``: the option and file the inputs
    come from (``--eval-data data.npz``; "" for made-up inputs), named when the original fails on a sample.
    ``timed=False``: the latency is left to :meth:`RecordedReference.timed_again` (``untimed``).

    Raises:
        OptionError: the original model does not run on a sample of given data (verification checked
            only the first: the sample, its rows and TensorFlow's node and message named).
        MadeUpInputsError: it does not run on a sample of the report's made-up inputs.
    """
    from tfopt.verification.testing import unranked_outputs

    samples = _Samples(inputs, batch_axes or {}, unranked_outputs(model.outputs), sample_rows, padded)
    done = [0]

    def counted(feeds: Mapping[str, Any]) -> dict[str, Any]:
        out = reference(feeds)
        done[0] += 1
        return out

    try:
        expected = _batched(counted, samples, [s.name for s in model.outputs])
    except TfoptError:
        raise
    except Exception as exc:  # TensorFlow's InvalidArgumentError, an assertion tied to the values of one row...
        from tfopt.verification.refused_inputs import sample_refused

        i, n = done[0], samples.rows
        rows = f"row {i * n}" if n == 1 else f"rows {i * n}..{(i + 1) * n - 1}"
        raise sample_refused(exc, samples.sample(i), f"sample {i} of {samples.count}", f"{rows} on each input's batch "
                             "axis", given) from exc
    unbounded = getattr(reference, "unbounded", reference)  # sample 0 just ended within the bound: timed without it
    latency = _latency(_single_call(unbounded, samples), runs) if timed else {}
    return RecordedReference(inputs, labels, batch_axes, expected, latency, sample_rows, padded, batching,
                             untimed=not timed)


class _Samples(Batches):
    """Inputs split into samples along each input's batch axis (:class:`tfopt.verification.data_batches.Batches`)."""

    def __init__(self, inputs: dict[str, np.ndarray], axes: Mapping[str, int | None], unranked: set[str],
                 rows: int = 1, padded: int = 0):
        super().__init__(inputs, axes, rows, padded)
        self.unranked = unranked  # outputs of unknown rank: compared element by element (tfopt.verification.testing.compare)


def _run_artifact(artifact: dict[str, Any], outdir: str, model: Model, inputs: _Samples,
                  threads: int, *, converted_here: bool = False, seconds: float | None = None) -> tuple[dict[str, np.ndarray], Any]:
    """The artifact's outputs on ``inputs``, and its runner; a file its runtime cannot open, or
    whose inputs/outputs are not the reference model's, is a typed error naming the file.

    The original model answered ``inputs``: when this run just converted the artifact from it
    (``converted_here``), a runtime that fails on them is at fault (:class:`ConversionError`);
    an artifact given to ``tfopt verify`` more likely belongs to another model (:class:`OptionError`).
    ``seconds``: each call's time bound (:func:`tfopt.runtimes.runner_for`)."""
    from tfopt.runtimes import runner_for
    from tfopt.verification.deadline import describe_bound

    path = os.path.join(outdir, artifact["path"])
    fmt = artifact["format"]
    try:
        runner = runner_for(fmt, path, model, threads=threads, timeout=seconds, describe_bound=describe_bound)
    except (KeyError, IndexError) as exc:
        raise OptionError(f"{path}: its inputs/outputs do not pair with the reference model's "
                          f"({_names(model)}; no {exc}); is --reference the model it was converted from?") from exc
    except TensorPairingError as exc:
        raise OptionError(f"{path}: does not run as the reference model does ({_names(model)}; {exc}); "
                          "is --reference the model it was converted from?") from exc
    except TfoptError:
        raise
    except Exception as exc:
        raise ModelFormatError(f"{path}: the {fmt} runtime cannot open it ({type(exc).__name__}: {one_line(exc)}); "
                               f"the file may be truncated or not a {fmt} model") from exc
    try:
        return _batched(runner, inputs, [s.name for s in model.outputs]), runner
    except TfoptError:
        raise
    except Exception as exc:
        if converted_here:
            _blame_runtime(exc, artifact, inputs.sample(0))
        raise OptionError(f"{path}: does not run as the reference model does ({_names(model)}; "
                          f"{type(exc).__name__}: {one_line(exc)}); is --reference the model it was converted from?") from exc


def _at_runtime_default(runner: Any, expected: dict[str, np.ndarray], inputs: _Samples,
                        precision: str | None) -> dict[str, Any]:
    """The runner's record of its runtime's default precision, with the fidelity measured there
    (``None`` when the default is the verified precision: the numbers above)."""
    record, other = runner.at_runtime_default(precision)
    if other is None:
        return {**record, "fidelity": None}
    try:
        return {**record, "fidelity": _fidelity(expected, _batched(other, inputs, list(expected)))}
    except RuntimeError as exc:  # compiled, but the plugin cannot run it at that precision here
        return runner.default_failed(record, exc)
    finally:
        other.close()


def _names(model: Model) -> str:
    return (f"inputs {', '.join(s.describe() for s in model.inputs)}; "
            f"outputs {', '.join(s.name for s in model.outputs)}")


def _blame_runtime(exc: Exception, artifact: dict[str, Any], inputs: dict[str, np.ndarray]) -> NoReturn:
    from tfopt.errors import ConversionError, TfoptError
    from tfopt.targets import target
    from tfopt.verification.feed_shapes import feed_shapes

    if isinstance(exc, TfoptError):
        raise exc
    raise ConversionError(f"running {artifact['format']} {artifact['precision']} in "
                          f"{target(artifact['format'], 'format').runtime_name}: {artifact['path']} does not run at "
                          f"{feed_shapes(inputs)}, where the original model runs ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]})") from exc


def _single_call(run: Callable[[Mapping[str, Any]], Any], inputs: _Samples) -> Callable[[], Any]:
    first = inputs.sample(0)
    return lambda: run(first)


def _batched(run: Callable[[Mapping[str, Any]], dict[str, Any]], inputs: _Samples,
             names: list[str]) -> dict[str, np.ndarray]:
    """One sample at a time (every runtime accepts batch 1), concatenated (on axis 0: the
    statistics compare elements, wherever an output keeps its batch); an output of unknown rank,
    whose batch-1 shape TensorFlow may squeeze further than a converter, as its elements in order;
    so is an output whose samples differ past axis 0 (a size the data decides: a CTC decode's
    longest sequence), which no axis concatenates."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(inputs.count):
        out = run(inputs.sample(i))
        for k in names:
            value = np.atleast_1d(np.asarray(out[k], dtype=np.float64))
            value = inputs.real(i, value)
            parts[k].append(value.ravel() if k in inputs.unranked else value)
    return {k: np.concatenate(v if len({p.shape[1:] for p in v}) <= 1 else [p.ravel() for p in v])
            for k, v in parts.items()}


@np.errstate(invalid="ignore", over="ignore")  # inf - inf is NaN, and NaN is what gets reported
def _fidelity(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst case over the outputs (top-1 agreement in percent). NaN/Inf propagate: a NaN anywhere
    makes the statistic NaN (a fold with Python's ``max``/``min`` would turn it into a perfect 0 or 1)."""
    from tfopt.verification.tolerances import scaled_error

    max_abs, mean_abs, rel, cos, agree, scaled = [], [], [], [], [], []
    for name, ref in expected.items():
        val = got[name]
        if val.shape != ref.shape:  # samples of data-decided sizes that differ from the original's: no statistic
            val = np.full(ref.shape, np.nan)
        err = np.abs(val - ref)
        max_abs.append(float(err.max()))
        finite = np.abs(ref[np.isfinite(ref)])
        scaled.append(scaled_error(err.max(), finite.max() if finite.size else 0.0))
        mean_abs.append(float(err.mean()))
        rel.append(float(err.max() / np.maximum(np.abs(ref).max(), 1e-12)))
        a, b = ref.ravel(), val.ravel()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos.append(float(a @ b / denom) if denom else (1.0 if math.isfinite(float(a @ b)) else math.nan))
        if ref.ndim >= 2 and ref.shape[-1] > 1:
            finite = bool(np.isfinite(ref).all() and np.isfinite(val).all())  # argmax of NaN is not a class
            agree.append(100.0 * float(np.mean(ref.argmax(-1) == val.argmax(-1))) if finite else math.nan)
    return {"max_abs_err": worst(max_abs), "mean_abs_err": worst(mean_abs), "rel_err": worst(rel),
            "cosine": worst(cos, lowest=True), "top1_agreement": worst(agree or [100.0], lowest=True),
            "scaled_err": worst(scaled)}


def _accuracy(output: np.ndarray, labels: np.ndarray,
              metric: Callable[[np.ndarray, np.ndarray], float] | None, cut: float) -> dict[str, Any]:
    if output.ndim == 1 and labels.ndim and output.size != len(labels) and output.size % max(len(labels), 1) == 0:
        output = output.reshape(len(labels), -1)  # an output of unknown rank: each sample's elements in order
    if metric is not None:
        return {"score": float(metric(output, labels))}
    if np.issubdtype(labels.dtype, np.integer):
        if not np.isfinite(output).all():  # a NaN score has no rank: no accuracy to claim
            return {"top1": math.nan, "top5": math.nan}
        return {"top1": top1(output, labels, cut), "top5": top5(output, labels)}  # percent, as in the table
    diff = output.reshape(labels.shape) - labels
    return {"mae": float(np.mean(np.abs(diff))), "rmse": float(np.sqrt(np.mean(diff ** 2)))}


def _drop(reference: dict[str, float] | None, value: dict[str, float] | None) -> float | None:
    """Points lost: top-1 percentage points for classifiers, the MAE increase for regression."""
    if reference is None or value is None:
        return None
    if "score" in reference:
        return reference["score"] - value["score"]
    if "top1" in reference:
        return reference["top1"] - value["top1"]  # percentage points
    return value["mae"] - reference["mae"]
