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


def test_the_api_reference_lists_every_typed_error():
    """docs/reference/api.md renders the errors from an explicit ``members:`` list; a class missing there
    has no page, so a user reading an error's name finds nothing."""
    import inspect
    import pathlib
    import re

    from tfopt import errors

    page = (pathlib.Path(__file__).parents[1] / "docs" / "reference" / "api.md").read_text()
    listed = set(re.findall(r"\w+", re.search(r"members: \[([^]]*)\]", page.split("## Errors", 1)[1]).group(1)))
    typed = {name for name, value in vars(errors).items()
             if inspect.isclass(value) and issubclass(value, errors.TfoptError)}
    assert "TfoptError" in listed and typed <= listed, sorted(typed - listed)
