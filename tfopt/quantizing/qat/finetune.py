"""int8 by a short quantization-aware fine-tune that starts from the engine's ranges
(``tfopt convert model.h5 --quantize int8 --calibration C --finetune-data D [--finetune-epochs E]``).

Post-training quantization fixes the weights and chooses ranges around them; a fine-tune with the
quantization simulated lets the weights move to where rounding hurts least. For a tf_keras (Keras 2)
model::

    engine ranges (its calibration method, on the frozen folded graph; no weight transforms)
      -> quantize_apply wrappers (TFMOT Default8BitQuantizeScheme), ranges set from the engine
         (:mod:`.wrappers`: which graph tensor each quantizer's range comes from)
      -> E epochs of Adam at LEARNING_RATE, batch BATCH_SIZE, BatchNorm statistics frozen
      -> weight ranges reset from the final weights
      -> freeze + optimize (a QAT graph: FakeQuant ops) -> every target's QAT int8 path

Without ``--finetune-data`` nothing here runs (the engine's post-training int8); with ``epochs=0``
(:func:`finetune` only) the QAT model is "init only": its ranges are the engine's, its weights the
trained ones. BatchNorm runs on its moving statistics during the fine-tune (``trainable = False``):
the engine's ranges are of the folded graph, whose BatchNorm is those statistics, and a few epochs
of small batches would only add noise to them. The activation ranges keep learning as TFMOT's
moving averages (decay 0.999), from the engine's values instead of ``[-6, 6]``.

Only for Keras 2: TFMOT wraps tf_keras layers. A Keras 3 model or another format with
``--finetune-data`` and int8 is an :class:`~tfopt.errors.OptionError` (before loading, when the
path says so; after loading otherwise). With ``--cluster``/``--prune``, ``--finetune-data``
fine-tunes the compression as before and int8 is the engine's post-training quantization.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import Model
from tfopt.loaders._keras_files import ARCHIVE, HDF5, keras_kind
from tfopt.quantizing.engine.plan import Int8Plan

LEARNING_RATE = 1e-4  # Adam: small, the model is trained already; only rounding is to be learned
BATCH_SIZE = 32


@dataclass
class FinetuneReport:
    """What the quantization-aware fine-tune did, for ``manifest.json``'s ``int8_engine.qat_finetune``."""

    epochs: int
    samples: int
    learning_rate: float
    accuracy_before: float | None  # the QAT model (engine ranges) before fine-tuning, top-1
    accuracy_after: float | None
    measured_on: str
    quantizers: list[Any] = field(default_factory=list)  # qat_init.QuantizerInit

    def as_dict(self) -> dict[str, Any]:
        sources: dict[str, int] = {}
        for q in self.quantizers:
            sources[q.source] = sources.get(q.source, 0) + 1
        return {"epochs": self.epochs, "samples": self.samples, "learning_rate": self.learning_rate,
                "optimizer": "adam", "batch_size": BATCH_SIZE, "batchnorm": "frozen (moving statistics)",
                "accuracy_before": _round(self.accuracy_before), "after": _round(self.accuracy_after),
                "measured_on": self.measured_on, "range_sources": sources,
                "quantizers": [q.as_dict() for q in self.quantizers]}


def check_options(model: Any, quantize: Any, compress: Any, pairs: Sequence[tuple[str, str]]) -> None:
    """``--finetune-data`` for int8, judged without TensorFlow (``convert_options.check_options``).

    Raises:
        OptionError: no int8 (nor ``--cluster``/``--prune``) to fine-tune; an option the QAT path
            cannot honour; a model that is not Keras 2 as far as its path tells.
    """
    if not compress.finetune_data or compress.cluster is not None or compress.prune is not None:
        return  # no fine-tune, or the compression's own (tfopt.loaders.compressing)
    if not any(p == "int8" for _, p in pairs):
        raise OptionError("--finetune-data fine-tunes --cluster/--prune, or int8 quantization-aware (--quantize int8 "
                          "--calibration C): add one of them")
    conflicts = [("--quantizer native", quantize.quantizer != "tfopt"), ("--int8-recipe auto", quantize.int8_recipe == "auto"),
                 ("--per-tensor", quantize.per_tensor), ("--keep-float", bool(quantize.keep_float)),
                 ("--auto-keep-float", quantize.auto_keep_float is not None)]
    for option, given in conflicts:
        if given:
            raise OptionError(f"{option} with --finetune-data: int8 is then TFMOT's quantization-aware fine-tune "
                              "(Default8BitQuantizeScheme: per-channel conv weights, every layer quantized), which "
                              f"{option} does not apply to; drop {option}, or --finetune-data for post-training int8")
    if isinstance(model, Model):
        keras2_model(model)
    elif isinstance(model, (str, os.PathLike)):
        _check_path(os.fspath(model))


