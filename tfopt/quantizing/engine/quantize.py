"""tfopt's int8 engine: ranges and weights decided once, in the TensorFlow graph, for every target.

One recipe turns the portable float graph into a graph with fake-quant ops, which every target's
converter then executes as int8 (see :mod:`tfopt.quantizing.engine.fake_quant`)::

    float graph --equalize--> --adaround--> --bias correction--> transformed float graph
        --statistics (one streaming pass)--> ranges (calibration method, per tensor)
        --insert fake quants (weights per channel or per tensor, activations per tensor)--> int8 graph

- ``equalize`` (:mod:`.equalize`): cross-layer equalization, exact in float.
- ``adaround`` (:mod:`.adaround`): learned rounding of each weight, layer by layer.
- ``bias_correction`` (:mod:`.bias_correction`): the mean output shift weight rounding causes,
  measured on the calibration data, is subtracted from each bias.
- The calibration method (:mod:`.ranges`): ``minmax``, ``percentile[:P]``, ``entropy``, ``mse``.

The weight transforms change activations, so statistics are collected on the transformed graph;
candidates that differ only in their calibration method share one collection (:class:`Engine`
caches per transform set).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt.errors import OptionError
from tfopt.graph import Model

TRANSFORMS = ("equalize", "adaround", "bias_correction")


@dataclass(frozen=True)
class Recipe:
    """One way to quantize: a calibration method, the weight transforms, the weight granularity.

    Its text form is ``METHOD[+equalize][+adaround][+bias_correction][+per_tensor][+7bit][+no_new_bias]``,
    e.g. ``mse+equalize+bias_correction``; ``str(recipe)`` gives it back, in that order. ``7bit`` keeps
    weights within ±63 steps of the int8 grid (see :mod:`tfopt.quantizing.engine.weight_grid`:
    no int16 saturation on CPUs without VNNI). ``no_new_bias`` (with ``bias_correction`` or ``equalize``):
    no step gives a layer whose float bias is zero or absent a bias (for a target whose int8 kernels
    pay for one: :attr:`tfopt.targets.Target.engine_new_biases`): bias correction leaves such a layer
    uncorrected (the mean shift of its rounding reaches the next corrected layer, whose correction
    includes it) and high-bias absorption leaves a pair with such a layer alone.

    Two knobs come from the target table only, never from ``--int8-recipe`` (the text shows them as
    ``+fixed_ranges`` and ``+float_outputs``): ``fixed_ranges`` (``(TF op, (lo, hi) or "input")``: the
    op's output gets the range its target's int8 kernel always has) and ``float_outputs`` (TF ops the target runs in
    float: a graph output of one, read by no op, gets no range); see
    :mod:`tfopt.quantizing.engine.kernel_ranges`.
    """

    method: str = "minmax"
    equalize: bool = False
    adaround: bool = False
    bias_correction: bool = False
    per_channel: bool = True
    weight_bits: int = 8
    new_biases: bool = True
    fixed_ranges: tuple[tuple[str, tuple[float, float] | str], ...] = ()
    float_outputs: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [self.method, *(t for t in TRANSFORMS if getattr(self, t))]
        return "+".join(parts + ([] if self.per_channel else ["per_tensor"])
                        + ([] if self.weight_bits == 8 else [f"{self.weight_bits}bit"])
                        + ([] if self.new_biases else ["no_new_bias"])
                        + (["fixed_ranges"] if self.fixed_ranges else []) + (["float_outputs"] if self.float_outputs else []))

    @property
    def weight_levels(self) -> int:
        """Steps of ``max|W|`` on each side of zero: 127 for 8-bit weights, 63 for 7-bit."""
        from tfopt.quantizing.engine.weight_grid import levels

        return levels(self.weight_bits)

    @property
    def transforms(self) -> tuple[bool, bool, bool, bool, int, bool]:
        """What the statistics depend on (everything but the method)."""
        return (self.equalize, self.adaround, self.bias_correction, self.per_channel, self.weight_bits, self.new_biases)

    @classmethod
    def parse(cls, text: str, option: str = "--int8-recipe") -> Recipe:
        from tfopt.quantizing.engine.ranges import parse_method

        method, *flags = [p.strip() for p in text.split("+") if p.strip()] or ["minmax"]
        method = str(parse_method(method))
        unknown = [f for f in flags if f not in (*TRANSFORMS, "per_tensor", "7bit", "no_new_bias")]
        if unknown and unknown[0] in ("fixed_ranges", "float_outputs"):
            raise OptionError(f"{option} {text}: '{unknown[0]}' is not chosen by the recipe: each target's kernels "
                              "decide it (the target table); leave it out")
        if unknown:
            raise OptionError(f"{option} {text}: unknown step '{unknown[0]}'; a recipe is METHOD[+equalize]"
                              "[+adaround][+bias_correction][+per_tensor][+7bit][+no_new_bias], e.g. "
                              "mse+equalize+bias_correction")
        return cls(method, "equalize" in flags, "adaround" in flags, "bias_correction" in flags,
                   "per_tensor" not in flags, 7 if "7bit" in flags else 8,
                   "no_new_bias" not in flags or not {"bias_correction", "equalize"} & set(flags))


@dataclass
class EngineReport:
    """What the engine did: the recipe, each transform's own report, and the ranges it chose."""

    recipe: str
    transforms: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    kept_float: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    skips: list[str] = field(default_factory=list)  # ops left float by the engine itself, with the reason

    def as_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "transforms": self.transforms, "activation_ranges": len(self.ranges),
                "kept_float": self.kept_float, "skips": self.skips,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


