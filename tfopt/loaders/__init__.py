"""Loaders: every TensorFlow model format into one :class:`~tfopt.graph.Model`.

``load(path)`` detects the format; each format is a registered loader keyed by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tfopt._user_code import PROVENANCE_KEY
from tfopt.errors import ModelNotFoundError, OptionError
from tfopt.graph import Model
from tfopt.graphdef.batch_axis import with_batch_axes
from tfopt.graphdef.order import canonical_order
from tfopt.loaders.pipeline_inputs import cut_model
from tfopt.loaders.registered_ops import check_ops_registered
from tfopt.options import LoadOptions

LoaderFn = Callable[[str, LoadOptions], Model]
DetectFn = Callable[[str], bool]


class LoaderRegistry:
    """Format name -> (detector, loader); detectors are tried in registration order."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[DetectFn, LoaderFn]] = {}

    def register(self, name: str, detect: DetectFn, loader: LoaderFn) -> None:
        self._entries[name] = (detect, loader)

    def formats(self) -> list[str]:
        return list(self._entries)

    def detect(self, path: str) -> str:
        for name, (detect, _) in self._entries.items():
            if detect(path):
                return name
        kind = "directory" if os.path.isdir(path) else "file"
        hint = "" if kind == "directory" else (
            "; if it is one under another name (e.g. a GraphDef saved as .bin), say which with --input-format "
            f"{'/'.join(self._entries)}")
        raise ModelNotFoundError(
            f"{path}: this {kind} holds no model tfopt can read. Expected a SavedModel directory "
            "(saved_model.pb), a .keras or .h5 file, a TF1 checkpoint (.meta + .index/.data), "
            f"a TF2 checkpoint (.index, with --model-fn) or a frozen graph (.pb/.pbtxt){hint}"
        )

    def load(self, path: str, options: LoadOptions, fmt: str | None = None) -> Model:
        fmt = fmt or self.detect(path)
        if fmt not in self._entries:
            raise OptionError(f"unknown format '{fmt}'; known: {', '.join(self._entries)}")
        return self._entries[fmt][1](path, options)


registry = LoaderRegistry()


def load(path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> Model:
    """Load any supported model into a :class:`Model` (not yet frozen).

    Args:
        path: SavedModel dir, ``.keras``/``.h5`` file, TF1 ``.meta``/prefix/dir, TF2 checkpoint
            prefix, or ``.pb``/``.pbtxt``.
        format: skip detection (one of :meth:`LoaderRegistry.formats`).
        **options: fields of :class:`LoadOptions`.

    Raises:
        ModelNotFoundError, ModelFormatError, UnsafeModelError, OptionError.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and not _is_checkpoint_prefix(path):
        raise ModelNotFoundError(f"{path}: {why_missing(path)}")
    try:
        opts = LoadOptions(**options)
        format = format or opts.input_format
    except TypeError as exc:
        raise OptionError(f"unknown load option: {exc}") from exc
    format = format or registry.detect(path)
    imported = import_user_module(opts.custom_objects, format)
    try:
        model = registry.load(path, opts, format)
    except PermissionError as exc:  # a file of the model this user may not read
        raise unreadable(exc, path) from exc
    if imported:
        model = model.replace(provenance={**model.provenance, PROVENANCE_KEY: [imported]})
    check_ops_registered(model.graph_def, path)
    model = cut_model(model)  # every format: elements read from a tf.data iterator become inputs
    # the axis holding each input's samples, where the graph's structure says (a time-major [time, batch, n])
    model = model.replace(inputs=with_batch_axes(model.graph_def, model.inputs, model.outputs))
    canonical_order(model.graph_def)  # TensorFlow's export order varies by process: see canonical_order
    if opts.compress is not None and opts.compress.active and "compression" not in model.provenance:
        raise OptionError(f"--cluster/--prune: {path} is a {model.provenance.get('format')} model; TFMOT clusters and "
                          "prunes Keras 2 (tf_keras) models: pass the .h5 or tf_keras .keras file it was trained as")
    return model


def import_user_module(name: str | None, fmt: str) -> list[str]:
    """Import ``--custom-objects`` before any loader runs: what it registers (a ``tf.load_op_library`` op, an
    ``ExtensionType``, a conversion function) must exist when TensorFlow reads the model. Its record
    (:func:`tfopt._user_code.import_for_model`), or ``[]``. A Keras file's loader imports the module itself,
    with the Keras its file needs (a Keras 2 file's module under tf-keras names: ``_keras2_scope``).

    Raises:
        OptionError: the module cannot be imported (named, with what it raised).
    """
    from tfopt._user_code import import_for_model
    from tfopt.loaders.keras import FORMAT as KERAS

    if not name or fmt == KERAS:
        return []
    return import_for_model(name, "--custom-objects")


def unreadable(exc: PermissionError, path: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{exc.filename or path}: permission denied; tfopt needs to read every file of the "
                              "model (check its permissions, or run as a user who can read it)")


def why_missing(path: str) -> str:
    """``exists()`` is False for a symlink loop and a dangling link too: say which."""
    import errno

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link points, through other links, back to itself)"
        if os.path.islink(path):
            return f"dangling symbolic link to {os.readlink(path)}, which does not exist"
        if exc.errno == errno.EACCES:
            return "permission denied (a directory on the way cannot be searched)"
    return "no such file or directory"


def _is_checkpoint_prefix(path: str) -> bool:
    return os.path.exists(path + ".index") or os.path.exists(path + ".meta")


def _register_builtin() -> None:
    from tfopt.loaders import graphdef, keras, savedmodel, tf1_checkpoint, tf2_checkpoint

    # Detection order, most specific first: a SavedModel dir holds a .pb, and a TF1 checkpoint
    # dir holds .index files that would also look like a TF2 checkpoint.
    for module in (savedmodel, keras, tf1_checkpoint, tf2_checkpoint, graphdef):
        registry.register(module.FORMAT, module.detect, module.load)


_register_builtin()