def keras2_model(model: Model) -> Any:
    """The tf_keras model ``model`` was loaded from (its ``keepalive``), or an OptionError saying why not."""
    fmt, flavour = model.provenance.get("format"), model.provenance.get("keras")
    source = model.provenance.get("path") or "the model"
    if fmt != "keras" or flavour != "keras2" or not hasattr(model.keepalive, "layers"):
        what = "a Keras 3 model" if flavour == "keras3" else f"a {fmt or 'loaded'} model, not a Keras 2 one"
        raise OptionError(f"--finetune-data with --quantize int8: {source} is {what}. The quantization-aware "
                          "fine-tune runs through TFMOT, which needs a Keras 2 (tf_keras) model: save it with "
                          "tf_keras (TF_USE_LEGACY_KERAS=1) as .h5, or drop --finetune-data for post-training int8")
    return model.keepalive


def _check_path(path: str) -> None:
    kind = keras_kind(path)  # by the suffix, else by the content (a package's .hd5 or suffix-less file)
    if kind == HDF5:
        return
    keras3 = False
    if kind == ARCHIVE:
        import json

        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json")) if "metadata.json" in archive.namelist() else {}
        keras3 = not str(meta.get("keras_version", "3")).startswith("2")
    if keras3 or kind != ARCHIVE:
        what = "a Keras 3 model" if keras3 else "not a Keras .h5 model"
        raise OptionError(f"--finetune-data with --quantize int8: {path} is {what}. The quantization-aware fine-tune "
                          "runs through TFMOT, which needs a Keras 2 (tf_keras) model: save it with tf_keras "
                          "(TF_USE_LEGACY_KERAS=1) as .h5, or drop --finetune-data for post-training int8")


def finetune(original: Any, portable: Model, ranges: Mapping[str, tuple[float, float]],
             samples: Mapping[str, np.ndarray], data: tuple[dict[str, np.ndarray], np.ndarray] | None = None, *,
             epochs: int = 2, learning_rate: float = LEARNING_RATE,
             evaluate: tuple[dict[str, np.ndarray], np.ndarray] | None = None, seed: int = 0,
             init: str = "engine") -> tuple[Any, FinetuneReport]:
    """A QAT copy of the tf_keras ``original`` with the engine's ranges, fine-tuned on ``data``.

    Args:
        original: the trained float tf_keras model (not changed).
        portable: its frozen, folded graph, which ``ranges`` are of.
        ranges: the engine's activation ranges, ``"node:index"`` -> ``(min, max)``.
        samples: calibration samples ``{input name: array}`` (values matched on, see :mod:`.wrappers`).
        data: ``({input name: array}, labels)``; ``None`` or ``epochs=0``: init only.
        epochs, learning_rate: the fine-tune (Adam, batch :data:`BATCH_SIZE`).
        evaluate: ``(inputs, integer labels)`` to measure top-1 on before and after (default: ``data``).
        seed: shuffles the batches.
        init: ``"engine"``, or ``"tfmot"``: TFMOT's own initial ranges (plain TFMOT QAT, for comparison).

    Returns:
        The QAT tf_keras model and a :class:`FinetuneReport`.
    """
    from tfopt.quantizing.qat.wrappers import initialise, quantize_keras, set_weight_ranges

    qat = quantize_keras(original)
    if init not in ("engine", "tfmot"):
        raise OptionError(f"finetune init={init!r}: 'engine' (the engine's ranges) or 'tfmot' (TFMOT's defaults)")
    inits = initialise(qat, original, portable, ranges, samples) if init == "engine" else []
    names = [s.name for s in portable.inputs]
    measured_on = "eval-data" if evaluate is not None else "finetune-data"
    evaluate = evaluate if evaluate is not None else data
    before = _accuracy(qat, names, evaluate)
    trained = 0
    if data is not None and epochs > 0:
        trained = _fit(qat, names, data, epochs, learning_rate, seed)
        set_weight_ranges(qat)  # the last step moved the weights after their ranges were taken
    after = _accuracy(qat, names, evaluate) if trained else before
    return qat, FinetuneReport(epochs if trained else 0, trained, learning_rate, before, after, measured_on, inits)


def _fit(qat: Any, names: list[str], data: tuple[dict[str, np.ndarray], np.ndarray], epochs: int,
         learning_rate: float, seed: int) -> int:
    """Adam on ``data`` with BatchNorm frozen; the loss from the labels (integers: cross-entropy on
    the model's probabilities or logits, as its outputs look; floats: MSE). Returns the sample count."""
    import tf_keras

    inputs, labels = data
    for layer in qat.layers:
        inner = getattr(layer, "layer", None)  # a QuantizeWrapper's layer
        if isinstance(inner, tf_keras.layers.BatchNormalization):
            inner.trainable = False  # tf_keras: a non-trainable BatchNormalization runs on its moving statistics
    x = [inputs[n] for n in names]
    if np.issubdtype(labels.dtype, np.integer):
        out = qat([v[:16] for v in x] if len(x) > 1 else x[0][:16], training=False)
        probe = np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
        probabilities = bool(probe.min() >= 0 and np.allclose(probe.sum(-1), 1, atol=1e-3))
        loss: Any = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    else:
        loss = "mse"
    qat.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):  # shuffled here, not by Keras: the same seed gives the same batches
        order = rng.permutation(len(labels))
        feed = [v[order] for v in x]
        qat.fit(feed if len(feed) > 1 else feed[0], labels[order], epochs=1, batch_size=BATCH_SIZE, shuffle=False,
                verbose=0)
    return len(labels)


