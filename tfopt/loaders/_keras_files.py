"""Which Keras file a path holds, by its name and, under any other name, by its content.

Packages ship Keras files under names of their own: CheckM2's ``specific_model_COMP.hd5`` (issue 24,
set 19), ``model.hdf``, ``weights.model``, a name with no suffix. An HDF5 file starts with the HDF5
signature, and a Keras 3 (or tf-keras 2.13+) archive is a zip holding ``config.json`` beside its
weights or metadata. Every check that reads the file (its config, the Keras that wrote it, the Lambda
refusal of safe mode) asks :func:`keras_kind`, never the suffix alone, and :func:`suffixed` gives the
Keras loaders, which choose their reader by the suffix, a name they accept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ARCHIVE = "keras"  # a zip archive (.keras)
HDF5 = "h5"  # a legacy HDF5 file (.h5/.hdf5)
_NAMED = {".keras": ARCHIVE, ".h5": HDF5, ".hdf5": HDF5}


def keras_kind(path: str) -> str | None:
    """:data:`ARCHIVE`, :data:`HDF5` or None (not a Keras file): by the suffix, else by the content."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _NAMED:
        return _NAMED[suffix]
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
        if head == HDF5_SIGNATURE:
            return HDF5
        if head.startswith(b"PK") and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
            if "config.json" in names and names & {"model.weights.h5", "metadata.json"}:
                return ARCHIVE
    except (OSError, zipfile.BadZipFile):
        return None
    return None


@contextmanager
def suffixed(path: str) -> Iterator[str]:
    """``path`` itself when its suffix names its kind, else a temporary link to it that does (the Keras
    loaders pick their reader by the suffix: Keras 3 refuses any other, tf-keras reads a zip as a SavedModel)."""
    kind = keras_kind(path)
    if kind is None or os.path.splitext(path)[1].lower() in _NAMED:
        yield path
        return
    folder = tempfile.mkdtemp(prefix="tfopt-keras-name-")
    try:
        link = os.path.join(folder, os.path.basename(path) + (".keras" if kind == ARCHIVE else ".h5"))
        os.symlink(os.path.abspath(path), link)
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)
