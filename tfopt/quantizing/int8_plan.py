"""Which int8 artifacts tfopt's engine builds in ``tfopt convert``, and the recipe each one gets.

``--quantizer tfopt`` (the default) quantizes once, in the TF graph (:mod:`.engine`): every int8
artifact converts the same fake-quant graph, so TFLite, ONNX and OpenVINO execute the same
decisions. ``--quantizer native`` is each converter's own post-training quantization (the TFLite
converter, ONNX Runtime's ``quantize_static``, NNCF), kept for comparison. The native path also
builds what the engine does not decide: int16x8 and dynamic precisions, and OpenVINO under
``--accuracy-control`` (NNCF's own search).

``--auto-keep-float DROP`` ranks the engine's quantized groups (each quantized alone, in TensorFlow)
and keeps the worst in float until every target's drop is within ``DROP`` points
(:mod:`.sensitivity`): the same float layers in every target.

``--int8-recipe auto`` tries each candidate of :data:`CANDIDATES` per target, in its real runtime,
on the eval data (accuracy with labels; otherwise top-1 agreement with the float model on the
calibration data), and keeps the best that passes the ``--fail-if`` gates; ties go to the
earlier (simpler) candidate. Candidates share the statistics (:class:`~.engine.Engine`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.quantizing.engine import Engine, Recipe

DEFAULT_RECIPE = "mse+equalize+bias_correction"
QUANTIZERS = ("tfopt", "native")
# Simplest first: a later candidate must do strictly better to be kept.
CANDIDATES = tuple(Recipe.parse(t) for t in (
    "minmax", "percentile", "entropy", "mse", "minmax+equalize", "mse+equalize", "mse+bias_correction",
    "mse+equalize+bias_correction", "entropy+equalize+bias_correction", "percentile+equalize+bias_correction"))


def engine_builds(quantize: Any, target: str, precision: str, qat: bool) -> bool:
    """Whether the engine builds ``target``'s ``precision`` artifact under ``quantize`` (QuantizeOptions)."""
    if precision != "int8" or qat or quantize.quantizer != "tfopt":
        return False
    return not (quantize.accuracy_control is not None and target == "openvino")


def base_recipe(quantize: Any) -> Recipe:
    """The recipe ``--int8-recipe``, ``--calibration-method`` and ``--per-tensor`` name together."""
    text = quantize.int8_recipe if quantize.int8_recipe not in (None, "auto") else DEFAULT_RECIPE
    recipe = Recipe.parse(text)
    if quantize.calibration_method:
        from tfopt.quantizing.ranges import parse_method

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
    """

    def __init__(self, portable: Model, samples: Any, quantize: Any, *,
                 evaluate: Callable[[str, Model], tuple[tuple[float, float], dict[str, Any] | None]] | None = None,
                 measure: Callable[[str, Model], dict[str, Any]] | None = None, targets: Sequence[str] = (),
                 labels: dict[str, Any] | None = None, progress: Callable[[Any], None] | None = None):
        self.quantize = quantize
        self.recipe = base_recipe(quantize)
        self.engine = Engine(portable, samples, keep_float=quantize.keep_float,
                             adaround_budget=quantize.adaround_budget, progress=progress)
        self._evaluate = evaluate
        self._models: dict[str, tuple[Model, Any]] = {}
        self._keys: dict[str, str] = {}
        self.searches: dict[str, list[dict[str, Any]]] = {}
        self._say = progress or (lambda event: None)
        self.ranking: list[dict[str, Any]] = []
        self.auto_keep: dict[str, Any] | None = None
        if quantize.auto_keep_float is not None:
            self._choose_float(measure, targets, labels)

    def _choose_float(self, measure: Callable[[str, Model], dict[str, Any]] | None, targets: Sequence[str],
                      labels: dict[str, Any] | None) -> None:
        """``--auto-keep-float``: rank the groups, keep the worst in float (:mod:`.sensitivity`)."""
        from tfopt.quantizing.placement import kept_nodes
        from tfopt.quantizing.sensitivity import choose_float_layers, groups, rank_groups

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
        (:attr:`tfopt.targets.Target.engine_weight_bits`)."""
        from tfopt.targets import TABLE

        return replace(self.recipe, weight_bits=min(self.recipe.weight_bits, TABLE[target].engine_weight_bits))

    def model_for(self, target: str) -> Model:
        """The fake-quant graph ``target``'s int8 artifact converts (targets with the same recipe share it)."""
        key = target if self.quantize.int8_recipe == "auto" else str(self.recipe_for(target))
        self._keys[target] = key
        if key not in self._models:
            self._models[key] = self._search(target) if key == target else self.engine.quantize(self.recipe_for(target))
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
        return {"quantizer": "tfopt", "recipe": {t: self.chosen(t) for t in self._keys}, "engine": reports,
                "candidates": self.searches, **({"auto_keep_float": self.auto_keep} if self.auto_keep else {})}

    def _search(self, target: str) -> tuple[Model, Any]:
        from tfopt.progress import Step

        if self._evaluate is None:
            raise ValueError("recipe search needs an evaluate function")
        base = self.recipe_for(target)
        tried: list[dict[str, Any]] = []
        best: tuple[tuple[float, float], Model, Any] | None = None
        for index, candidate in enumerate(CANDIDATES):
            candidate = replace(candidate, per_channel=base.per_channel, weight_bits=base.weight_bits)
            self._say(Step(f"{target} int8 recipes", index + 1, len(CANDIDATES)))
            model, report = self.engine.quantize(candidate)
            score, row = self._evaluate(target, model)
            tried.append({"recipe": str(candidate), "score": score[0], "passes_gates": row is not None,
                          **({k: row.get(k) for k in ("bytes", "accuracy_drop")} if row else {}),
                          "top1_agreement": (row or {}).get("fidelity", {}).get("top1_agreement")})
            if row is not None and (best is None or score > best[0]):
                best = (score, model, report)
        kept = best if best is not None else ((0.0, 0.0), *self.engine.quantize(base))
        for entry in tried:
            entry["kept"] = entry["recipe"] == kept[2].recipe
        self.searches[target] = tried
        return kept[1], kept[2]


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
