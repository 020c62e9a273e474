"""Keras files: Keras 3 ``.keras`` and legacy ``.h5``/``.hdf5``, each loaded by the Keras that
wrote it (tf-keras for Keras 2, Keras 3 for an ``.h5`` Keras 3 saved).

Safe mode stays on: a Lambda layer (arbitrary Python) needs ``unsafe=True`` and classes the file
names but Keras does not know need ``custom_objects="package.module"``. Keras 3 enforces safe mode
for ``.keras`` itself; legacy ``.h5`` loading never did, so tfopt checks the stored config first.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfopt._tf import tf
from tfopt._tf import tfmot as load_tfmot
from tfopt.errors import ModelFormatError, OptionError, UnsafeModelError
from tfopt.graph import Model
from tfopt.loaders._concrete import model_from_concrete
from tfopt.loaders._keras_archive import readable_archive, walk_layers
from tfopt.loaders._keras_errors import guarded as _guarded
from tfopt.loaders._keras_files import ARCHIVE, HDF5, keras_kind, suffixed
from tfopt.loaders._keras_lambda import (
    check_readable,
    lambda_shim,
    stored_lambdas,
    supplied,
    with_supplied,
    writer_version,
)
from tfopt.loaders._keras_lambda_globals import defining_modules_imported, missing_global_error
from tfopt.loaders._keras_nested_outputs import unwrapped_archive
from tfopt.loaders._keras_registered import registered_aliases
from tfopt.loaders._keras_time_distributed import folded as folded_time_distributed

FORMAT = "keras"


def detect(path: str) -> bool:
    """A Keras file: by its suffix, else by its content (:func:`tfopt.loaders._keras_files.keras_kind`)."""
    return os.path.isfile(path) and keras_kind(path) is not None


def load(path: str, options: Any) -> Model:
    # A .keras saved on Windows by Keras 2.13-2.15 is read through a copy with '/' weight names; one whose
    # Sequential nests a model stored with a one-element output list (Keras 3.4-3.8) through an unwrapped copy.
    # A Keras file under another name (CheckM2's .hd5) is loaded through a link with the suffix its loader reads.
    with suffixed(path) as named, readable_archive(named) as (source, note), \
            unwrapped_archive(source) as (source, unwrapped):
        return _load(path, source, options, {**note, **unwrapped})


def _load(path: str, source: str, options: Any, note: dict[str, Any]) -> Model:
    """Load ``source`` (``path`` itself or a readable copy of it); errors name ``path``."""
    if _keras_major(path) >= 3:  # a .keras archive, or a legacy .h5 that Keras 3 wrote
        import keras

        check_readable(path, _stored_lambdas(_stored_config(path)), {}, writer_version(path), can_supply=False)
        if not options.unsafe and keras_kind(path) == HDF5:
            _refuse_h5_lambda(path)
        custom = import_custom_objects(options.custom_objects)
        custom = {**custom, **registered_aliases(_stored_config(path), custom)}

        if options.compress is not None and options.compress.active:
            raise OptionError(
                f"{path}: a Keras 3 model; --cluster/--prune run through TFMOT, which needs a Keras 2 (tf_keras) "
                "model. Rebuild the same architecture with `import tf_keras as keras` (or TF_USE_LEGACY_KERAS=1), "
                "load the weights (model.save_weights('w.weights.h5') in Keras 3, then load_weights), and save it "
                "as .h5; or pass --cluster/--prune to the training script's tf_keras model")
        model = _guarded(path, lambda: keras.saving.load_model(
            source, custom_objects=custom, compile=False, safe_mode=not options.unsafe))
        flavour = "keras3"
    else:
        import tf_keras

        custom = import_custom_objects(options.custom_objects, keras2_for=path)

        stored = _stored_config(path)
        lambdas = _stored_lambdas(stored)
        given = supplied(lambdas, custom)
        check_readable(path, lambdas, given, writer_version(path))
        if not options.unsafe and keras_kind(path) == HDF5:
            _refuse_h5_lambda(path, supplied=set(given))
        kinds = _tfmot_kinds(stored)
        # the user's own classes win; a function supplied for a Lambda layer is that layer's, not a Keras name
        custom = {**_legacy_shims(stored), **lambda_shim(given), **{k: v for k, v in custom.items() if k not in given}}
        custom.update(registered_aliases(stored, custom))  # 'Custom>Scale' stored, 'Scale' supplied
        with _tfmot_scopes(kinds, path), with_supplied(source, given) as (source, named), \
                defining_modules_imported(lambdas if options.unsafe else []) as unimportable:
            try:
                model = _guarded(path, lambda: tf_keras.models.load_model(
                    source, custom_objects={**custom, **named}, compile=False, safe_mode=not options.unsafe))
            except ModelFormatError as exc:
                raise (missing_global_error(path, exc, lambdas, unimportable) or exc) from exc
        model = _strip_tfmot(model, kinds)
        flavour = "keras2"
        provenance: dict[str, Any] = {"format": FORMAT, "path": path, "keras": flavour, **note}
        if kinds:
            provenance["tfmot"] = sorted(kinds)
        if given:
            provenance["lambda_functions_supplied"] = sorted(given)
        if options.compress is not None and options.compress.active:
            from tfopt.loaders.compressing import Compressed, compress_keras

            compressed, provenance["compression"] = compress_keras(model, options.compress)
            built = model_from_keras(compressed, provenance, external_threshold=options.external_threshold)
            return built.replace(baseline=keras_runner(model), keepalive=Compressed(compressed, model))
        return model_from_keras(model, provenance, external_threshold=options.external_threshold)
    if _tfmot_kinds(_stored_config(path)):
        raise OptionError(f"{path}: a Keras 3 model with TFMOT layers: TFMOT works with Keras 2 only. Build "
                          "and save the model with tf_keras (TF_USE_LEGACY_KERAS=1) instead")
    return model_from_keras(model, {"format": FORMAT, "path": path, "keras": flavour, **note},
                            external_threshold=options.external_threshold)


def model_from_keras(model: Any, provenance: dict[str, Any], *, external_threshold: int | None = None) -> Model:
    """Freeze a built Keras (3 or tf-keras 2) model's inference call (``training=False``); variables of
    at least ``external_threshold`` bytes stay outside the graph (:mod:`tfopt.external`)."""
    t = tf()
    if not getattr(model, "inputs", None):
        raise OptionError(
            f"Keras model '{model.name}' has no defined inputs (a subclassed model that was never "
            "built with keras.Input); build it functionally or save a SavedModel with a signature")
    input_names, output_names = _io_names(model)
    specs = [t.TensorSpec(i.shape, t.as_dtype(i.dtype), name=n) for i, n in zip(model.inputs, input_names)]

    @t.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return named_outputs(model(list(args) if len(args) > 1 else args[0], training=False), output_names)

    with folded_time_distributed():  # Keras 3's open-time TimeDistributed, traced as Keras 2 traced it
        fn = serve.get_concrete_function()

    def call(feeds: Mapping[str, Any]) -> dict[str, Any]:
        out = serve(*[t.constant(feeds[n]) for n in input_names])
        return {k: v.numpy() for k, v in out.items()}

    return model_from_concrete(fn, input_names=input_names, call=call, provenance=provenance, keepalive=model,
                                external_threshold=external_threshold)


def _io_names(model: Any) -> tuple[list[str], list[str]]:
    """A Keras model's input names and output keys: its ``output_names`` as Keras reports them.

    A Keras 3 ``Sequential`` has no ``output_names``; its one output is its last layer's output, so
    it is named after that layer (as tf-keras and a Keras 3 Functional name it), whatever the last
    layer or the layers before it are (a nested Functional or Sequential included). Only a model
    whose outputs cannot be named so gets ``output_i``.
    """
    names = list(getattr(model, "output_names", None) or [])
    if not names and getattr(model, "layers", None) and len(model.outputs) == 1 and _is_sequential(model):
        names = [model.layers[-1].name]
    return ([i.name.split(":")[0] for i in model.inputs], names or [f"output_{i}" for i in range(len(model.outputs))])


def _is_sequential(model: Any) -> bool:
    return any(c.__name__ == "Sequential" for c in type(model).__mro__)


def keras_runner(model: Any) -> Any:
    """``runner(feeds) -> outputs`` of a Keras model's inference call, by input/output name."""
    input_names, output_names = _io_names(model)

    def call(feeds: Mapping[str, Any]) -> dict[str, Any]:
        args = [feeds[n] for n in input_names]
        out = named_outputs(model(args if len(args) > 1 else args[0], training=False), output_names)
        return {k: np.asarray(v) for k, v in out.items()}

    return call