def _accuracy(model: Any, names: list[str], data: tuple[dict[str, np.ndarray], np.ndarray] | None) -> float | None:
    """Top-1 in percent on integer labels; ``None`` without data or for other labels."""
    if data is None or not np.issubdtype(data[1].dtype, np.integer):
        return None
    from tfopt.verification.classes import threshold, top1

    x = [data[0][n] for n in names]
    out = model.predict(x if len(x) > 1 else x[0], batch_size=256, verbose=0)
    first = np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
    return top1(first, data[1], threshold(first))


def load_qat(qat: Any, portable: Model) -> Model:
    """The QAT tf_keras model as a loaded :class:`Model` (its inference call, variables frozen), with
    the float model's input and output names (TFMOT renames the output layer ``quant_<name>``)."""
    from tfopt._tf import tf
    from tfopt.loaders._concrete import model_from_concrete
    from tfopt.loaders.keras import named_outputs

    t = tf()
    input_names, output_names = [s.name for s in portable.inputs], [s.name for s in portable.outputs]
    specs = [t.TensorSpec(i.shape, t.as_dtype(i.dtype), name=n) for i, n in zip(qat.inputs, input_names)]

    @t.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return named_outputs(qat(list(args) if len(args) > 1 else args[0], training=False), output_names)

    def call(feeds: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.numpy() for k, v in serve(*[t.constant(feeds[n]) for n in input_names]).items()}

    provenance = {**portable.provenance, "qat_finetune": True}
    return model_from_concrete(serve.get_concrete_function(), input_names=input_names, call=call,
                               provenance=provenance, keepalive=qat)


def freeze_qat(qat: Any, portable: Model, freeze: Any, optimize: Any, verify_data: Any = None) -> Model:
    """The QAT model's portable graph (FakeQuant ops): :func:`load_qat`, frozen and optimized."""
    from tfopt.conversion.pipeline import run_optimize
    from tfopt.options import LoadOptions

    qat_portable, _, _, _ = run_optimize(load_qat(qat, portable), LoadOptions(), freeze, optimize,
                                         verify_data=verify_data)
    return qat_portable


class QatPlan(Int8Plan):
    """:class:`Int8Plan`'s place in ``convert`` when int8 is the quantization-aware fine-tune: every
    target converts the same QAT graph (through its QAT int8 path); :meth:`record` adds ``qat_finetune``."""

    def __init__(self, base: Int8Plan, model: Model, ranges_report: Any, report: FinetuneReport):
        super().__init__(base.engine.model, base.engine.samples, base.quantize)
        self.engine = base.engine
        self._qat, self._ranges_report, self.report = model, ranges_report, report
        self.label = f"{ranges_report.recipe}+qat_finetune"

    def model_for(self, target: str) -> Model:
        self._keys[target] = target
        return self._qat

    def chosen(self, target: str) -> str:
        return self.label

    def record(self) -> dict[str, Any]:
        ranges = {k: v for k, v in self._ranges_report.as_dict().items() if k != "seconds"}
        return {"quantizer": "tfopt", "recipe": {t: self.label for t in self._keys}, "engine": {"ranges": ranges},
                "candidates": {}, "qat_finetune": self.report.as_dict()}


def qat_plan(base: Int8Plan, options: Any, train: Any, held_out: Any = None, *, verify_data: Any = None,
             progress: Callable[[Any], None] | None = None) -> QatPlan:
    """``convert``'s int8 plan for ``--finetune-data`` (``options``: the :class:`~tfopt.options.ConvertOptions`):
    the engine's ranges on ``base``'s graph and samples, the fine-tuned QAT model, frozen. ``train`` and
    ``held_out`` are the fine-tune and eval data (:class:`tfopt.verification.input_data.LabeledData`,
    read and checked once by ``convert``)."""
    say = progress or (lambda event: None)
    portable = base.engine.model
    original = keras2_model(portable)
    c = options.compress
    recipe = replace(base.recipe, equalize=False, adaround=False, bias_correction=False)
    _, ranges_report = base.engine.quantize(recipe)
    data = (train.inputs, train.labels)
    evaluate = (held_out.inputs, held_out.labels) if held_out is not None else None
    say(f"int8 by quantization-aware fine-tune (TFMOT) from tfopt's {recipe.method} ranges: {c.finetune_epochs} "
        f"epoch(s) on {len(data[1])} samples, Adam at {LEARNING_RATE:g}")
    qat, report = finetune(original, portable, ranges_report.ranges, base.engine.samples, data,
                           epochs=c.finetune_epochs, evaluate=evaluate, seed=options.report.seed)
    if report.accuracy_before is not None:
        say(f"quantization-aware fine-tune: top-1 {report.accuracy_before:.2f}% -> {report.accuracy_after:.2f}% "
            f"(Keras, on the {report.measured_on})")
    return QatPlan(base, freeze_qat(qat, portable, options.freeze, options.optimize, verify_data), ranges_report, report)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
