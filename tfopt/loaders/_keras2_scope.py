"""Import a user's custom-object module so that the Keras it names is Keras 2 (tf-keras).

A Keras 2 ``.h5`` file is rebuilt by tf-keras, so its custom classes must subclass tf-keras's.
Under TensorFlow >= 2.16 a module that says ``from tensorflow import keras``,
``import tensorflow.keras as K``, ``from tensorflow.keras import layers`` or ``import keras`` gets
Keras 3 instead (TensorFlow's lazy ``tf.keras`` picks tf-keras only when ``TF_USE_LEGACY_KERAS``
was set before it was first touched), and tf-keras then fails deep inside deserialization
("Unrecognized keyword arguments passed to ReversedLSTM: {'time_major': False}", an IndexError).

:func:`keras2_import` imports the module afresh with those names bound to tf-keras's public API,
then puts back every name it bound: the process's ``tf.keras``/``keras`` are Keras 3 again
afterwards, and the user's module as it was imported before (if it was) stays in
``sys.modules``; the classes tfopt returns are the fresh, Keras 2 ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tfopt.errors import OptionError

ALIASED = ("tensorflow.keras", "keras")  # the names a Keras-2-era module reaches Keras by
_TARGET = "tf_keras.api._v2.keras"  # what TensorFlow's own loader imports for TF_USE_LEGACY_KERAS=1


def _aliased(name: str) -> str | None:
    for prefix in ALIASED:
        if name == prefix or name.startswith(prefix + "."):
            return _TARGET + name[len(prefix):]
    return None


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``tensorflow.keras[.x]`` and ``keras[.x]`` -> the already imported ``tf_keras.api._v2.keras[.x]``."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        target_name = _aliased(fullname)
        if target_name is None or fullname.startswith(("keras.src", "keras._")):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(str(_aliased(spec.name)))

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed."""


def _owned(name: str) -> bool:
    """Entries the scope replaces: Keras's public names, not Keras 3's internals (``keras.src``)."""
    return _aliased(name) is not None and not name.startswith(("keras.src", "keras._"))


@contextmanager
def keras2_names(module_names: Sequence[str] = ()) -> Iterator[None]:
    """Within the block, ``tensorflow.keras``/``keras`` (and their submodules) import as tf-keras and
    ``module_names`` import afresh; everything is put back on exit."""
    import tensorflow
    import tf_keras  # noqa: F401  (the target must be importable before the finder runs)

    api = importlib.import_module(_TARGET)
    saved = {k: v for k, v in sys.modules.items() if _owned(k) or k in module_names
             or any(k.startswith(m + ".") for m in module_names)}
    had_attr, old_attr = hasattr(tensorflow, "keras"), tensorflow.__dict__.get("keras")
    finder = _AliasFinder()
    for key in saved:
        del sys.modules[key]
    sys.modules["tensorflow.keras"] = sys.modules["keras"] = api
    tensorflow.keras = api  # `from tensorflow import keras` reads the attribute
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for key in [k for k in sys.modules if _owned(k) or k in module_names
                    or any(k.startswith(m + ".") for m in module_names)]:
            del sys.modules[key]
        sys.modules.update(saved)
        if had_attr:
            tensorflow.keras = old_attr
        else:
            del tensorflow.keras


def keras2_import(module_name: str, option: str) -> Any:
    """Import ``module_name`` with Keras names bound to tf-keras (see the module docstring).

    Raises:
        OptionError: naming ``option`` when the module cannot be imported.
    """
    from tfopt._user_code import import_module

    with keras2_names([module_name]):
        return import_module(module_name, option)


def keras3_classes(objects: dict[str, Any]) -> list[str]:
    """Names of ``objects`` that are Keras 3 classes (a Keras 3 class in their MRO)."""
    return [name for name, obj in objects.items() if isinstance(obj, type)
            and any(c.__module__.split(".")[0] == "keras" for c in obj.__mro__)]


def refuse_keras3_classes(objects: dict[str, Any], module_name: str, path: str) -> None:
    """A Keras 2 file cannot be rebuilt from Keras 3 classes: say so before tf-keras fails inside.

    Raises:
        OptionError: naming the module, the classes and the fix.
    """
    mixed = keras3_classes(objects)
    if mixed:
        raise OptionError(
            f"{path}: a Keras 2 (.h5) model, but --custom-objects {module_name} defines {', '.join(mixed)} on "
            "Keras 3 classes even when its `tensorflow.keras`/`keras` imports are given Keras 2 (it reaches Keras 3 "
            "some other way, e.g. `keras.src` or a helper module imported earlier). In that module build the "
            "layers on Keras 2: `import tf_keras as keras` (or run with TF_USE_LEGACY_KERAS=1 set before "
            "TensorFlow is imported)")