def named_outputs(out: Any, output_names: list[str]) -> dict[str, Any]:
    """A Keras call's outputs by name, paired through their structure.

    A dict is already keyed by name (``tf.nest.flatten`` would sort it, not follow
    ``output_names``); a list or tuple follows ``model.outputs``, whose order ``output_names`` has;
    a single tensor is the one output.
    """
    if isinstance(out, Mapping):
        return dict(out)
    flat = tf().nest.flatten(out)
    if len(flat) != len(output_names):
        raise ModelFormatError(f"the Keras model returned {len(flat)} outputs for {len(output_names)} output names "
                               f"{output_names}; rebuild it with one output per name")
    return dict(zip(output_names, flat))


def import_custom_objects(module_name: str | None, *, keras2_for: str = "") -> dict[str, Any]:
    """``CUSTOM_OBJECTS`` of ``module_name`` if it defines one, else its public classes/functions.

    ``keras2_for`` (the path of a Keras 2 model) imports the module with ``tensorflow.keras`` and
    ``keras`` bound to tf-keras (see :mod:`tfopt.loaders._keras2_scope`).

    Raises:
        OptionError: the module cannot be imported, or defines Keras 3 classes for a Keras 2 model.
    """
    if not module_name:
        return {}
    from tfopt._user_code import import_module
    from tfopt.loaders._keras2_scope import keras2_import, refuse_keras3_classes

    module = keras2_import(module_name, "--custom-objects") if keras2_for else import_module(module_name, "--custom-objects")
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    objects = dict(declared) if isinstance(declared, dict) else {
        k: v for k, v in vars(module).items() if not k.startswith("_") and callable(v)}
    if keras2_for:
        refuse_keras3_classes(objects, module_name, keras2_for)
    return objects


