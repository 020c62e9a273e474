"""Post-training weight clustering and magnitude pruning of a trained Keras 2 model, through TFMOT.

Clustering (``cluster_weights`` + ``strip_clustering``) snaps each layer's kernel to N shared
values (centroids: k-means++, linear, density or random initialised). Pruning
(``prune_low_magnitude`` with ``ConstantSparsity(s)`` + ``strip_pruning``) sets the fraction ``s``
of each kernel's smallest-magnitude weights to zero. Both are applied to a *copy* (TFMOT's
wrappers rebind the wrapped layer's kernel, so the original model stays the baseline the report
measures against). With both, pruning runs first and clustering preserves its zeros.

Without ``finetune_data`` this is purely post-training: pruning's masks are computed by one
TFMOT update step at learning rate 0 (no weight moves except to zero). With it, each stage
trains ``finetune_epochs`` epochs (Adam; 1e-3 while pruning, as TFMOT's pruning guide, and 1e-4
while clustering, which must not move the centroids far), which is how TFMOT recovers accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.errors import OptionError


@dataclass(frozen=True)
class Compression:
    cluster: int | None = None
    cluster_init: str = "kmeans++"
    prune: float | None = None
    exclude: tuple[str, ...] = field(default_factory=tuple)
    finetune_data: str | None = None
    finetune_epochs: int = 2

    @property
    def active(self) -> bool:
        return self.cluster is not None or self.prune is not None

    def __post_init__(self) -> None:
        """Checked as it is made, by the options' own rules (:meth:`tfopt.options.CompressOptions.check`;
        ``--finetune-data``'s file is read, and checked, by :func:`compress_keras`)."""
        from tfopt.options import CompressOptions

        CompressOptions(cluster=self.cluster, cluster_init=self.cluster_init, prune=self.prune,
                        finetune_epochs=self.finetune_epochs).check()
        if not self.active and (self.exclude or self.finetune_data):
            raise OptionError("--exclude/--finetune-data apply to --cluster or --prune; pass one of them")


