"""A ``.keras`` archive whose weight file names its groups with Windows path separators.

Keras 2.13-2.15 (tf.keras's zip format) joined the inner paths of ``model.weights.h5`` with the
platform's path join, so an archive saved on Windows holds root groups named ``layers\\dense``
(one HDF5 name) where every loader looks up ``layers/dense`` (two nested groups). tf-keras then
fails with "Layer 'dense' expected 2 variables, but received 0 variables during loading" and Keras 3
with "could not be deserialized properly" (tf-keras#664). keras-core 0.1 wrote the same names
(keras#18528); Keras 3 writes and looks up '/' only (keras#18579), so it cannot read such a file either.

:func:`readable_archive` yields a path a loader can read: the user's file when no root name holds
a ``\\``, else a temporary copy whose weight file has each root name's ``\\`` replaced by ``/``
(groups nested, datasets copied with their dtype, chunking and attributes, everything else in the
archive copied byte for byte). Only root names are rewritten: there the Windows writer put the
whole joined path, while a name below them is one layer's own. The user's file is only read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tfopt.errors import ModelFormatError
from tfopt.loaders._keras_files import ARCHIVE, keras_kind

log = logging.getLogger(__name__)

WEIGHTS = "model.weights.h5"


def windows_names(path: str) -> list[str]:
    """Root names of a ``.keras`` archive's weight file that hold a ``\\`` (none for other files)."""
    import h5py

    if keras_kind(path) != ARCHIVE:
        return []
    try:
        with zipfile.ZipFile(path) as zf:
            if WEIGHTS not in zf.namelist():
                return []
            with zf.open(WEIGHTS) as stream, h5py.File(stream, "r") as f:
                return [name for name in f if "\\" in name]
    except (OSError, zipfile.BadZipFile, ValueError):
        return []  # not readable here: the loader names the problem


def _normalised(name: str) -> str:
    """``layers\\dense/vars/0`` -> ``layers/dense/vars/0`` (the root name only)."""
    root, sep, rest = name.partition("/")
    return root.replace("\\", "/") + sep + rest


def normalise_weights(src: str, dst: str) -> int:
    """Write ``src``'s HDF5 content to ``dst`` with '/'-separated root names; returns how many
    root names were rewritten."""
    import h5py

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g.attrs.update(dict(f.attrs))

        def copy(name: str, obj: Any) -> None:
            target = _normalised(name)
            if isinstance(obj, h5py.Dataset):
                parent, _, leaf = target.rpartition("/")
                f.copy(obj, g.require_group(parent) if parent else g, name=leaf)
            else:
                g.require_group(target).attrs.update(dict(obj.attrs))

        f.visititems(copy)
        return sum("\\" in name for name in f)


@contextmanager
def archive_copy(path: str, member: str, rewrite: Callable[[str, str], None]) -> Iterator[str]:
    """A temporary copy of the zip archive ``path`` whose ``member`` is what ``rewrite(stored file,
    new file)`` writes; every other entry is copied byte for byte. The copy is removed on exit."""
    tmp = tempfile.mkdtemp(prefix="tfopt-keras-")
    try:
        copy = os.path.join(tmp, os.path.basename(path))
        with zipfile.ZipFile(path) as zf, zipfile.ZipFile(copy, "w") as out:
            for info in zf.infolist():
                if info.filename != member:
                    out.writestr(info, zf.read(info))
                    continue
                stored, rewritten = os.path.join(tmp, "stored"), os.path.join(tmp, "rewritten")
                with zf.open(info) as stream, open(stored, "wb") as raw:
                    shutil.copyfileobj(stream, raw)
                rewrite(stored, rewritten)
                out.write(rewritten, member, compress_type=info.compress_type)
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def readable_archive(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path to load, provenance note)``: the archive itself, or a temporary copy with its weight
    groups renamed (the note says so; it is empty when nothing was renamed). The copy is removed on exit.

    Raises:
        ModelFormatError: the weight file cannot be rewritten (it is not valid HDF5).
    """
    names = windows_names(path)
    if not names:
        yield path, {}
        return
    count = 0

    def rename(stored: str, renamed: str) -> None:
        nonlocal count
        try:
            count = normalise_weights(stored, renamed)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFormatError(f"{path}/{WEIGHTS}: its weight groups are named with '\\' (saved on Windows "
                                   f"by Keras 2.13-2.15) and cannot be renamed: {exc}") from exc

    with archive_copy(path, WEIGHTS, rename) as fixed:
        note = {"weight_names_normalised": {
            "groups": count, "example": names[0],
            "why": "saved on Windows by Keras 2.13-2.15: weight groups named with '\\' instead of '/'"}}
        log.info("%s: %d weight groups named with '\\' (a .keras saved on Windows by Keras 2.13-2.15), e.g. %r; "
                 "loading a copy with '/' names", path, count, names[0])
        yield fixed, note


def walk_layers(node: Any) -> list[dict[str, Any]]:
    """Every ``{"class_name", "config"}`` dict in a stored Keras config (nested models, wrappers)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node.get("config"), dict):
            found.append(node)
        for value in node.values():
            found += walk_layers(value)
    elif isinstance(node, list):
        for value in node:
            found += walk_layers(value)
    return found