TFMOT_MARKERS = {"qat": ("QuantizeWrapper", "QuantizeLayer"), "pruned": ("PruneLowMagnitude",),
                 "clustered": ("ClusterWeights",)}


def _stored_config(path: str) -> str:
    """The model config JSON as stored in the file (without loading it), or ``""``."""
    try:
        if keras_kind(path) == ARCHIVE:
            with zipfile.ZipFile(path) as zf:
                return zf.read("config.json").decode() if "config.json" in zf.namelist() else ""
        import h5py

        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
        return "" if config is None else config.decode() if isinstance(config, bytes) else str(config)
    except (OSError, zipfile.BadZipFile, KeyError):
        return ""


def _legacy_shims(config: str) -> dict[str, Any]:
    """Stand-ins for layers whose stored config means something else to tf-keras than to the Keras
    that wrote it.

    Keras 2.0 wrote GRU configs without ``reset_after`` (added in 2.1.0, default False: the reset gate
    applies before the recurrent matmul, one bias of 3·units). tf-keras defaults to True, so such a file
    fails on the bias shape ("GRU(reset_after=False) is not compatible with GRU(reset_after=True)"), or
    would compute a different GRU. The shim restores the writer's default; a config that names
    ``reset_after`` is left as stored.
    """
    if not config or '"GRU"' not in config:
        return {}
    try:
        layers = walk_layers(json.loads(config))
    except ValueError:
        return {}
    if not any(c.get("class_name") == "GRU" and "reset_after" not in c.get("config", {}) for c in layers):
        return {}
    import tf_keras

    class GRU:  # only its from_config is used: it returns tf-keras's own GRU
        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            return tf_keras.layers.GRU.from_config({"reset_after": False, **config})

    return {"GRU": GRU}


