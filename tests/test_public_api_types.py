"""The public functions' return types resolve to the real classes (imported for type checkers only,
so ``import tfopt`` stays free of TensorFlow)."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

import tfopt
from tfopt.conversion.convert import ConvertResult
from tfopt.freezing import FreezeReport
from tfopt.graph import Model
from tfopt.passes.optimizing import OptimizeReport

# What the TYPE_CHECKING imports in tfopt/__init__.py bind, for get_type_hints to resolve them.
NAMES = {"Model": Model, "FreezeReport": FreezeReport, "OptimizeReport": OptimizeReport, "ConvertResult": ConvertResult}


@pytest.mark.parametrize(("function", "expected"), [
    ("load", Model),
    ("freeze", tuple[Model, FreezeReport]),
    ("optimize", tuple[Model, Model, FreezeReport, OptimizeReport]),
    ("convert", ConvertResult),
], ids=["load", "freeze", "optimize", "convert"])
def test_return_type(function, expected):
    assert typing.get_type_hints(getattr(tfopt, function), localns=NAMES)["return"] == expected


def test_import_tfopt_does_not_import_tensorflow():
    code = "import sys, tfopt; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