class Engine:
    """Quantizes one float model by any number of recipes, collecting statistics once per transform set.

    Args:
        model: the portable float graph (folded, unfused).
        samples: calibration samples (a list of feed dicts, or ``{input: array}``).
        keep_float: TF node names of layers left without fake quants (float in every target).
        adaround_budget: seconds AdaRound may spend on the whole model.
        progress: called with progress events (strings and :class:`tfopt.terminal.progress.Step`).
    """

    def __init__(self, model: Model, samples: Any, *, keep_float: Sequence[str] = (),
                 adaround_budget: float | None = None, progress: Callable[[Any], None] | None = None):
        if not isinstance(samples, Mapping):  # load_calibration's list of feed dicts: one dict of arrays
            from tfopt.verification.data_batches import join_samples

            samples = join_samples(samples, model.inputs)  # on each input's batch axis
        self.model, self.keep_float = model, list(keep_float)
        self.samples, self._fed, self._batch_rows = _whole_batches(model, samples)
        self.adaround_budget = adaround_budget
        self._progress = progress
        self._prepared: dict[tuple[Any, ...], tuple[Model, dict[str, Any], dict[str, Any], dict[str, float]]] = {}
        # shared by recipes that differ in the weight grid only (TFLite's 8-bit and ONNX's 7-bit weights):
        # equalization does not depend on it, nor do the float layer means bias correction aims at
        self._equalized: dict[bool, tuple[Model, dict[str, Any]]] = {}  # by recipe.new_biases
        self._float_means: dict[tuple[bool, bool], dict[str, Any]] = {}  # by recipe.equalize, recipe.new_biases
        self._bias_free: bool | None = None

    def has_bias_free_layers(self) -> bool:
        """Whether a quantizable layer has a zero or no bias (what ``+no_new_bias`` changes)."""
        if self._bias_free is None:
            from tfopt.quantizing.engine.bias_correction import bias_free_layers

            self._bias_free = bool(bias_free_layers(self.model.graph_def))
        return self._bias_free

    def quantize(self, recipe: Recipe, keep_float: Sequence[str] | None = None) -> tuple[Model, EngineReport]:
        """The fake-quant graph of ``recipe``, and what was done to make it.

        ``keep_float`` (TF node names; default: the engine's own) names the layers left float. Weight
        transforms that measure rounding (bias correction, AdaRound) leave those layers alone, so a
        different set is a different transform; statistics cover every tensor that can take a range,
        so sets that share the transforms share one collection.
        """
        from tfopt.quantizing.engine.fake_quant import insert_fake_quant
        from tfopt.quantizing.engine.kernel_ranges import INPUT, fixed_output_ranges, float_outputs
        from tfopt.quantizing.engine.loops import loop_skips
        from tfopt.quantizing.engine.placement import kept_nodes
        from tfopt.quantizing.engine.ranges import compute_range
        from tfopt.quantizing.engine.shared_scales import share_concat_ranges

        kept = list(self.keep_float if keep_float is None else keep_float)
        transformed, stats, reports, seconds = self._prepare(recipe, frozenset(kept_nodes(self.model, kept)))
        start = time.perf_counter()
        ranges = {tensor: compute_range(s, recipe.method) for tensor, s in stats.items()}
        ranges.update(fixed_output_ranges(transformed, recipe.fixed_ranges, ranges))  # (then a concat unites them)
        ranges = share_concat_ranges(transformed, ranges, [op for op, r in recipe.fixed_ranges if r == INPUT])
        unranged = float_outputs(transformed, recipe.float_outputs)
        quantized = insert_fake_quant(transformed, ranges, per_channel=recipe.per_channel, keep_float=kept,
                                      weight_levels=recipe.weight_levels, unranged=unranged)
        skips = loop_skips(transformed) + [f"{tensor}: no range, a graph output its target computes in float"
                                           for tensor in unranged]
        report = EngineReport(str(recipe), dict(reports), ranges, kept,
                              {**seconds, "ranges+fake_quant": time.perf_counter() - start}, skips)
        return quantized, report

    def _prepare(self, recipe: Recipe,
                 kept: frozenset[str]) -> tuple[Model, dict[str, Any], dict[str, Any], dict[str, float]]:
        measured = recipe.bias_correction or recipe.adaround  # transforms that depend on what is kept
        key = (recipe.transforms, kept if measured else frozenset())
        if key in self._prepared:
            return self._prepared[key]
        from tfopt.quantizing.engine.fake_quant import activation_tensors
        from tfopt.quantizing.engine.statistics import collect

        model, reports, seconds = self.model, {}, {}
        if recipe.equalize:
            from tfopt.quantizing.engine.equalize import equalize

            self._say("equalizing weights (cross-layer equalization)")
            start = time.perf_counter()
            if recipe.new_biases not in self._equalized:
                equalized_model, equalized = equalize(model, samples=self._fed, new_biases=recipe.new_biases)
                self._equalized[recipe.new_biases] = (equalized_model, equalized.as_dict())
            model, reports["equalize"] = self._equalized[recipe.new_biases]
            seconds["equalize"] = time.perf_counter() - start
        if recipe.adaround:
            from tfopt.quantizing.engine.adaround import adaround, find_layers

            self._say("learning weight rounding (AdaRound)")
            start = time.perf_counter()
            chosen = [layer.node.name for layer in find_layers(model.graph_def)[0] if layer.node.name not in kept]
            model, rounded = adaround(model, self.samples, per_channel=recipe.per_channel, bits=recipe.weight_bits,
                                      time_budget=self.adaround_budget, progress=self._progress, layers=chosen)
            reports["adaround"] = {"done": rounded.done, "kept_float": rounded.kept_float,
                                   "layers": [{k: v for k, v in dataclasses.asdict(layer).items() if k != "seconds"}
                                              for layer in rounded.layers],
                                   "skips": [str(s) for s in rounded.skips]}
            seconds["adaround"] = time.perf_counter() - start
        if recipe.bias_correction:
            from tfopt.quantizing.engine.bias_correction import bias_correct

            self._say("correcting biases for weight rounding")
            start = time.perf_counter()
            # AdaRound's float weights depend on the grid: then the float means are its own
            means = (self._float_means.setdefault((recipe.equalize, recipe.new_biases), {})
                     if not recipe.adaround else None)
            model, corrected = bias_correct(model, self._fed, per_channel=recipe.per_channel,
                                            levels=recipe.weight_levels, skip=kept, float_means=means,
                                            new_biases=recipe.new_biases)
            reports["bias_correction"], seconds["bias_correction"] = corrected.as_dict(), time.perf_counter() - start
        self._say("collecting activation statistics")
        start = time.perf_counter()
        stats = collect(model, self._fed, activation_tensors(model), batch_size=self._batch_rows,
                        progress=self._progress)
        seconds["statistics"] = time.perf_counter() - start
        self._prepared[key] = (model, stats, reports, seconds)
        return self._prepared[key]

    def _say(self, event: Any) -> None:
        if self._progress is not None:
            self._progress(event)