def _tfmot_kinds(config: str) -> set[str]:
    return {kind for kind, names in TFMOT_MARKERS.items() if any(f'"{n}"' in config for n in names)}


def _tfmot_scopes(kinds: set[str], path: str) -> Any:
    """TFMOT's deserialization scopes for the kinds of wrapper the file holds."""
    import contextlib

    stack = contextlib.ExitStack()
    if not kinds:
        return stack
    try:
        tfmot = load_tfmot()
    except ImportError as exc:
        raise OptionError(f"{path}: a TFMOT model ({', '.join(sorted(kinds))}); install the extra: "
                          "pip install 'tfopt[tfmot]'") from exc
    scopes = {"qat": tfmot.quantization.keras.quantize_scope, "pruned": tfmot.sparsity.keras.prune_scope,
              "clustered": tfmot.clustering.keras.cluster_scope}
    for kind in sorted(kinds):
        stack.enter_context(scopes[kind]())
    return stack


def _strip_tfmot(model: Any, kinds: set[str]) -> Any:
    """Pruning/clustering wrappers only matter while training: strip them (QAT stays, its
    fake-quant ops carry the ranges the converters need)."""
    if not kinds & {"pruned", "clustered"}:
        return model
    tfmot = load_tfmot()

    if "pruned" in kinds:
        model = tfmot.sparsity.keras.strip_pruning(model)
    if "clustered" in kinds:
        model = tfmot.clustering.keras.strip_clustering(model)
    return model


def _keras_major(path: str) -> int:
    """The major version of the Keras that wrote the file: a ``.keras`` archive's metadata, or an
    ``.h5``'s root ``keras_version`` attribute (tf-keras and Keras 2 write 2.x, and Keras 3's
    legacy ``model.save("m.h5")`` writes 3.x, a config tf-keras cannot read: ``batch_shape``)."""
    if keras_kind(path) != ARCHIVE:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                stored = f.attrs.get("keras_version", b"2")
        except OSError:
            return 2  # not readable as HDF5: tf-keras names the problem (_guarded)
        version = stored.decode() if isinstance(stored, bytes) else str(stored)
        return int(version.split(".")[0]) if version[:1].isdigit() else 2
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("metadata.json")) if "metadata.json" in zf.namelist() else {}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFormatError(f"{path}: not a valid .keras archive ({exc}); the file may be truncated") from exc
    version = str(meta.get("keras_version", "3"))
    return int(version.split(".")[0]) if version[:1].isdigit() else 3


def _stored_lambdas(stored: str) -> list[Any]:
    """The Lambda layers of a stored config (none when it is not valid JSON: the loader says so)."""
    if '"Lambda"' not in stored:
        return []
    try:
        return stored_lambdas(walk_layers(json.loads(stored)))
    except ValueError:
        return []


def _refuse_h5_lambda(path: str, *, supplied: set[str] | None = None) -> None:
    """Safe mode for a legacy ``.h5``: refuse a Lambda layer unless the user ``supplied`` its function."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError as exc:
        raise ModelFormatError(f"{path}: not a readable HDF5 file ({exc}); the file may be truncated") from exc
    if config is None:
        raise ModelFormatError(f"{path}: HDF5 file holds no model_config (weights-only file?); "
                               "save the full model with model.save(...)")
    text = config.decode() if isinstance(config, bytes) else str(config)
    if '"class_name": "Lambda"' in text and not (supplied and all(
            layer.name in supplied for layer in _stored_lambdas(text))):
        raise UnsafeModelError(f"{path}: the model contains a Lambda layer, which runs arbitrary Python "
                               "when loaded. If you trust this file, pass --unsafe (unsafe=True)")
