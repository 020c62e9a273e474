"""Which int8 artifacts tfopt's engine builds in ``tfopt convert``, and the recipe each one gets.

``--quantizer tfopt`` (the default) quantizes once, in the TF graph (:mod:`.quantize`): every int8
artifact converts the same fake-quant graph, so TFLite, ONNX and OpenVINO execute the same
decisions. ``--quantizer native`` is each converter's own post-training quantization (the TFLite
converter, ONNX Runtime's ``quantize_static``, NNCF), kept for comparison. The native path also
builds what the engine does not decide: int16x8 and dynamic precisions, and OpenVINO under
``--accuracy-control`` (NNCF's own search).

``--auto-keep-float DROP`` ranks the engine's quantized groups (each quantized alone, in TensorFlow)
and keeps the worst in float until every target's drop is within ``DROP`` points
(:mod:`.sensitivity`): the same float layers in every target.

``--int8-recipe auto`` builds each candidate of :data:`CANDIDATES` per target, one at a time, and
measures it in its real runtime: its drop d (top-1 points lost against the float model on the eval
data; without labels, 100 − its top-1 agreement with the float model on the calibration data) and
its latency L (median of :data:`LATENCY_RUNS` batch-1 calls after 3 warm-ups, with the runtime's
threads pinned to ``--threads``, default every core). Candidates share the statistics (:class:`~.quantize.Engine`). Of the candidates
P that pass the ``--fail-if`` gates, :func:`choose` keeps (i is a candidate's place in
:data:`CANDIDATES`, simplest first; s its score, :func:`score_of`)::

    B  = the --fail-if accuracy_drop gate's value for this target when given, else 0.5 points
         (DROP_BOUND; 0 when the drop is not in top-1 points: MAE, a --metric score)
    d* = min_{i in P} d_i
    E  = {i in P : d_i <= max(B, d*)}         # within the bound; if none is, the most accurate
    T  = {i in E : L_i <= 1.05 * min_{j in E} L_j}   # within measurement noise of the fastest
    kept = argmax_{i in T} (s_i, -i)           # a tie on speed: the more accurate, then the simpler

A model without classes and without labels has no drop in points: E is the candidates of the
best score (the most accurate), and speed only breaks exact ties.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.quantizing.engine.quantize import Engine, Recipe

DEFAULT_RECIPE = "mse+equalize+bias_correction"
QUANTIZERS = ("tfopt", "native")
DROP_BOUND = 0.5  # top-1 points a faster candidate may lose against float (no --fail-if drop gate)
LATENCY_NOISE = 0.05  # latencies within 5 % of the fastest are a tie: medians of a shared CPU move that much
LATENCY_RUNS = 20  # timed calls per candidate (the median is kept)
# Simplest first: on a tie a later candidate loses.
CANDIDATES = tuple(Recipe.parse(t) for t in (
    "minmax", "percentile", "entropy", "mse", "minmax+equalize", "mse+equalize", "mse+bias_correction",
    "mse+equalize+bias_correction", "entropy+equalize+bias_correction", "percentile+equalize+bias_correction"))


def engine_builds(quantize: Any, target: str, precision: str, qat: bool) -> bool:
    """Whether the engine builds ``target``'s ``precision`` artifact under ``quantize`` (QuantizeOptions):
    not one whose converter runs its own search under ``--accuracy-control`` (the record's ``accuracy_control``)."""
    from tfopt.targets import TABLE

    if precision != "int8" or qat or quantize.quantizer != "tfopt":
        return False
    return not (quantize.accuracy_control is not None and precision in TABLE[target].accuracy_control)


def base_recipe(quantize: Any) -> Recipe:
    """The recipe ``--int8-recipe``, ``--calibration-method`` and ``--per-tensor`` name together."""
    text = quantize.int8_recipe if quantize.int8_recipe not in (None, "auto") else DEFAULT_RECIPE
    recipe = Recipe.parse(text)
    if quantize.calibration_method:
        from tfopt.quantizing.engine.ranges import parse_method

        recipe = replace(recipe, method=str(parse_method(quantize.calibration_method)))
    return replace(recipe, per_channel=recipe.per_channel and not quantize.per_tensor)


class Int8Plan:
    """The engine's models for one conversion: one recipe for every target, or one per target (auto).

    Args:
        portable: the float graph the targets read.
        samples: finite calibration samples.
        quantize: the :class:`tfopt.options.QuantizeOptions`.
        evaluate: ``evaluate(target, model) -> (score, row)`` for recipe search: builds ``target``'s
            int8 artifact of ``model`` in a scratch directory and measures it (higher is better;
            ``row`` is the report row the gates read, or ``None`` when a gate failed).
        measure: ``measure(target, model) -> row`` (the report row of ``target``'s int8 artifact of
            ``model``), for ``--auto-keep-float``'s check of every target.
        targets: the targets whose int8 the engine builds (what ``--auto-keep-float`` checks).
        labels: ``{"inputs": ..., "labels": ...}`` (the eval data) for ``--auto-keep-float``'s drop.
        gates: the ``--fail-if`` gates (:class:`tfopt.report.gates.Gate`): an ``accuracy_drop`` gate is
            the recipe search's drop bound (:func:`choose`).
    """

    def __init__(self, portable: Model, samples: Any, quantize: Any, *,
                 evaluate: Callable[[str, Model], tuple[tuple[float, float], dict[str, Any] | None]] | None = None,
                 measure: Callable[[str, Model], dict[str, Any]] | None = None, targets: Sequence[str] = (),
                 labels: dict[str, Any] | None = None, progress: Callable[[Any], None] | None = None,
                 gates: Sequence[Any] = ()):
        self.quantize = quantize
        self.recipe = base_recipe(quantize)
        self.engine = Engine(portable, samples, keep_float=quantize.keep_float,
                             adaround_budget=quantize.adaround_budget, progress=progress)
        self._evaluate = evaluate
        self._models: dict[str, tuple[Model, Any]] = {}
        self._keys: dict[str, str] = {}
        self.searches: dict[str, list[dict[str, Any]]] = {}
        self.why: dict[str, str] = {}  # per searched target: why its recipe was kept (:func:`choose`)
        self.gates = gates
        self._say = progress or (lambda event: None)
        self.ranking: list[dict[str, Any]] = []
        self.auto_keep: dict[str, Any] | None = None
        if quantize.auto_keep_float is not None:
            self._choose_float(measure, targets, labels)

    def _choose_float(self, measure: Callable[[str, Model], dict[str, Any]] | None, targets: Sequence[str],
                      labels: dict[str, Any] | None) -> None:
        """``--auto-keep-float``: rank the groups, keep the worst in float (:mod:`.sensitivity`)."""
        from tfopt.quantizing.engine.placement import kept_nodes
        from tfopt.quantizing.engine.sensitivity import choose_float_layers, groups, rank_groups

        user = [name for name, _ in groups(self.engine.model)
                if name in kept_nodes(self.engine.model, self.quantize.keep_float)]
        self._say("tfopt int8: per-layer quantization error")
        self.ranking = rank_groups(self.engine, self.recipe, kept=user, say=self._say)

        def drops(kept: list[str]) -> dict[str, float]:
            out = {}
            for target in targets:
                model, _ = self.engine.quantize(self.recipe_for(target), keep_float=kept)
                out[target] = drop_of(measure(target, model)) if measure is not None else float("nan")
            return out

        kept, steps = choose_float_layers(self.engine, self.recipe, self.quantize.auto_keep_float, self.ranking,
                                          kept=user, labels=labels, measure=drops if measure and targets else None,
                                          say=self._say)
        self.engine.keep_float = kept
        self.auto_keep = {"bound": self.quantize.auto_keep_float, "kept": kept, "steps": steps}

    def recipe_for(self, target: str) -> Recipe:
        """The recipe for ``target``: the chosen one, with weights no wider than the target takes
        (:attr:`tfopt.targets.Target.engine_weight_bits`), and bias correction creating no bias on a
        layer without one where a new bias costs the target's kernels
        (:attr:`tfopt.targets.Target.engine_new_biases`), and the output ranges the target's kernels
        decide (``engine_fixed_ranges``, ``engine_float_ops``): each only when the model has such a
        layer or op, so targets that differ in nothing else share one graph."""
        return self._fitted(self.recipe, target)

    def _fitted(self, recipe: Recipe, target: str) -> Recipe:
        from tfopt.targets import TABLE

        record = TABLE[target]
        recipe = replace(recipe, weight_bits=min(recipe.weight_bits, record.engine_weight_bits))
        if ((recipe.bias_correction or recipe.equalize) and not record.engine_new_biases
                and self.engine.has_bias_free_layers()):
            recipe = replace(recipe, new_biases=False)
        from tfopt.quantizing.engine.kernel_ranges import fixed_output_ranges, float_outputs

        if fixed_output_ranges(self.engine.model, record.engine_fixed_ranges):  # (only then: graphs stay shared)
            recipe = replace(recipe, fixed_ranges=record.engine_fixed_ranges)
        if float_outputs(self.engine.model, record.engine_float_ops):
            recipe = replace(recipe, float_outputs=record.engine_float_ops)
        return recipe

    def model_for(self, target: str) -> Model:
        """The fake-quant graph ``target``'s int8 artifact converts (targets with the same recipe share it)."""
        key = target if self.quantize.int8_recipe == "auto" else str(self.recipe_for(target))
        if key not in self._models:
            self._models[key] = self._search(target) if key == target else self.engine.quantize(self.recipe_for(target))
        self._keys[target] = key  # only once built: a target whose build raised has no recipe to report
        return self._models[key][0]

    def kept_float(self) -> list[str]:
        """The layers every target keeps in float (``--keep-float``, and what ``--auto-keep-float`` chose)."""
        return list(self.engine.keep_float)

    def chosen(self, target: str) -> str:
        """The recipe ``target``'s int8 artifact was built with (after :meth:`model_for`)."""
        return str(self._models[self._keys[target]][1].recipe)

    def record(self) -> dict[str, Any]:
        """For ``manifest.json``: the recipe (per target when searched), what each step did, the candidates."""
        # no timings: manifest.json is deterministic (the stage times are in the report)
        reports = {key: {k: v for k, v in report.as_dict().items() if k != "seconds"}
                   for key, (_, report) in self._models.items()}
        # with --int8-recipe auto the choice weighs measured latency: the candidates carry it
        return {"quantizer": "tfopt", "recipe": {t: self.chosen(t) for t in self._keys}, "engine": reports,
                "candidates": self.searches, **({"why": self.why} if self.why else {}),
                **({"auto_keep_float": self.auto_keep} if self.auto_keep else {})}

    def _search(self, target: str) -> tuple[Model, Any]:
        """Measure every candidate for ``target`` (one at a time), keep :func:`choose`'s pick."""
        from tfopt.terminal.progress import Step

        if self._evaluate is None:
            raise ValueError("recipe search needs an evaluate function")
        base = self.recipe_for(target)
        tried: list[dict[str, Any]] = []
        measured: list[Measured] = []
        in_top1 = True  # every passing candidate's drop is in top-1 points
        fitted = [self._fitted(replace(c, per_channel=base.per_channel, weight_bits=base.weight_bits,
                                       new_biases=self.recipe.new_biases or not (c.bias_correction or c.equalize)), target)
                  for c in CANDIDATES]
        for index, candidate in enumerate(fitted):
            self._say(Step(f"{target} int8 recipes", index + 1, len(CANDIDATES)))
            model, _ = self.engine.quantize(candidate)
            score, row = self._evaluate(target, model)
            points, top1 = measured_drop(row, has_classes(model)) if row is not None else (None, False)
            in_top1 &= top1 or row is None
            latency = (row or {}).get("latency_ms", {}).get("median")
            measured.append(Measured(str(candidate), score, points, latency, row is not None))
            tried.append({"recipe": str(candidate), "score": score[0], "passes_gates": row is not None,
                          **({k: row.get(k) for k in ("bytes", "accuracy_drop")} if row else {}),
                          "top1_agreement": (row or {}).get("fidelity", {}).get("top1_agreement"),
                          "drop": points, "latency_ms": latency})
        bound = gate_bound(self.gates, target)
        choice = choose(measured, bound if bound is not None else DROP_BOUND if in_top1 else 0.0)
        recipe = fitted[choice[0]] if choice else base
        for entry in tried:
            entry["kept"] = entry["recipe"] == str(recipe)
        self.searches[target] = tried
        self.why[target] = choice[1] if choice else f"no candidate passed the gates: {base} (the base recipe)"
        return self.engine.quantize(recipe)  # again, from the shared statistics: cheaper than keeping ten graphs


@dataclass(frozen=True)
class Measured:
    """One candidate as :func:`choose` sees it.

    Attributes:
        recipe: the candidate's recipe text.
        score: :func:`score_of` (higher is better).
        drop: the points it loses against float (:func:`measured_drop`), None when not in points.
        latency_ms: the median batch-1 latency in its runtime (None: not measured).
        passes: it passed the ``--fail-if`` gates.
    """

    recipe: str
    score: tuple[float, float]
    drop: float | None
    latency_ms: float | None
    passes: bool


def choose(measured: Sequence[Measured], bound: float, *,
           noise: float = LATENCY_NOISE) -> tuple[int, str] | None:
    """The candidate to keep (its index into ``measured``, simplest first) and why; None when none
    passed the gates. The rule is the module docstring's: within ``bound`` of float (or the most
    accurate when none is), the fastest; latencies within ``noise`` of the fastest tie, and a tie
    goes to the higher score, then the simpler. Without a drop for every passing candidate (no
    classes, no labels; or NaN): the candidates of the best score, the fastest of them."""
    passing = [i for i, m in enumerate(measured) if m.passes]
    if not passing:
        return None
    drops = [measured[i].drop for i in passing]
    if all(d is not None and np.isfinite(d) for d in drops):
        best_drop = min(d for d in drops if d is not None)
        limit = max(bound, best_drop)
        eligible = [i for i in passing if (measured[i].drop or 0.0) <= limit]
        within = (f"within {bound:g} points of float" if best_drop <= bound else
                  f"with the best drop, {best_drop:.2f} points (none is within {bound:g} of float)")
    else:
        top = max(measured[i].score for i in passing)
        eligible = [i for i in passing if measured[i].score == top]
        within = "with the best score (the drop is not in top-1 points)"

    def latency(i: int) -> float:
        value = measured[i].latency_ms
        return float(value) if value is not None and np.isfinite(value) else np.inf

    fastest = min(latency(i) for i in eligible)
    tied = [i for i in eligible if latency(i) <= (1 + noise) * fastest]
    kept = max(tied, key=lambda i: (measured[i].score, -i))
    ms = f"{latency(kept):.3g} ms" if np.isfinite(latency(kept)) else "latency not measured"
    return kept, (f"{measured[kept].recipe}: the fastest ({ms}) of the {len(eligible)} candidate(s) {within}"
                  + (f"; {len(tied)} within {100 * noise:g} % of the fastest, the most accurate then the simplest"
                     if len(tied) > 1 else ""))


def measured_drop(row: dict[str, Any], classes: bool) -> tuple[float | None, bool]:
    """:func:`drop_of` where it is a drop, and whether it is in top-1 points. With labels: the accuracy
    drop (top-1 points; a --metric score's or the MAE's in their own unit); without: the top-1
    disagreement with float when the model has classes (points), else None (agreement is 100 by
    definition for an output without a class axis)."""
    accuracy = row.get("accuracy")
    if row.get("accuracy_drop") is not None:
        return drop_of(row), "top1" in (accuracy or {})
    return (drop_of(row), True) if classes and accuracy is None else (None, False)


def has_classes(model: Model) -> bool:
    """Some output has a class axis (rank >= 2, last dimension > 1): top-1 agreement means something."""
    return any(s.shape is not None and len(s.shape) >= 2 and (s.shape[-1] or 0) > 1 for s in model.outputs)


def gate_bound(gates: Sequence[Any], target: str) -> float | None:
    """The drop the user accepts for ``target``'s int8: the smallest ``accuracy_drop>X`` (or ``>=``)
    ``--fail-if`` gate that applies to it, else None."""
    row = {"format": target, "precision": "int8"}
    values = [g.value for g in gates if g.metric == "accuracy_drop" and g.op in (">", ">=") and g.matches(row)]
    return min(values) if values else None


def scratch_measure(build: Callable[[str, Model, str], str],
                    measure_row: Callable[[str, str, str], dict[str, Any]]) -> Callable[[str, Model], dict[str, Any]]:
    """``measure(target, model) -> row``: ``build(target, model, directory)`` writes the artifact
    into a scratch directory, ``measure_row(target, directory, relative path)`` gives its report
    row (:func:`tfopt.report.measure.measure`)."""

    def measure(target: str, model: Model) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="tfopt-int8-") as scratch:
            path = build(target, model, scratch)
            return measure_row(target, scratch, os.path.relpath(path, scratch))

    return measure


