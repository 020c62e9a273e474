"""Verification inputs that fit the model, and the original-vs-derived comparison run on them.

Inputs come, in order, from ``--eval-data``, from ``--calibration``, from ``--verify-shape``
(a concrete shape to verify at; the artifact keeps its dynamic dimensions), and only then are
made up. Made-up inputs fill an unknown batch dimension with the batch size and search the
other unknown dimensions: the *original* model runs at 8, 16, 32, ... (one size for every
unknown dimension, within an element budget per input) until every output is non-empty and
finite. A cropping layer empties a short sequence; six poolings of a short time axis leave a
global average over nothing (NaN): neither is a verification, and neither is the fault of
freezing or a converter, so when no size works the error names the input and asks for
``--verify-shape``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.errors import ConversionError, GraphError, OptionError, TfoptError, VerificationError
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.stochastic import check_reproducible
from tfopt.testing import OutputDiff, assert_equivalent, random_inputs

SEARCH_SIZES = tuple(8 << i for i in range(12))  # 8 .. 16384
ELEMENT_BUDGET = 1 << 22  # per input: 4 Mi elements (16 MB of float32) at most
DATA_ROWS = 8  # rows of --eval-data / --calibration used to verify each stage


@dataclass(frozen=True)
class VerifyData:
    """Where verification inputs come from, in the order tried (see the module docstring).

    Attributes:
        eval_data: ``.npz`` of inputs by name (plus ``labels``, unused here).
        calibration: calibration samples (as :func:`tfopt.calibration.load_calibration` returns),
            or a function of the input specs returning them (loaded once the frozen inputs are known).
        shapes: input name -> concrete shape (``--verify-shape NAME:1x10100x4``).
    """

    eval_data: str | None = None
    calibration: Sequence[Mapping[str, np.ndarray]] | Callable[[Sequence[TensorSpec]], Any] | None = None
    calibration_source: str | None = None
    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass
class VerifyInputs:
    """The inputs every stage is verified on, and where they came from."""

    feeds: dict[str, np.ndarray]
    source: str  # "eval-data", "calibration", "verify-shape" or "made up"
    tried: list[str] = field(default_factory=list)  # made-up shapes that gave no usable output

    def shapes(self) -> dict[str, list[int]]:
        return {k: list(np.shape(v)) for k, v in self.feeds.items()}

    def describe(self) -> str:
        """``input_1:1x10100x4, mask:1x10100``."""
        return ", ".join(f"{k}:{'x'.join(str(d) for d in np.shape(v)) or 'scalar'}" for k, v in self.feeds.items())

    def with_batch(self, specs: Sequence[TensorSpec], batch: int, seed: int = 0, graph_def: Any = None) -> VerifyInputs:
        """Made-up inputs at the same non-batch dimensions with another batch size; given data as is.
        ``graph_def``: as for :func:`tfopt.testing.random_inputs` (ids stay inside their table)."""
        if self.source != "made up":
            return self
        shapes = {s.name: (batch, *np.shape(self.feeds[s.name])[1:]) if s.shape and s.shape[0] is None
                  else np.shape(self.feeds[s.name]) for s in specs}
        return VerifyInputs(random_inputs(specs, seed=seed, shapes=shapes, graph_def=graph_def), self.source, self.tried)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "shapes": self.shapes(), "tried": self.tried}


def reference_runner(model: Model) -> Any:
    """The original model's runner; a graph without one (a frozen .pb) runs its own GraphDef."""
    return model.reference if model.reference is not None else GraphRunner(model)


def output_problem(outputs: Mapping[str, Any]) -> str:
    """Why these outputs of the original model cannot be verified against ("" when they can)."""
    for name, value in outputs.items():
        arr = np.asarray(value)
        if arr.size == 0:
            return f"output '{name}' is empty (shape {arr.shape})"
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "inf"
            return f"output '{name}' holds {bad} ({int(np.sum(~np.isfinite(arr)))} of {arr.size} values)"
    return ""


