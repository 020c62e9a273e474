"""The serving SavedModel of a model with tensors outside its graph, as a cache entry of its own.

TFLite's and OpenVINO's converters read such a model from a SavedModel whose large tensors are
variables (:func:`tfopt.external.emit.serving_savedmodel`), which costs one more copy of the
weights on disk. In the fleet it is written once per model, by the ``prepare`` task, into the
``serving`` stage of the cache, and every ``emit`` task converts from that entry: never into the
``optimize`` entry (whose files are hash-checked, so an added file made the next reader rebuild
the model), and never once per task (two tasks writing it at once replaced each other's copy
while a converter read it). Key: the ``optimize`` key and :func:`~tfopt.external.emit.serving_key`
of the graph. Nothing is written when no requested (target, precision) reads it (``--to onnx``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tfopt.fleet.keys import digest_of

STAGE = "serving"
SUBDIR = "savedmodel"


def provide_serving(cache: Any, optimize_key: str, pairs: Iterable[tuple[str, str]], model: Any) -> str | None:
    """Make ``model``'s serving SavedModel the cache entry's (written now when missing) and tell
    ``model.external`` where it is; returns its directory, or None when no pair needs one.

    Args:
        cache: the fleet's :class:`~tfopt.fleet.cache.Cache`.
        optimize_key: the model's ``optimize`` key.
        pairs: the plan's (target, precision) pairs.
        model: the prepared portable model (what the converters read).
    """
    from tfopt.external.emit import reads_serving_savedmodel, serving_key

    if model.external is None or not any(reads_serving_savedmodel(t, p) for t, p in pairs):
        return None
    graph = serving_key(model)
    key = digest_of({"stage": STAGE, "optimize": optimize_key, "graph": graph})
    entry = cache.get(STAGE, key)
    if entry is None:
        from tfopt.external.serving import write_serving_savedmodel

        with cache.put(STAGE, key) as tmp:  # atomic: a concurrent writer's equal entry wins harmlessly
            write_serving_savedmodel(model, os.path.join(tmp, SUBDIR))
        entry = cache.get(STAGE, key)
        if entry is None:
            raise RuntimeError(f"the cache at {cache.root} lost the entry just written ({STAGE}/{key})")
    path = os.path.join(entry, SUBDIR)
    model.external.savedmodels[graph] = path
    return path
