"""A ``.keras`` archive whose Sequential holds a nested model stored with a one-element output list.

Keras 3.4-3.8 wrote a model nested in a Sequential (the transfer-learning pattern
``Sequential([DenseNet121(include_top=False), GlobalAveragePooling2D(), Dense(n)])``) with its
``output_layers`` as ``[[name, node, index]]``, a list holding one tensor. Later Keras rebuilds that
nested model returning a one-element list, and the Sequential hands the list on: the next layer
fails with 'Layer "dense" expects 1 input(s), but it received 2 input tensors' (keras#20084,
open) although every weight is in the archive.

A layer of a Sequential takes exactly one tensor, so ``[[name, node, index]]`` there means the
tensor ``[name, node, index]``: :func:`unwrapped_archive` yields a copy whose ``config.json`` says
so (same weights, byte for byte), or the user's file when no such layer exists. Nested models
inside a Functional are left alone: there a consumer names the tensor by index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tfopt.loaders._keras_archive import archive_copy, walk_layers
from tfopt.loaders._keras_files import ARCHIVE, keras_kind

CONFIG = "config.json"


def _is_leaf(ref: Any) -> bool:
    return isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)


def unwrap(config: Any) -> list[str]:
    """Rewrite ``config`` in place; return the names of the nested models unwrapped."""
    done: list[str] = []
    for seq in walk_layers(config):
        if seq.get("class_name") != "Sequential":
            continue
        for layer in seq["config"].get("layers", []):
            outs = layer.get("config", {}).get("output_layers") if isinstance(layer, dict) else None
            if isinstance(outs, list) and len(outs) == 1 and _is_leaf(outs[0]):
                layer["config"]["output_layers"] = outs[0]
                done.append(str(layer["config"].get("name", layer.get("name", "?"))))
    return done


@contextmanager
def unwrapped_archive(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path to load, provenance note)``: ``path`` itself, or a temporary copy with the nested
    models' one-element output lists unwrapped (the note names them). The copy is removed on exit."""
    import zipfile

    if keras_kind(path) != ARCHIVE or not zipfile.is_zipfile(path):
        yield path, {}
        return
    import zlib

    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read(CONFIG)) if CONFIG in zf.namelist() else None
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error):  # damaged: Keras's own load names file and cause
        config = None
    names = unwrap(config) if isinstance(config, dict) else []
    if not names:
        yield path, {}
        return

    def rewrite(_stored: str, new: str) -> None:
        with open(new, "w", encoding="utf8") as f:
            json.dump(config, f)

    with archive_copy(path, CONFIG, rewrite) as fixed:
        yield fixed, {"nested_outputs_unwrapped": names}
