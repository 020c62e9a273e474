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


def test_every_typed_error_is_exported_from_tfopt():
    """``except tfopt.LambdaCodeError`` works for every typed error ``tfopt.errors`` defines, subclasses
    included: whichever one a call raises, the user catches it by the name the message gives."""
    import inspect

    from tfopt import errors

    typed = {name for name, value in vars(errors).items()
             if inspect.isclass(value) and issubclass(value, errors.TfoptError)}
    assert "LambdaCodeError" in typed and typed <= set(tfopt.__all__), sorted(typed - set(tfopt.__all__))
    assert all(getattr(tfopt, name) is getattr(errors, name) for name in typed)
