"""Import a user's ``package.module:function`` (model builders, calibration generators), and the modules a
model's loading needs (``--custom-objects``), in this process and in the child processes that read its graphs."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from tfopt.errors import OptionError

# Model.provenance key: the [module, sys.path root] pairs imported before the model loaded. What they register
# (a tf.load_op_library op, an ExtensionType, a conversion function) lives in the process, so every child that
# reads the model's graphs (the large-model converters, TFLite's isolated calibration, a fleet task) imports them.
PROVENANCE_KEY = "user_modules"


def import_module(name: str, option: str) -> Any:
    """Import module ``name`` with the working directory importable, as with ``python -m``.

    Raises:
        OptionError: naming ``option`` and the module when it cannot be imported or raises while it is
            (a ``tf.load_op_library`` of a missing library raises NotFoundError, not ImportError).
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except Exception as exc:  # the user's module runs arbitrary code: whatever it raises, name it
        raise OptionError(f"{option}: cannot import module '{name}': {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:400]}. Check that it imports in a plain `python -c "
                          f"\"import {name}\"` run from this directory") from exc


def import_function(spec: str, option: str) -> Any:
    """The callable named by ``spec``; the working directory is importable, as with ``python -m``.

    Raises:
        OptionError: naming ``option`` and ``spec`` when it is malformed or cannot be imported.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise OptionError(f"{option} '{spec}': expected 'package.module:function'")
    module = import_module(module_name, option)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise OptionError(f"{option} '{spec}': {exc}") from exc


def import_for_model(name: str, option: str) -> list[str]:
    """Import ``name`` before a model loads; its ``[module, root]`` record (:data:`PROVENANCE_KEY`), where
    ``root`` is the ``sys.path`` entry it was found under, so that a child process imports the same file.

    Raises:
        OptionError: naming ``option`` and the module when it cannot be imported.
    """
    module = import_module(name, option)
    where = getattr(module, "__file__", None) or ""
    depth = name.count(".") + (1 if os.path.basename(where).startswith("__init__.") else 0)
    root = os.path.dirname(os.path.abspath(where)) if where else ""
    for _ in range(depth):
        root = os.path.dirname(root)
    return [name, root]


def import_recorded(records: Iterable[Sequence[str]], option: str = "--custom-objects") -> None:
    """In a child process: import the modules :func:`import_for_model` recorded, each from its root.

    Raises:
        OptionError: naming ``option`` and the module when it cannot be imported here.
    """
    for name, root in records:
        if root and root not in sys.path:
            sys.path.insert(0, root)
        import_module(name, option)
