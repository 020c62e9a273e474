"""The plain (no tfopt) way to a SavedModel from a TF2 object checkpoint, for the corpus harness's
"can the converter itself express it" check (``scripts/corpus.py _plain``).

What a user does by hand: build the model with the entry's ``--model-fn`` (its package's code),
restore the checkpoint with ``tf.train.Checkpoint(<attribute>=model)`` and check that every stored
value was read, then save a SavedModel the converters read: a Keras 3 model with ``inputs`` through
``model.export``; a model without (subclassed, built with ``build(shape)``), a tf-keras model or a
``tf.Module`` through ``tf.saved_model.save`` with a serving signature (the model's call at its
built shape with the batch open, or the module's ``__call__`` ``tf.function``).

A checkpoint written by Keras 2 code does not restore into the model the process's Keras 3 builds
(:class:`KerasMismatch`); its users run that code with ``TF_USE_LEGACY_KERAS=1``, and so does the
harness (the child process is started again with it).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class KerasMismatch(Exception):
    """The model built with this process's Keras does not match the checkpoint."""


def checkpoint_prefix(path: str) -> str:
    """The checkpoint prefix of a folder (its ``checkpoint`` state, else its last ``.index``) or a file."""
    import tensorflow as tf

    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        return os.path.join(path, indexes[-1][: -len(".index")])
    return path[: -len(".index")] if path.endswith(".index") else path


def restored(path: str, model_fn: str) -> Any:
    """The model built by ``model_fn`` (``package.module:function``) with every value of the
    checkpoint at ``path`` stored under one root attribute restored into it.

    Raises:
        KerasMismatch: no root attribute restores fully (fewer variables, other names or shapes).
    """
    import tensorflow as tf

    from tfopt.loaders._checkpoint_keras import checkpoint_values, model_variables

    module, _, name = model_fn.partition(":")
    model = getattr(importlib.import_module(module), name)()
    prefix = checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    roots = sorted({key.split("/")[0] for key in reader.get_variable_to_shape_map()} - {"save_counter", "optimizer",
                                                                                         "_CHECKPOINTABLE_OBJECT_GRAPH"})
    why = []
    for attr in sorted(roots, key=lambda a: a != "model"):
        status = None
        try:
            status = tf.train.Checkpoint(**{attr: model}).restore(prefix)
            status.assert_existing_objects_matched()
            status.expect_partial()
            if model_variables(model) < checkpoint_values(reader, attr):
                raise AssertionError(f"{model_variables(model)} variables for {checkpoint_values(reader, attr)} values")
            return model
        except (AssertionError, ValueError) as exc:
            if status is not None:
                status.expect_partial()
            why.append(f"{attr}: {str(exc).splitlines()[0][:200]}")
    raise KerasMismatch(f"{model_fn} does not match {prefix}: {'; '.join(why) or 'no values stored'}")


def saved_model(model: Any, dest: str) -> Any:
    """Save ``model`` as a SavedModel with a serving signature at ``dest``; return the Keras 3 model
    when it was exported with ``model.export`` (the TFLite converter can trace it again), else None."""
    import tensorflow as tf

    from tfopt.loaders._checkpoint_keras import built_input_shape, is_keras_model

    if is_keras_model(model) and getattr(model, "inputs", None) and hasattr(model, "export"):
        model.export(dest, verbose=False)  # Keras 3
        return model
    if is_keras_model(model) and getattr(model, "inputs", None):
        tf.saved_model.save(model, dest)  # tf-keras writes its serving signature itself
        return None
    shape = built_input_shape(model) if is_keras_model(model) else None
    if shape is not None:
        spec = tf.TensorSpec(shape, tf.float32, name="x")
        serve = tf.function(lambda x: {"output_0": model(x, training=False)}, input_signature=[spec])
        tf.saved_model.save(model, dest, signatures=serve.get_concrete_function())
        return None
    call = model.__call__
    if not hasattr(call, "get_concrete_function") or not getattr(call, "input_signature", None):
        raise SystemExit(f"no plain SavedModel of a {type(model).__name__}: neither a built Keras model nor a "
                         "tf.Module whose __call__ is a tf.function with an input_signature")
    tf.saved_model.save(model, dest, signatures=call.get_concrete_function())
    return None


def saved_from_checkpoint(path: str, model_fn: str, dest: str) -> Any:
    """:func:`restored` then :func:`saved_model`, in the harness's ``_plain`` child: when the process's
    Keras builds a model that does not match, the child starts again with ``TF_USE_LEGACY_KERAS=1``
    (the same command line), as the users of Keras 2 code run it."""
    try:
        model = restored(path, model_fn)
    except KerasMismatch as exc:
        if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
            raise SystemExit(str(exc)) from None
        print(f"  ... {exc}; again with Keras 2 (TF_USE_LEGACY_KERAS=1)", file=sys.stderr, flush=True)
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, TF_USE_LEGACY_KERAS="1"))
    return saved_model(model, dest)
