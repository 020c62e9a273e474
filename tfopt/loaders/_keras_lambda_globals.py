"""Keras 2 Lambda layers whose stored code reads globals of the module that defined it.

Keras 2 stores a Python lambda as its bytecode plus the name of the module that defined it
(``"module": "deepac.nn_train"``). The bytecode's global names (``K`` for ``keras.backend`` in
``lambda x: K.reverse(x, axes=(1, 2))``, a helper function, a constant) are looked up in that module's
namespace, but tf-keras uses it only when the module is *already imported*; otherwise they are
undefined and the layer fails with ``NameError`` when Keras calls it to rebuild the model. The
package's own users have it imported (they load its models through its code), so with ``--unsafe``
(the Lambda's code runs anyway) :func:`defining_modules_imported` imports each recorded module as
Keras 2 code (``tensorflow.keras`` bound to tf-keras) for the duration of the load.

A module that cannot be imported here (not installed, or failing on this Python) is not an error by
itself: only when a Lambda then needs one of its names, :func:`missing_global_error` names the
layer's missing name, the module, why it did not import, and the two ways out.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tfopt.errors import ModelFormatError

# modules whose names Keras itself has in scope, and a script's own namespace (not importable)
_SKIP = ("__main__", "builtins", "keras", "tf_keras", "tensorflow", "numpy")
_UNDEFINED = re.compile(r"name '(\w+)' is not defined")


@contextmanager
def defining_modules_imported(lambdas: list[Any]) -> Iterator[dict[str, str]]:
    """Within the block, the modules recorded for ``lambdas`` (:class:`StoredLambda`) are imported
    and in ``sys.modules``; yields ``{module: why it could not be imported}`` for the others.
    Modules imported here are removed again on exit."""
    from tfopt.loaders._keras2_scope import keras2_names

    wanted = sorted({m for layer in lambdas for m in layer.modules
                     if m not in sys.modules and m.split(".")[0] not in _SKIP})
    imported: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in wanted:
        try:
            with keras2_names([name]):  # the package was written for Keras 2: its tensorflow.keras is tf-keras
                __import__(name)
                imported[name] = sys.modules[name]
        except Exception as exc:  # the module's own code may raise anything while importing
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            failed[name] = f"{type(exc).__name__}{': ' + text if text else ''}"
    sys.modules.update(imported)  # keras2_names put sys.modules back: keep these for the load
    try:
        yield failed
    finally:
        for name, module in imported.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def missing_global_error(path: str, exc: BaseException, lambdas: list[Any],
                         failed: dict[str, str]) -> ModelFormatError | None:
    """The typed error for a load that failed because a Lambda's code reads a global its defining
    module would have given (``NameError`` anywhere in ``exc``'s chain), or None for any other failure."""
    name = _undefined_name(exc)
    if name is None:
        return None
    from tfopt.loaders._keras_errors import at_layer

    modules = sorted({m for layer in lambdas for m in layer.modules})
    where = f" of the module that defined it ({', '.join(modules)})" if modules else ""
    why = "".join(f" {m} cannot be imported here ({reason})." for m, reason in sorted(failed.items()))
    example = " (tf_keras.backend for K)" if name == "K" else ""
    return ModelFormatError(
        f"{path}: cannot load Keras model{at_layer(exc.__cause__ or exc)}: its Lambda code uses '{name}' "
        f"(NameError), a global{where} that Keras finds only in that module, imported.{why} Make the module "
        f"importable (its package installed, or its folder on PYTHONPATH), or write a module with "
        f"CUSTOM_OBJECTS = {{'{name}': <what it named there{example}>}} and pass --custom-objects MODULE")


def _undefined_name(exc: BaseException) -> str | None:
    """The name of the first ``NameError`` in ``exc``'s cause/context chain (or its text)."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        found = _UNDEFINED.search(str(inner))
        if isinstance(inner, NameError) or found:
            name = getattr(inner, "name", None)
            if isinstance(name, str) and name:
                return name
            if found:
                return found.group(1)
        inner = inner.__cause__ or inner.__context__
    return None
