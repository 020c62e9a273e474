"""Import a user's ``package.module:function`` (model builders, calibration generators)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from tfopt.errors import OptionError


def import_module(name: str, option: str) -> Any:
    """Import module ``name`` with the working directory importable, as with ``python -m``.

    Raises:
        OptionError: naming ``option`` when the module cannot be imported.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise OptionError(f"{option}: cannot import module '{name}': {exc}") from exc


def import_function(spec: str, option: str) -> Any:
    """The callable named by ``spec``; the working directory is importable, as with ``python -m``.

    Raises:
        OptionError: naming ``option`` and ``spec`` when it is malformed or cannot be imported.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise OptionError(f"{option} '{spec}': expected 'package.module:function'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise OptionError(f"{option} '{spec}': {exc}") from exc