def _whole_batches(model: Model, samples: Mapping[str, Any]) -> tuple[dict[str, Any], Any, int]:
    """The calibration samples in whole batches the graph takes (towers, a fixed batch:
    :mod:`tfopt.verification.data_batches`; the last completed with the first rows), what each step
    is fed (the samples, or their batches one by one when the batch is fixed), and the statistics'
    rows a run (32, rounded down to whole batches)."""
    from tfopt.runtimes.tensorflow import GraphRunner
    from tfopt.verification.data_batches import batch_unit, sample_axes, split_batches, whole_batches

    def run(feeds: Mapping[str, Any]) -> Any:  # only a graph that splits its batch is probed
        runner = GraphRunner(model.replace(reference=None))
        try:
            return runner(feeds)
        finally:
            runner.close()

    axes = sample_axes(samples, model.inputs)
    unit = batch_unit(run, model.inputs, model.graph_def, axes=axes)
    if unit.rows == 1:  # any batch (or a fixed one of 1, which sample_batches feeds row by row): as given
        return dict(samples), samples, 32
    whole, _ = whole_batches(samples, unit.rows, axes=axes)
    if not unit.exact:
        return whole, whole, max(unit.rows, 32 // unit.rows * unit.rows)
    return whole, split_batches(whole, unit.rows, axes), unit.rows


def quantize_model(model: Model, samples: Any, recipe: Recipe | str = Recipe(), *, keep_float: Sequence[str] = (),
                   adaround_budget: float | None = None,
                   progress: Callable[[Any], None] | None = None) -> tuple[Model, EngineReport]:
    """``model`` with fake-quant ops by ``recipe`` (a :class:`Recipe` or its text); see :class:`Engine`."""
    if isinstance(recipe, str):
        recipe = Recipe.parse(recipe)
    return Engine(model, samples, keep_float=keep_float, adaround_budget=adaround_budget,
                  progress=progress).quantize(recipe)