def choose_inputs(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], specs: Sequence[TensorSpec],
                  data: VerifyData | None = None, *, outputs: Sequence[str] | None = None, batch: int = 2,
                  seed: int = 0, graph_def: Any = None) -> VerifyInputs:
    """Inputs the original model gives usable (non-empty, finite) outputs for.

    Args:
        original: runs the original model (bindings included) on feeds keyed by input name.
        specs: the inputs to feed (after freezing: what the derived model takes).
        data: given data and shapes; made-up inputs when it holds none.
        outputs: the output names that matter (default: every output ``original`` returns).
        graph_def: the graph the inputs feed: made-up ids into an Embedding stay inside its table.

    Raises:
        OptionError: given data or a ``--verify-shape`` the original model cannot run or
            gives empty or non-finite outputs for.
        VerificationError: no made-up size gives usable outputs.
    """
    data = data or VerifyData()
    if data.eval_data:
        given = VerifyInputs(_npz_inputs(data.eval_data, specs), "eval-data")
        return check_inputs(original, given, f"--eval-data {data.eval_data}", outputs)
    samples = data.calibration(specs) if callable(data.calibration) else data.calibration
    if samples:
        feeds = {s.name: np.concatenate([x[s.name] for x in samples[:DATA_ROWS]]) for s in specs}
        return check_inputs(original, VerifyInputs(feeds, "calibration"),
                            f"--calibration {data.calibration_source or ''}".rstrip(), outputs)
    if data.shapes:
        shapes = _verify_shapes(data.shapes, specs)
        given = VerifyInputs(random_inputs(specs, seed=seed, batch=batch, shapes=shapes, graph_def=graph_def),
                             "verify-shape")
        return check_inputs(original, given, "--verify-shape", outputs)
    return _search(original, specs, outputs, batch=batch, seed=seed, graph_def=graph_def)


def _search(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], specs: Sequence[TensorSpec],
            outputs: Sequence[str] | None, *, batch: int, seed: int, graph_def: Any = None) -> VerifyInputs:
    dynamic = [s for s in specs if s.shape is not None and any(d is None for d in s.shape[1:])]
    tried: list[str] = []
    last = ""
    failure: Exception | None = None
    for size in SEARCH_SIZES if dynamic else SEARCH_SIZES[:1]:
        feeds = random_inputs(specs, seed=seed, batch=batch, dynamic_dim=size, graph_def=graph_def)
        if tried and any(v.size > ELEMENT_BUDGET for v in feeds.values()):
            break
        candidate = VerifyInputs(feeds, "made up", list(tried))
        try:
            last, failure = output_problem(_select(original(feeds), outputs)), None
        except Exception as exc:  # a size the model cannot take (a VALID conv longer than the input)
            last, failure = f"the original model fails: {type(exc).__name__}: {_first_line(exc)}", exc
        if not last:
            return candidate
        tried.append(candidate.describe())
    if failure is not None:  # ids or indices out of a range tfopt cannot see fail at every size
        rejected = _random_inputs_rejected(failure, specs, graph_def, feeds)
        if rejected is not failure:
            raise rejected from failure
    example = ", ".join(_example_shape(s, batch) for s in (dynamic or specs))
    # Never suggest the very shape that failed (all dimensions known, or an input of unknown rank).
    shape_hint = (f"verify at a shape the model accepts with --verify-shape {example}, or "
                  if not set(example.split(", ")) <= set(tried[-1].split(", ")) else "")
    raise VerificationError(
        f"verifying: made-up inputs give the original model no usable output at {tried[-1]}"
        + (f" (tried {len(tried)} sizes up to it)" if len(tried) > 1 else "") + f": {last}. "
        f"This is about the inputs, not freezing or conversion: {shape_hint}pass real inputs with "
        "--calibration/--eval-data")