def scratch_evaluator(measure: Callable[[str, Model], dict[str, Any]],
                      gates: Sequence[Any]) -> Callable[[str, Model], Any]:
    """``evaluate(target, model)`` for :class:`Int8Plan`'s recipe search: the :func:`scratch_measure`
    row, scored (:func:`score_of`); the gates decide pass or fail."""
    from tfopt.report.gates import evaluate_gates

    def evaluate(target: str, model: Model) -> tuple[tuple[float, float], dict[str, Any] | None]:
        row = measure(target, model)
        failed = any(r["failed"] for r in evaluate_gates({"artifacts": [row]}, gates))
        return score_of(row), (None if failed else row)

    return evaluate


def drop_of(row: dict[str, Any]) -> float:
    """Top-1 points a report row loses: its accuracy drop with labels, else its disagreement with
    the float model (100 − top-1 agreement); NaN when neither was measured."""
    if row.get("accuracy_drop") is not None:
        return float(row["accuracy_drop"])
    agreement = (row.get("fidelity") or {}).get("top1_agreement")
    return 100.0 - float(agreement) if agreement is not None else float("nan")


def score_of(row: dict[str, Any]) -> tuple[float, float]:
    """Higher is better: minus the accuracy drop with labels (top-1 points, the --metric score's drop,
    or the MAE increase), else top-1 agreement with the float model; then the negative relative
    error (what separates candidates that agree alike, and models with no classes). NaN scores lowest."""
    fidelity = row.get("fidelity") or {}

    def finite(value: Any) -> float:
        return float(value) if value is not None and np.isfinite(value) else -np.inf

    drop = row.get("accuracy_drop")
    primary = -drop if drop is not None else fidelity.get("top1_agreement")
    rel = fidelity.get("rel_err")
    return finite(primary), -finite(rel) if rel is not None and np.isfinite(rel) else -np.inf
