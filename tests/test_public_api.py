"""The public API stays callable: a submodule must never shadow a public function."""

from __future__ import annotations

import importlib
import pkgutil

import tfopt


def test_public_functions_survive_importing_every_submodule():
    for info in pkgutil.walk_packages(tfopt.__path__, "tfopt."):
        if info.name != "tfopt.__main__":
            importlib.import_module(info.name)
    for name in ("load", "freeze", "optimize", "convert", "save", "inspect"):
        assert callable(getattr(tfopt, name)), f"tfopt.{name} was shadowed by a submodule"