def check_inputs(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], given: VerifyInputs, option: str,
                 outputs: Sequence[str] | None) -> VerifyInputs:
    """``given`` when the original model answers it with non-empty, finite outputs.

    Raises:
        OptionError: it does not (the inputs given by ``option`` are at fault, not a stage).
    """
    try:
        problem = output_problem(_select(original(given.feeds), outputs))
    except Exception as exc:
        raise OptionError(f"{option}: the original model does not run on these inputs ({given.describe()}): "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if problem:
        raise OptionError(f"{option}: the original model's {problem} at {given.describe()}; nothing can be "
                          "verified on these inputs: give inputs (or a --verify-shape) it answers with finite values")
    return given


def _select(outputs: Mapping[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    return dict(outputs) if names is None else {n: outputs[n] for n in names}


def _verify_shapes(shapes: Mapping[str, Sequence[int]], specs: Sequence[TensorSpec]) -> dict[str, tuple[int, ...]]:
    names = {s.name: s for s in specs}
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if name not in names:
            from tfopt.errors import did_you_mean

            raise OptionError(f"--verify-shape {name}: not an input of the model.{did_you_mean(name, names)}")
        spec = names[name]
        if any(d is None or int(d) < 0 for d in shape):
            raise OptionError(f"--verify-shape {name}: give every dimension, e.g. {_example_shape(spec, 1)}")
        if spec.shape is not None and (len(shape) != len(spec.shape) or
                                       any(g is not None and g != d for g, d in zip(spec.shape, shape))):
            raise OptionError(f"--verify-shape {name}:{'x'.join(map(str, shape))} does not fit the input's shape "
                              f"{_shape_text(spec.shape)}")
        out[name] = tuple(int(d) for d in shape)
    return out


def _npz_inputs(path: str, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    import os

    if not path.endswith(".npz") or not os.path.exists(path):
        raise OptionError(f"--eval-data {path}: expected an existing .npz of inputs (by name) and 'labels'")
    with np.load(path, allow_pickle=False) as data:
        missing = [s.name for s in specs if s.name not in data.files]
        if missing:
            raise OptionError(f"--eval-data {path}: missing {', '.join(missing)}")
        return {s.name: data[s.name][:DATA_ROWS].astype(s.dtype) for s in specs}


def _example_shape(spec: TensorSpec, batch: int) -> str:
    dims = spec.shape or (batch,)
    return f"{spec.name}:" + "x".join(str(batch) if i == 0 and d is None else "N" if d is None else str(d)
                                      for i, d in enumerate(dims))


def _shape_text(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def verify_against_reference(original: Model, derived: Model, bindings: Mapping[str, Any], *,
                             atol: float, rtol: float, inputs: VerifyInputs | None = None, seed: int = 0,
                             what: str = "the frozen model", stage: str = "freezing") -> list[OutputDiff]:
    """Run ``original`` and ``derived`` (in TensorFlow) on ``inputs`` and compare every output.

    Raises:
        GraphError: ``derived`` does not run in TensorFlow (``stage`` broke it).
        VerificationError: outputs differ; the message names the stage, the reference and the shape.
    """
    runner = reference_runner(original)
    names = [s.name for s in derived.outputs]
    if inputs is None:
        inputs = choose_inputs(lambda f: runner({**f, **bindings}), derived.inputs, outputs=names, seed=seed,
                               graph_def=derived.graph_def)
    expected = runner({**inputs.feeds, **bindings})
    expected = {n: expected[n] for n in names}
    try:
        got = GraphRunner(derived)(inputs.feeds)
    except Exception as exc:
        raise GraphError(f"{stage}: {what} does not run in TensorFlow at {inputs.describe()} although the original "
                         f"model does ({type(exc).__name__}: {_first_line(exc)}); report this with the model") from exc
    try:
        return assert_equivalent(expected, got, atol=atol, rtol=rtol,
                                 what=f"{stage}: {what} (at {inputs.describe()}, {inputs.source} inputs)")
    except VerificationError:  # a reference that disagrees with itself is not the stage's fault
        check_reproducible(lambda f: runner({**f, **bindings}), inputs.feeds, expected, graph_def=derived.graph_def,
                           outputs=names, tensors=[s.tensor for s in derived.outputs],
                           at=f"(at {inputs.describe()})", what=what)
        raise


def verify_artifact(artifact: Any, open_runner: Callable[[], Any], original: Model, inputs: VerifyInputs, *,
                    bound: float | None, preprocess: Any = None) -> None:
    """Run one artifact and the original model on ``inputs``; record the error on ``artifact``
    (``max_abs_err``/``mean_abs_err``) and raise when it exceeds ``bound`` (None: measure only).

    Raises:
        ConversionError: the artifact does not run in its runtime on inputs the original runs on.
        VerificationError: an output differs beyond ``bound``.
    """
    from tfopt.targets import target
    from tfopt.testing import compare

    at = f"at {inputs.describe()} ({inputs.source} inputs)"
    what = f"{artifact.format} {artifact.precision}"
    record = target(artifact.format, "format")
    runtime = record.runtime_name
    expected = reference_runner(original)({**inputs.feeds, **(original.bindings if original.reference else {})})
    expected = {s.name: expected[s.name] for s in original.outputs}
    raw = {k: preprocess.to_raw(v) for k, v in inputs.feeds.items()} if preprocess is not None else inputs.feeds
    try:
        got = open_runner()(raw)
    except Exception as exc:  # the original ran on these inputs: the converted model is at fault, not them
        if isinstance(exc, TfoptError):
            raise
        raise ConversionError(f"running {what} in {runtime}: the model {record.converter} "
                              f"wrote does not run {at}, where the original model runs "
                              f"({type(exc).__name__}: {_first_line(exc)}); nothing was written") from exc
    diffs = compare(expected, got, atol=np.inf, rtol=0)
    artifact.max_abs_err = max(d.max_abs_err for d in diffs)
    artifact.mean_abs_err = float(np.mean([d.mean_abs_err for d in diffs]))
    bad = [d for d in compare(expected, got, atol=bound, rtol=bound) if not d.ok] if bound is not None else []
    if bad:
        check_reproducible(lambda f: reference_runner(original)({**f, **(original.bindings if original.reference
                                                                           else {})}),
                           inputs.feeds, expected, graph_def=original.graph_def, outputs=list(expected),
                           tensors=[s.tensor for s in original.outputs], at=at, what=what)
        raise VerificationError(f"verifying {what} ({runtime}) against the original model (TensorFlow) {at}: output "
                                f"'{bad[0].name}': {bad[0].problem or 'differs'} (max abs err "
                                f"{bad[0].max_abs_err:.3g}, bound {bound:g}); nothing was written")


def _random_inputs_rejected(exc: Exception, specs: Sequence[TensorSpec], graph_def: Any,
                            feeds: Mapping[str, Any]) -> Exception:
    """An integer input whose valid range the graph does not show (ids into a table tfopt cannot
    see, a class index...) can make the original model fail on the random data: say which."""
    from tfopt.errors import TfoptError, VerificationError
    from tfopt.testing import index_bounds

    known = index_bounds(graph_def) if graph_def is not None else {}
    ints = [s for s in specs if s.dtype.startswith(("int", "uint")) and s.name not in known]
    if isinstance(exc, TfoptError) or not ints:
        return exc
    first = " ".join(str(exc).split())[:300]
    drawn = ", ".join(f"'{s.name}' ({s.dtype}, drawn in [0, {int(feeds[s.name].max()) + 1}))" for s in ints)
    return VerificationError(f"the original model fails on tfopt's random verification inputs for {drawn}: "
                             f"{type(exc).__name__}: {first}. Integer inputs are ids or indices whose range tfopt "
                             "cannot see: give real data (convert: --calibration or --eval-data), or skip this "
                             "check with --no-verify")