@dataclass(frozen=True)
class Compressed:
    """What a compressed Keras model keeps alive (``Model.keepalive``): TFMOT's copy, and the
    original, whose kernels are what post-training clustering approximates (``cluster_weights``
    snaps the folded *original* kernel, not TFMOT's, so the two errors do not add up)."""

    model: Any
    original: Any

    def float_kernels(self, layer: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(original, compressed)`` weight pairs of ``layer``, position for position (none if absent)."""
        by_name = {x.name: x for x in self.original.layers}
        work = {x.name: x for x in self.model.layers}
        if layer not in by_name or layer not in work:
            return []
        return [(a, b) for a, b in zip(by_name[layer].get_weights(), work[layer].get_weights()) if a.shape == b.shape]


def compression(cluster: int | None = None, cluster_init: str = "kmeans++", prune: float | None = None,
                exclude: Any = (), finetune_data: str | None = None, finetune_epochs: int = 2) -> Compression | None:
    """The validated :class:`Compression` the convert options ask for, or ``None`` when they ask for none."""
    if cluster is None and prune is None and not exclude:
        return None  # --finetune-data alone is int8's quantization-aware fine-tune (tfopt.quantizing.qat.finetune)
    return Compression(cluster, cluster_init, prune, tuple(exclude), finetune_data, finetune_epochs)


def compress_keras(model: Any, options: Compression) -> tuple[Any, dict[str, Any]]:
    """A compressed copy of the tf-keras ``model`` and what was done to each layer."""
    import tf_keras

    from tfopt._tf import tfmot as load_tfmot

    tfmot = load_tfmot()

    names = [layer.name for layer in model.layers]
    unknown = [n for n in options.exclude if n not in names]
    if unknown:
        from tfopt.errors import did_you_mean

        raise OptionError(f"--exclude {unknown[0]}: no such layer.{did_you_mean(unknown[0], names)} "
                          f"Layers: {', '.join(names)}")
    data = _finetune_arrays(model, options.finetune_data) if options.finetune_data else None  # read once, here
    work = _copy(model, tf_keras)
    layers: dict[str, dict[str, Any]] = {}
    if options.prune is not None:
        schedule = tfmot.sparsity.keras.ConstantSparsity(options.prune, begin_step=0, frequency=1)
        wrapped = _wrap(work, tf_keras, options.exclude, layers, "pruned",
                        lambda layer: tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule))
        _train(wrapped, tf_keras, data, options.finetune_epochs, [tfmot.sparsity.keras.UpdatePruningStep()], 1e-3)
        work = tfmot.sparsity.keras.strip_pruning(wrapped)
    if options.cluster is not None:
        init = getattr(tfmot.clustering.keras.CentroidInitialization,
                       {"kmeans++": "KMEANS_PLUS_PLUS"}.get(options.cluster_init, options.cluster_init.upper()))
        cluster = tfmot.clustering.keras.cluster_weights
        extra: dict[str, Any] = {}
        if options.prune is not None:  # keep the zeros pruning made: sparsity-preserving clustering
            from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster as exp

            cluster, extra = exp.cluster_weights, {"preserve_sparsity": True}
        wrapped = _wrap(work, tf_keras, options.exclude, layers, "clustered",
                        lambda layer: cluster(layer, number_of_clusters=options.cluster,
                                              cluster_centroids_init=init, **extra))
        if data is not None:
            _train(wrapped, tf_keras, data, options.finetune_epochs, [], 1e-4)
        work = tfmot.clustering.keras.strip_clustering(wrapped)
    _measure(work, layers, options)
    report = {
        "cluster": options.cluster, "cluster_init": options.cluster_init if options.cluster else None,
        "prune": options.prune, "excluded": list(options.exclude),
        "finetuned": bool(data is not None), "finetune_epochs": options.finetune_epochs if data is not None else 0,
        "post_training_only": data is None,
        "layers": [{"layer": name, **facts} for name, facts in layers.items()],
    }
    return work, report


def _measure(model: Any, layers: dict[str, dict[str, Any]], options: Compression) -> None:
    """Each touched layer's kernel (its largest weight) as it came out: unique values and zeros.
    TFMOT wraps some layers without touching their weights (BatchNormalization): say so."""
    by_name = {layer.name: layer for layer in model.layers}
    for name, entry in layers.items():
        weights = by_name[name].get_weights() if name in by_name else []
        if not weights:
            continue
        kernel = max(weights, key=lambda w: w.size)
        entry["unique"] = len(np.unique(kernel))
        if options.cluster is not None:  # which kernels hold N values (a SeparableConv2D's pointwise, not its
            # depthwise): the ones cluster_weights snaps again after BatchNorm folding
            entry["clustered_shapes"] = [list(w.shape) for w in weights
                                         if w.ndim >= 2 and len(np.unique(w)) <= options.cluster]
        entry["sparsity"] = round(float(np.mean(kernel == 0)), 4)
        done = [a for a in entry["actions"]
                if (a == "pruned" and entry["sparsity"] >= 0.9 * (options.prune or 0)) or
                (a == "clustered" and entry["unique"] <= (options.cluster or 0))]
        if entry["actions"] and not done:
            entry["left_alone"] = f"TFMOT has nothing to {' or '.join(a[:-2] for a in entry['actions'])} in " \
                                  f"{type(by_name[name]).__name__}"
        entry["actions"] = done


def _copy(model: Any, tf_keras: Any) -> Any:
    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _wrap(model: Any, tf_keras: Any, exclude: tuple[str, ...], layers: dict[str, dict[str, Any]], action: str,
          wrap: Any) -> Any:
    """Clone ``model`` (a working copy: its layers are reused) with ``wrap`` applied to every layer
    that has weights, except ``exclude``; layers TFMOT refuses are left alone, with its reason."""

    def clone(layer: Any) -> Any:
        if not layer.weights:
            return layer
        entry = layers.setdefault(layer.name, {"actions": [], "left_alone": None})
        if layer.name in exclude:
            entry["left_alone"] = "excluded (--exclude)"
            return layer
        try:
            wrapped = wrap(layer)
        except (ValueError, TypeError, AttributeError) as exc:
            entry["left_alone"] = f"TFMOT cannot handle {type(layer).__name__}: {str(exc).splitlines()[0][:160]}"
            return layer
        entry["actions"].append(action)
        return wrapped

    return tf_keras.models.clone_model(model, clone_function=clone)


def _train(model: Any, tf_keras: Any, data: tuple[list[np.ndarray], np.ndarray] | None, epochs: int,
           callbacks: list[Any], learning_rate: float) -> None:
    """Fine-tune on ``data``; without it, one step at learning rate 0 (TFMOT's pruning callback
    computes the masks then; no weight changes)."""
    if data is None:
        x = [np.random.default_rng(0).standard_normal((32, *[d or 8 for d in i.shape[1:]])).astype(np.float32)
             for i in model.inputs]
        y = model.predict(x if len(x) > 1 else x[0], verbose=0)
        model.compile(optimizer=tf_keras.optimizers.SGD(0.0), loss="mse")
        model.fit(x if len(x) > 1 else x[0], y, epochs=1, batch_size=32, verbose=0, callbacks=callbacks)
        return
    x, labels = data
    probe = np.asarray(model.predict([v[:16] for v in x] if len(x) > 1 else x[0][:16], verbose=0))
    if np.issubdtype(labels.dtype, np.integer):
        is_probability = probe.min() >= 0 and np.allclose(probe.sum(-1), 1, atol=1e-3)
        loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not is_probability)
    else:
        loss = "mse"
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    model.fit(x if len(x) > 1 else x[0], labels, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)


def _finetune_arrays(model: Any, path: str) -> tuple[list[np.ndarray], np.ndarray]:
    """``--finetune-data``'s arrays in the Keras model's input order, and its labels: read and checked
    (names, dtypes, shapes, NaN/Inf) by the one reader, :func:`tfopt.verification.input_data.read_labeled`."""
    from tfopt.graph import TensorSpec
    from tfopt.verification.input_data import read_labeled

    specs = [TensorSpec(i.name.split(":")[0], i.name, i.dtype.name if hasattr(i.dtype, "name") else str(i.dtype),
                        tuple(i.shape)) for i in model.inputs]
    data = read_labeled(path, specs, option="--finetune-data")
    return [data.inputs[s.name] for s in specs], data.labels
